"""Model inputs as tensors: an encoded frame (`spec.FeatureSpec`) with its texts' embeddings or
tokens and the word-level match features, gathered batch by batch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mtlrec.arrays import unique_rows
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
    # text of each column once, the columns' distinct texts one block after another, and the model
    # projects each block with its column's projection once, then gathers per row.
    text_index: torch.Tensor  # (B, T) row of each text in text_embeddings / text_tokens
    text_embeddings: torch.Tensor | None = None  # (U, D) frozen encoder output
    text_tokens: TextTokens | None = None  # fine-tuning: the model encodes them itself
    match: torch.Tensor | None = None  # (B, M) word-level query-text match features
    terms: TermInputs | None = None  # per query term: its embedding and kernel counts
    # Column t's texts are rows text_spans[t]:text_spans[t + 1]; () when every column may read
    # every row.
    text_spans: tuple[int, ...] = ()
    # (B, P) `query_cosines` of the frozen embeddings, computed once per frame; None: the model
    # computes them from the batch's texts (a fine-tuned encoder's change every step).
    text_cosines: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.fields.shape[0]


def query_cosines(
    embeddings: torch.Tensor, index: torch.Tensor, present: torch.Tensor, query: int
) -> torch.Tensor:
    """(B, P): the cosine similarity of each row's query embedding with each of its other texts
    (every column but `query`, in order), 0 where either text is null. `embeddings` (U, D),
    `index` (B, T) rows of it, `present` (B, T) the text is non-null."""
    mask = present.unsqueeze(-1).to(embeddings.dtype)  # (B, T, 1)
    query_rows = embeddings[index[:, query]] * mask[:, query]  # (B, D)
    cosines = []
    for t in range(index.shape[1]):
        if t != query:
            other = embeddings[index[:, t]] * mask[:, t]  # (B, D)
            cosines.append(F.cosine_similarity(query_rows, other, dim=-1, eps=1e-8))  # (B,)
    return torch.stack(cosines, dim=-1) if cosines else embeddings.new_zeros((len(index), 0))


@dataclass(frozen=True)
class TermInputs:
    """The query terms of a batch (DRMM term gating, see `match.term_match`), packed: only real
    terms, no padding slot (a batch row has ~2 terms of the table's 8 slots, a feed row none)."""

    vectors: torch.Tensor  # (U, D) frozen embeddings of the batch's distinct terms
    slots: torch.Tensor  # (n,) row of each term in `vectors`
    counts: torch.Tensor  # (n, W) kernel counts against the other texts
    buckets: torch.Tensor  # (n,) hash bucket of each term
    rows: torch.Tensor  # (n,) the batch row each term belongs to, ascending
    n_rows: int  # B


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
        tuples = self.index.index_select(0, rows)  # (B,)
        terms = self.terms.index_select(0, tuples)  # (B, Lq), 0: padding
        row, slot = (terms > 0).nonzero(as_tuple=True)  # (n,), (n,): row-major, rows ascending
        ids = terms[row, slot]  # (n,)
        distinct, slots = torch.unique(ids, return_inverse=True)  # (U,), (n,)
        width = self.counts.shape[1]  # Lq slots per tuple: (P, Lq, W) read as (P * Lq, W)
        counts = self.counts.flatten(0, 1).index_select(0, tuples[row] * width + slot)  # (n, W)
        vectors = self.vectors.index_select(0, distinct)
        return TermInputs(vectors, slots, counts, self.buckets.index_select(0, ids), row, len(rows))


@dataclass
class TensorFrame:
    """An encoded frame as tensors; `inputs(rows)` gathers one batch."""

    fields: torch.Tensor  # (N, F)
    dense: torch.Tensor  # (N, Dd)
    text_codes: torch.Tensor  # (N, T)
    text_table: TextTable
    match: torch.Tensor | None = None  # (N, M)
    terms: TermTable | None = None
    cosines: torch.Tensor | None = None  # (N, P) `query_cosines` of frozen embeddings

    @classmethod
    def build(
        cls,
        encoded: EncodedFrame,
        text_table: TextTable,
        match: np.ndarray | None = None,
        terms: TermMatch | None = None,
        cosines: torch.Tensor | None = None,
    ) -> TensorFrame:
        return cls(
            fields=torch.from_numpy(encoded.fields),
            dense=torch.from_numpy(encoded.dense),
            text_codes=torch.from_numpy(encoded.text_codes),
            text_table=text_table,
            match=None if match is None else torch.from_numpy(match),
            terms=None if terms is None else TermTable.build(terms),
            cosines=cosines,
        )

    def __len__(self) -> int:
        return self.fields.shape[0]

    def inputs(self, rows: torch.Tensor) -> ModelInputs:
        # index_select, not t[rows]: advanced indexing computes every element's offset, a row
        # gather copies rows; a training batch's assembly took 1.8 ms with one, 1.0 with the other.
        codes = self.text_codes.index_select(0, rows)  # (B, T)
        table = self.text_table
        embeddings, tokens = None, None
        unique, index, spans = _column_blocks(codes)  # (U,), (B, T)
        if codes.shape[1] == 0:  # no text feature in the schema: nothing to encode
            embeddings = torch.zeros((1, 1))  # (U, D) of nothing
        elif table.embeddings is not None:
            embeddings = table.embeddings.index_select(0, unique)  # (U, D)
        elif table.input_ids is not None and table.attention_mask is not None:
            mask = table.attention_mask[unique]  # (U, L)
            length = max(int(mask.sum(dim=1).max()), 1)  # trim padding to this batch's longest
            tokens = TextTokens(table.input_ids[unique][:, :length], mask[:, :length])
        return ModelInputs(
            fields=self.fields.index_select(0, rows),
            dense=self.dense.index_select(0, rows),
            text_present=codes > 0,
            text_index=index,
            text_embeddings=embeddings,
            text_tokens=tokens,
            match=None if self.match is None else self.match.index_select(0, rows),
            terms=None if self.terms is None else self.terms.inputs(rows),
            text_spans=spans,
            text_cosines=None if self.cosines is None else self.cosines.index_select(0, rows),
        )


def _column_blocks(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """Each column's distinct codes, one block after another; each row's position in them, and
    where each block starts and ends: a query is projected with the query projection only and a
    title with the title one (one table of every distinct text projected it with both)."""
    blocks, index, spans = [], [], [0]
    for t in range(codes.shape[1]):
        unique, inverse = torch.unique(codes[:, t], return_inverse=True)
        blocks.append(unique)
        index.append(inverse + spans[-1])
        spans.append(spans[-1] + len(unique))
    if not blocks:
        return codes.new_zeros(0), codes.new_zeros(codes.shape), (0,)
    return torch.cat(blocks), torch.stack(index, dim=1), tuple(spans)


# Rows per chunk when the cosines of a whole frame are computed: two (rows, D) gathers at a time.
COSINE_CHUNK = 65_536


def frame_cosines(table: TextTable, codes: torch.Tensor, query: int | None) -> torch.Tensor | None:
    """`query_cosines` of every row of a frame with frozen embeddings: they never change, so
    they are computed once here rather than in every training step (0.7 ms of ~21 a step).
    Once per distinct combination of texts (200k of the default training split's 1.07M rows),
    then copied to its rows: each row's cosine is its own reduction, so the numbers are the
    same bits as row by row (5.3 -> 1.0 s for the training split, one thread)."""
    if table.embeddings is None or query is None or codes.shape[1] < 2:
        return None
    rows, index = unique_rows(codes.numpy())
    distinct, inverse = torch.from_numpy(rows), torch.from_numpy(index)
    present = distinct > 0
    chunks = [
        query_cosines(table.embeddings, distinct[i : i + COSINE_CHUNK],
                      present[i : i + COSINE_CHUNK], query)
        for i in range(0, len(distinct), COSINE_CHUNK)
    ]  # fmt: skip
    if not chunks:
        return torch.zeros((0, codes.shape[1] - 1))
    return torch.cat(chunks)[inverse]


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
    cosines = frame_cosines(table, torch.from_numpy(codes), query)
    return TensorFrame.build(encoded, table, match, terms, cosines)
