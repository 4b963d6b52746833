"""Query spelling correction: a misspelling becomes the catalogue word meant, real words stay."""

import numpy as np
import pandas as pd
import pytest

from mtlrec.model.spec import FeatureSpec, SchemaFeature
from mtlrec.model.spelling import SpellingCorrector, edits1, fit_lexicon

TITLES = [
    "Bosch Cordless Drill",
    "Makita Cordless Drill",
    "Velvet Sofa",
    "Red Backpack",
    "Bose Speaker",
]
QUERIES = ["couch", "red couch", "cordless drill", "speaker"]


@pytest.fixture(scope="module")
def corrector() -> SpellingCorrector:
    return SpellingCorrector(fit_lexicon(QUERIES, TITLES))


def test_lexicon_counts_texts_and_queries_most_frequent_first() -> None:
    lexicon = fit_lexicon(QUERIES + [None], TITLES + [None])
    assert lexicon[:2] == (("cordless", 3, True), ("drill", 3, True))  # 2 titles + 1 query
    assert ("couch", 2, False) in lexicon and ("speaker", 2, True) in lexicon
    assert fit_lexicon(QUERIES, TITLES) == fit_lexicon(reversed(QUERIES), reversed(TITLES))


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("bsoe speaker", "bose speaker"),  # swapped neighbours
        ("bakpack", "backpack"),  # a dropped letter
        ("cordlesss drill", "cordless drill"),  # an extra letter
        ("velvet sofa", "velvet sofa"),  # already right
        ("red couch", "red couch"),  # a word no title has, but people use: kept
        ("couche", "couch"),  # never seen in training: any known word one edit away
        ("Velvet SOFA", "velvet sofa"),  # lowercased, as the encoder reads it
        ("xyzzy drill", "xyzzy drill"),  # nothing one edit away: kept as typed
        ("bsoe", "bose"),
        ("ted", "ted"),  # three letters: "red" is one edit away, but too ambiguous to change
    ],
)
def test_corrects_one_edit_misspellings(
    corrector: SpellingCorrector, typed: str, meant: str
) -> None:
    assert corrector(typed) == meant


def test_null_stays_null_and_empty_lexicon_changes_nothing(corrector: SpellingCorrector) -> None:
    assert corrector(None) is None
    assert SpellingCorrector(()).word("bsoe") == "bsoe"


def test_ties_go_to_the_more_frequent_word() -> None:
    corrector = SpellingCorrector(
        [("cart", 9, True), ("card", 5, True)]
    )  # "carx": one edit from both
    assert corrector("carx") == "cart"
    assert SpellingCorrector([("card", 9, True), ("cart", 5, True)])("carx") == "card"


def test_a_shared_misspelling_is_still_corrected_but_catalogue_words_never_are() -> None:
    # "liht" typed in two queries is in the lexicon, yet "light" is far more frequent;
    # "rose" (a colour in titles) is one edit from the more frequent brand "bose": kept.
    lexicon = [("light", 40, True), ("bose", 30, True), ("rose", 3, True), ("liht", 2, False)]
    corrector = SpellingCorrector(lexicon)
    assert corrector("reading liht") == "reading light"
    assert corrector("rose headphones") == "rose headphones"
    assert SpellingCorrector([("light", 9, True), ("liht", 2, False)])("liht") == "liht"


def test_edits1_are_exactly_one_edit_away() -> None:
    edits = edits1("abc", "abc")
    assert {"bac", "ab", "abcc", "aac"} <= edits
    assert "cba" not in edits and "abc" in edits  # substituting a letter by itself


def test_spec_corrects_queries_only_when_fitted_to() -> None:
    schema = [SchemaFeature("query", "text"), SchemaFeature("title", "text")]
    train = pd.DataFrame(
        {"query": ["bose speaker", None], "title": ["Bose Speaker", "Red Backpack"]}
    )
    rows = pd.DataFrame(
        {"query": ["bsoe speaker", None, np.nan], "title": ["bsoe speaker", "Red Backpack", "x"]}
    )
    plain_spec = FeatureSpec.fit(schema, train, hash_buckets=8)
    plain, plain_dim = plain_spec.encode(rows), plain_spec.dense_dim
    fitted = FeatureSpec.fit(schema, train, hash_buckets=8, spell_correct=True)
    fixed = fitted.encode(rows)
    assert plain.strings[plain.text_codes[0, 0]] == "bsoe speaker"
    assert fixed.strings[fixed.text_codes[0, 0]] == "bose speaker"
    assert fixed.strings[fixed.text_codes[0, 1]] == "bsoe speaker"  # titles are never changed
    assert fixed.text_codes[1, 0] == fixed.text_codes[2, 0] == 0  # a null query stays null
    assert fitted.dense_dim == plain_dim + 1 and list(fixed.dense[:, -1]) == [1.0, 0.0, 0.0]
    assert FeatureSpec.from_json(fitted.to_json()) == fitted  # serving corrects the same way
