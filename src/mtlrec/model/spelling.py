"""Query spelling correction against the shop's own words (edit distance 1, Norvig-style).

A misspelled query word ("backpck", "cordelss") is a word the encoder has rarely seen and that no
title contains: the exact-match kernels miss it and its embedding drifts from the word meant, so a
model scores the item as irrelevant whatever it learned. Search engines rewrite such words before
ranking. Here a query word of at least `MIN_LENGTH` characters that no item text contains is
replaced by the most frequent lexicon word one edit away (a deletion, insertion, substitution or
swap of adjacent characters) that is at least `DOMINANCE` times as frequent as the word itself
(any, for a word never seen in training); a word with no such neighbour is kept as typed.

The lexicon is fitted on the training frame: every word of the item texts (titles), never
corrected, and every query word, each counted in how many distinct texts and queries it occurs.
A correctly spelled word that people use but titles do not ("couch" for a sofa) is frequent, and
stays; a misspelling is rare even when two queries happen to share it ("liht" for "light"). It is
stored in the feature spec, so serving corrects exactly as training did.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from mtlrec.tokens import WORD

MIN_LENGTH = 4  # shorter words are too ambiguous at one edit ("led" / "red"), typos need four
DOMINANCE = 5  # a correction must be this many times as frequent as the word typed

# (word, distinct texts and queries it occurs in, whether an item text has it)
LexiconEntry = tuple[str, int, bool]


def tokens(text: str) -> list[str]:
    return WORD.findall(text.lower())


def _document_counts(strings: Iterable[object]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in {t for t in strings if isinstance(t, str)}:
        counts.update(set(tokens(text)))
    return counts


def fit_lexicon(queries: Iterable[object], texts: Iterable[object]) -> tuple[LexiconEntry, ...]:
    """Every word of the distinct `texts` and `queries`, most frequent first (ties in alphabetical
    order, so the fit is deterministic). Nulls are skipped."""
    in_texts = _document_counts(texts)
    counts = in_texts + _document_counts(queries)
    ordered = sorted(counts, key=lambda word: (-counts[word], word))
    return tuple((word, counts[word], word in in_texts) for word in ordered)


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

    def __init__(self, lexicon: Iterable[Sequence[object]]) -> None:
        entries = [(str(word), int(count), bool(in_text)) for word, count, in_text in lexicon]
        self.rank = {word: i for i, (word, _, _) in enumerate(entries)}
        self.count = {word: count for word, count, _ in entries}
        self.catalogue = {word for word, _, in_text in entries if in_text}
        self.alphabet = _alphabet(self.rank)
        self._fixes: dict[str, str] = {}

    def word(self, word: str) -> str:
        """The lexicon word meant by `word` (lowercase), or `word` itself."""
        if len(word) < MIN_LENGTH or word in self.catalogue or not self.rank:
            return word
        if word not in self._fixes:
            floor = max(DOMINANCE * self.count.get(word, 0), 1)  # unseen: any word
            candidates = [w for w in edits1(word, self.alphabet) if self.count.get(w, 0) >= floor]
            self._fixes[word] = min(candidates, key=self.rank.__getitem__, default=word)
        return self._fixes[word]

    def __call__(self, text: object) -> object:
        """The text with its misspelled words replaced (lowercased); a null stays null."""
        if not isinstance(text, str):
            return text
        return WORD.sub(lambda match: self.word(match.group(0)), text.lower())
