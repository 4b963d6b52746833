"""Model inputs as tensors: an encoded frame (`spec.FeatureSpec`) with its texts' embeddings or
tokens and the word-level match features, gathered batch by batch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mtlrec.config import ModelConfig
from mtlrec.model.match import TermMatch, frame_words, term_match, word_match
from mtlrec.model.spec import EncodedFrame, FeatureSpec
from mtlrec.model.text import TextEncoder, TextTable, build_text_table


@dataclass(frozen=True)
class TextTokens:
    """Token ids of the distinct texts of one batch, for a fine-tuned encoder."""

    input_ids: torch.Tensor  # (U, L)
    attention_mask: torch.Tensor  # (U, L)


@dataclass(frozen=True)
class ModelInputs:
    fields: torch.Tensor  # (B, F) embedding rows
    dense: torch.Tensor  # (B, Dd)
    text_present: torch.Tensor  # (B, T) bool: the text is non-null
    # Texts repeat across rows (400 titles, a few thousand queries): a batch carries each distinct
    # text once and the model projects each once, then gathers per row.
    text_index: torch.Tensor  # (B, T) row of each text in text_embeddings / text_tokens
    text_embeddings: torch.Tensor | None = None  # (U, D) frozen encoder output
    text_tokens: TextTokens | None = None  # fine-tuning: the model encodes them itself
    match: torch.Tensor | None = None  # (B, M) word-level query-text match features
    terms: TermInputs | None = None  # per query term: its embedding and kernel counts

    def __len__(self) -> int:
        return self.fields.shape[0]


@dataclass(frozen=True)
class TermInputs:
    """The query's terms of a batch (DRMM term gating, see `match.term_match`)."""

    vectors: torch.Tensor  # (U, D) frozen embeddings of the batch's distinct terms
    slots: torch.Tensor  # (B, Lq) row of each term in `vectors` (padding: a zero vector)
    counts: torch.Tensor  # (B, Lq, W) kernel counts against the other texts
    mask: torch.Tensor  # (B, Lq) bool: a real term
    buckets: torch.Tensor  # (B, Lq) hash bucket of each term, 0 for padding


@dataclass(frozen=True)
class TermTable:
    """`TermMatch` as tensors."""

    counts: torch.Tensor  # (P, Lq, W)
    terms: torch.Tensor  # (P, Lq)
    index: torch.Tensor  # (N,)
    vectors: torch.Tensor  # (V + 1, D)
    buckets: torch.Tensor  # (V + 1,)

    @classmethod
    def build(cls, match: TermMatch) -> TermTable:
        return cls(*(torch.from_numpy(a) for a in (match.counts, match.terms, match.index,
                                                    match.vectors, match.buckets)))  # fmt: skip

    def inputs(self, rows: torch.Tensor) -> TermInputs:
        tuples = self.index[rows]  # (B,)
        terms = self.terms[tuples]  # (B, Lq)
        distinct, slots = torch.unique(terms, return_inverse=True)  # (U,), (B, Lq)
        return TermInputs(
            self.vectors[distinct], slots, self.counts[tuples], terms > 0, self.buckets[terms]
        )


@dataclass
class TensorFrame:
    """An encoded frame as tensors; `inputs(rows)` gathers one batch."""

    fields: torch.Tensor  # (N, F)
    dense: torch.Tensor  # (N, Dd)
    text_codes: torch.Tensor  # (N, T)
    text_table: TextTable
    match: torch.Tensor | None = None  # (N, M)
    terms: TermTable | None = None

    @classmethod
    def build(
        cls,
        encoded: EncodedFrame,
        text_table: TextTable,
        match: np.ndarray | None = None,
        terms: TermMatch | None = None,
    ) -> TensorFrame:
        return cls(
            fields=torch.from_numpy(encoded.fields),
            dense=torch.from_numpy(encoded.dense),
            text_codes=torch.from_numpy(encoded.text_codes),
            text_table=text_table,
            match=None if match is None else torch.from_numpy(match),
            terms=None if terms is None else TermTable.build(terms),
        )

    def __len__(self) -> int:
        return self.fields.shape[0]

    def inputs(self, rows: torch.Tensor) -> ModelInputs:
        codes = self.text_codes[rows]  # (B, T)
        table = self.text_table
        embeddings, tokens = None, None
        unique, index = torch.unique(codes, return_inverse=True)  # (U,), (B, T)
        if codes.shape[1] == 0:  # no text feature in the schema: nothing to encode
            embeddings = torch.zeros((1, 1))  # (U, D) of nothing
        elif table.embeddings is not None:
            embeddings = table.embeddings[unique]  # (U, D)
        elif table.input_ids is not None and table.attention_mask is not None:
            mask = table.attention_mask[unique]  # (U, L)
            length = max(int(mask.sum(dim=1).max()), 1)  # trim padding to this batch's longest
            tokens = TextTokens(table.input_ids[unique][:, :length], mask[:, :length])
        return ModelInputs(
            fields=self.fields[rows],
            dense=self.dense[rows],
            text_present=codes > 0,
            text_index=index.reshape(codes.shape),
            text_embeddings=embeddings,
            text_tokens=tokens,
            match=None if self.match is None else self.match[rows],
            terms=None if self.terms is None else self.terms.inputs(rows),
        )


def tensor_frame(
    spec: FeatureSpec,
    cfg: ModelConfig,
    frame: pd.DataFrame,
    cache_dir: Path,
    encoder: TextEncoder | None = None,
) -> TensorFrame:
    """A frame as the model reads it: encoded features, its texts' embeddings (or tokens when
    fine-tuning) and, when configured, the word-level query-text match features."""
    encoded = spec.encode(frame)
    table = build_text_table(encoded.strings, cfg.text, cache_dir, encoder)
    match, terms = None, None
    codes, query = encoded.text_codes, spec.query_index
    words = None
    if cfg.text.word_match or cfg.text.term_gating:  # split and embedded once for both
        words = frame_words(encoded.strings, codes, query, cfg.text, cache_dir)
    if cfg.text.word_match:
        match = word_match(encoded.strings, codes, query, cfg.text, cache_dir, words)
    if cfg.text.term_gating:
        terms = term_match(encoded.strings, codes, query, cfg.text, cache_dir, words)
    return TensorFrame.build(encoded, table, match, terms)
