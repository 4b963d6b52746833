"""Word-level query-text matching by kernel pooling (K-NRM).

Xiong, Dai, Callan, Liu, Power, "End-to-End Neural Ad-hoc Ranking with Kernel Pooling", SIGIR 2017:
the cosine similarity of every query word with every word of the other text (the translation
matrix), pooled by RBF kernels into soft match counts: an exact-match kernel (a brand, a color, a
product noun named in the query and present in the title) and softer ones (synonyms: "couch" and
"sofa"). A sentence embedding blurs exactly these word-level facts that make an item relevant.

Words are embedded by the frozen sentence encoder, each distinct word once, through the same
on-disk cache as the texts; the kernels are fixed, so the features are a fixed function of the two
strings, computed once per distinct pair. A null query or text gives zeros. A frame's words
(`FrameWords`) are split and embedded once for both features, and only query words are compared
with the rest (a request's one query against a hundred titles: 3 x 200 cosines, not 200 x 200).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtlrec import tokens
from mtlrec.arrays import unique_rows
from mtlrec.config import TextConfig
from mtlrec.model.text_cache import embed_texts, encoder_dim

# (mu, sigma) of each kernel: exact match first, then softer similarity levels.
KERNELS: tuple[tuple[float, float], ...] = (
    (1.0, 1e-3),
    (0.9, 0.1),
    (0.7, 0.1),
    (0.5, 0.1),
    (0.3, 0.1),
    (0.1, 0.1),
)
MAX_WORDS = 24  # words kept per text; titles and queries are shorter
PAIR_CHUNK = 4096  # pairs per vectorised block: bounds memory at (chunk, words, words, kernels)


def words(text: str) -> list[str]:
    """The text's words (`mtlrec.tokens`, the one tokenizer), at most MAX_WORDS."""
    return tokens.words(text)[:MAX_WORDS]


def n_match_features(n_texts: int, query_index: int | None) -> int:
    """Width of the match block: one kernel vector per text other than the query."""
    return 0 if query_index is None else (n_texts - 1) * len(KERNELS)


def _word_table(strings: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """(S, MAX_WORDS) word ids per string (-1 pads), and the vocabulary."""
    vocabulary: dict[str, int] = {}
    table = np.full((len(strings), MAX_WORDS), -1, dtype=np.int64)
    for row, text in enumerate(strings):
        ids = [vocabulary.setdefault(word, len(vocabulary)) for word in words(text)]
        table[row, : len(ids)] = ids
    return table, list(vocabulary)


@dataclass(frozen=True)
class FrameWords:
    """The words of a frame's strings, embedded, and each query word's cosine with every word."""

    table: np.ndarray  # (S, MAX_WORDS) word ids per string, -1 pads
    vocabulary: list[str]  # (V,)
    vectors: np.ndarray  # (V, D) unit-norm word embeddings
    similarity: np.ndarray  # (Vq, V) cosine of each query word with every word
    row: np.ndarray  # (V,) each word's row of `similarity` (0 for a word of no query)

    def cosines(self, query_words: np.ndarray, text_words: np.ndarray) -> np.ndarray:
        """(p, Lq, Lt) cosines of padded word ids (a padding position reads row 0, masked)."""
        rows = self.row[np.maximum(query_words, 0)]  # (p, Lq)
        return self.similarity[rows[:, :, None], np.maximum(text_words, 0)[:, None, :]]


def frame_words(
    strings: Sequence[str], text_codes: np.ndarray, query_index: int | None, cfg: TextConfig,
    cache_dir: Path,
) -> FrameWords | None:  # fmt: skip
    """The words of `strings` for the match features (None without a query and a word)."""
    if query_index is None or text_codes.shape[1] < 2:
        return None
    table, vocabulary = _word_table(strings)
    if not vocabulary:
        return None
    # The frozen base encoder embeds the words, also when the model fine-tunes its own copy:
    # the features must not move with the weights being trained.
    vectors = embed_texts(vocabulary, cfg.model_copy(update={"finetune_layers": 0}), cache_dir)
    asked = np.unique(table[np.unique(text_codes[:, query_index])])
    asked = asked[asked >= 0] if (asked >= 0).any() else np.zeros(1, np.int64)
    row = np.zeros(len(vocabulary), dtype=np.int64)
    row[asked] = np.arange(len(asked))
    similarity = vectors[asked] @ vectors.T  # (Vq, V): the vectors are unit norm
    return FrameWords(table, vocabulary, vectors, similarity, row)


def _kernel_counts(
    similarity: np.ndarray, query_mask: np.ndarray, text_mask: np.ndarray
) -> np.ndarray:
    """(P, Lq, Lt) similarities -> (P, Lq, K): per query word and kernel, log1p(soft count of
    matching text words); 0 for a padding word."""
    mu = np.array([m for m, _ in KERNELS], dtype=np.float32)
    sigma = np.array([s for _, s in KERNELS], dtype=np.float32)
    z = (similarity[..., None] - mu) / sigma  # (P, Lq, Lt, K)
    soft = np.exp(-0.5 * z * z) * text_mask[:, None, :, None]  # (P, Lq, Lt, K)
    return np.log1p(soft.sum(axis=2)) * query_mask[..., None]  # (P, Lq, K)


def _term_counts(words: FrameWords, query_words: np.ndarray, text_words: np.ndarray) -> np.ndarray:
    """(P, Lq, K) kernel counts of each query word of P (query, text) pairs given their padded
    word ids, computed in blocks of PAIR_CHUNK pairs. Padding adds exact zeros, so the columns
    that are padding in every pair are left out of the arithmetic (queries have a few words)."""
    out = np.zeros((*query_words.shape, len(KERNELS)), dtype=np.float32)
    q_width = _used_width(query_words)
    t_width = _used_width(text_words)
    for start in range(0, len(query_words), PAIR_CHUNK):
        q = query_words[start : start + PAIR_CHUNK, :q_width]  # (p, Lq)
        t = text_words[start : start + PAIR_CHUNK, :t_width]  # (p, Lt)
        sims = words.cosines(q, t)  # (p, Lq, Lt)
        counts = _kernel_counts(sims, q >= 0, (t >= 0).astype(np.float32))
        out[start : start + PAIR_CHUNK, :q_width] = counts
    return out


def _used_width(word_ids: np.ndarray) -> int:
    """How many leading columns hold a word in some row (at least one)."""
    used = (word_ids >= 0).any(axis=0)
    return max(int(np.flatnonzero(used)[-1]) + 1 if used.any() else 1, 1)


def _pair_features(
    words: FrameWords, query_words: np.ndarray, text_words: np.ndarray
) -> np.ndarray:
    """(P, K) kernel features of P (query, text) pairs: per kernel, the mean over query words of
    log1p(soft count of matching text words)."""
    per_word = _term_counts(words, query_words, text_words)  # (P, Lq, K)
    n_words = np.maximum((query_words >= 0).sum(axis=1, keepdims=True), 1)  # (P, 1)
    return (per_word.sum(axis=1) / n_words).astype(np.float32)


def word_match(
    strings: Sequence[str],
    text_codes: np.ndarray,
    query_index: int | None,
    cfg: TextConfig,
    cache_dir: Path,
    words: FrameWords | None = None,
) -> np.ndarray:
    """(N, n_match_features) kernel features of the query against every other text column.

    `strings` and `text_codes` (N, T) are those of an encoded frame (string 0 is the null text);
    `words`, their `frame_words` when the caller has them already.
    """
    n_rows, n_texts = text_codes.shape
    if query_index is None or n_texts < 2:
        return np.zeros((n_rows, 0), dtype=np.float32)
    words = words or frame_words(strings, text_codes, query_index, cfg, cache_dir)
    if words is None:
        return np.zeros((n_rows, n_match_features(n_texts, query_index)), dtype=np.float32)
    table = words.table
    parts = []
    for other in (t for t in range(n_texts) if t != query_index):
        pairs = text_codes[:, [query_index, other]]  # (N, 2)
        distinct, index = unique_rows(pairs)  # (P, 2), (N,)
        features = _pair_features(words, table[distinct[:, 0]], table[distinct[:, 1]])
        features[(distinct == 0).any(axis=1)] = 0.0  # a null query or text matches nothing
        parts.append(features[index.reshape(-1)])  # (N, K)
    return np.concatenate(parts, axis=1)


# ---------------------------------------------------------------------------------------------
# Per-term match for a term gating network (DRMM: Guo, Fan, Ai, Croft, "A Deep Relevance Matching
# Model for Ad-hoc Retrieval", CIKM 2016). The mean over query words above cannot tell which
# word went unmatched: a missing brand costs more relevance than a missing material. Here each
# query word keeps its own kernel counts, and the model weighs them by what the word is (its
# frozen embedding), so "bosch" unmatched in a Makita title can count against the item.

MAX_QUERY_TERMS = 8  # queries are a few words; longer ones keep their first 8


@dataclass(frozen=True)
class TermMatch:
    """Per-row query terms with their kernel counts against every other text.

    `counts[p]` and `terms[p]` belong to distinct (query, texts) tuple p, `index` maps rows to
    tuples (few distinct pairs, many rows); `vectors` row 0 is the padding term (zeros)."""

    counts: np.ndarray  # (P, MAX_QUERY_TERMS, n_term_features) float32
    terms: np.ndarray  # (P, MAX_QUERY_TERMS) int64 rows of `vectors`, 0 pads
    index: np.ndarray  # (N,) int64
    vectors: np.ndarray  # (V + 1, D) float32
    buckets: np.ndarray  # (V + 1,) int64 hash bucket of each word (1..term_buckets), 0 pads


def word_buckets(vocabulary: Sequence[str], n_buckets: int) -> np.ndarray:
    """(V + 1,) a stable bucket per word, 1..n_buckets (0: padding; all 0 when n_buckets is 0):
    the same word gets the same bucket in every frame and process (CRC32, not Python's hash)."""
    if n_buckets == 0:
        return np.zeros(len(vocabulary) + 1, np.int64)
    hashed = [zlib.crc32(word.encode()) % n_buckets + 1 for word in vocabulary]
    return np.asarray([0, *hashed], dtype=np.int64)


def n_term_features(n_texts: int, query_index: int | None) -> int:
    """Kernel counts per query term: one kernel vector per text other than the query."""
    return n_match_features(n_texts, query_index)


def term_match(
    strings: Sequence[str],
    text_codes: np.ndarray,
    query_index: int | None,
    cfg: TextConfig,
    cache_dir: Path,
    words: FrameWords | None = None,
) -> TermMatch | None:
    """The per-term match of the query against every other text column; None without a query
    and another text. Arguments as for `word_match`."""
    n_rows, n_texts = text_codes.shape
    if query_index is None or n_texts < 2:
        return None
    words = words or frame_words(strings, text_codes, query_index, cfg, cache_dir)
    table = words.table if words is not None else _word_table(strings)[0]
    others = [t for t in range(n_texts) if t != query_index]
    tuples = text_codes[:, [query_index, *others]]  # (N, T)
    distinct, index = unique_rows(tuples)  # (P, T), (N,)
    width = n_term_features(n_texts, query_index)
    terms = np.maximum(table[distinct[:, 0], :MAX_QUERY_TERMS] + 1, 0)  # (P, Lq), 0 pads
    if words is None:
        counts = np.zeros((len(distinct), MAX_QUERY_TERMS, width), np.float32)
        vectors = np.zeros((1, encoder_dim(cfg)), np.float32)
        buckets = np.zeros(1, np.int64)
        return TermMatch(counts, terms.astype(np.int64), index.reshape(-1), vectors, buckets)
    vectors, vocabulary = words.vectors, words.vocabulary
    query_words = table[distinct[:, 0], :MAX_QUERY_TERMS]  # (P, Lq)
    parts = []
    for column in range(1, distinct.shape[1]):
        counts = _term_counts(words, query_words, table[distinct[:, column]])  # (P, Lq, K)
        counts[distinct[:, column] == 0] = 0.0  # a null text matches nothing
        parts.append(counts)
    padded = np.concatenate([np.zeros((1, vectors.shape[1]), np.float32), vectors], axis=0)
    counts = np.concatenate(parts, axis=2)  # (P, Lq, width)
    buckets = word_buckets(vocabulary, cfg.term_buckets)
    return TermMatch(
        counts, terms.astype(np.int64), index.reshape(-1), padded.astype(np.float32), buckets
    )
