"""Query spelling correction against the shop's own words (edit distance 1, Norvig-style).

A misspelled query word ("backpck", "cordelss") is a word the encoder has rarely seen and that no
title contains: the exact-match kernels miss it and its embedding drifts from the word meant, so a
model scores the item as irrelevant whatever it learned. Search engines rewrite such words before
ranking. Here a query word of at least `MIN_LENGTH` characters that is not in the lexicon is
replaced by the most frequent lexicon word one edit away (a deletion, insertion, substitution or
swap of adjacent characters); a word with no such neighbour is kept as typed.

The lexicon is fitted on the training frame: every word of the item texts (titles), and every
query word seen in at least `MIN_QUERIES` distinct queries, so that a correctly spelled word
people use but titles do not ("couch" for a sofa) is never "corrected" into a title word. It is
stored in the feature spec, so serving corrects exactly as training did.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping

MIN_LENGTH = 4  # shorter words are too ambiguous at one edit ("led" / "red"), typos need four
MIN_QUERIES = 2  # a misspelling is rarely typed the same way in two different queries
_TOKEN = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def fit_lexicon(queries: Iterable[object], texts: Iterable[object]) -> tuple[str, ...]:
    """Words of the distinct `texts` and of `MIN_QUERIES`+ distinct `queries`, most frequent first
    (ties in alphabetical order, so the fit is deterministic). Nulls are skipped."""
    counts: Counter[str] = Counter()
    for text in {t for t in texts if isinstance(t, str)}:
        counts.update(tokens(text))
    in_queries: Counter[str] = Counter()
    for query in {q for q in queries if isinstance(q, str)}:
        in_queries.update(set(tokens(query)))
    for word, n_queries in in_queries.items():
        if n_queries >= MIN_QUERIES:
            counts[word] += n_queries
    return tuple(sorted(counts, key=lambda word: (-counts[word], word)))


def _alphabet(rank: Mapping[str, int]) -> str:
    return "".join(sorted({char for word in rank for char in word}))


def edits1(word: str, alphabet: str) -> set[str]:
    """Every string one deletion, swap of neighbours, substitution or insertion from `word`."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    swaps = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in splits if b for c in alphabet}
    inserts = {a + c + b for a, b in splits for c in alphabet}
    return deletes | swaps | replaces | inserts


class SpellingCorrector:
    """Corrects query words against a fitted lexicon (see the module docstring)."""

    def __init__(self, lexicon: Iterable[str]) -> None:
        self.rank = {word: i for i, word in enumerate(lexicon)}
        self.alphabet = _alphabet(self.rank)
        self._fixes: dict[str, str] = {}

    def word(self, word: str) -> str:
        """The lexicon word meant by `word` (lowercase), or `word` itself."""
        if len(word) < MIN_LENGTH or word in self.rank or not self.rank:
            return word
        if word not in self._fixes:
            candidates = [w for w in edits1(word, self.alphabet) if w in self.rank]
            self._fixes[word] = min(candidates, key=self.rank.__getitem__, default=word)
        return self._fixes[word]

    def __call__(self, text: object) -> object:
        """The text with its misspelled words replaced (lowercased); a null stays null."""
        if not isinstance(text, str):
            return text
        return _TOKEN.sub(lambda match: self.word(match.group(0)), text.lower())
