"""Query spelling correction: a misspelling becomes the catalogue word meant, real words stay."""

import pandas as pd
import pytest

from mtlrec.model.inputs import FeatureSpec, SchemaFeature
from mtlrec.model.spelling import SpellingCorrector, edits1, fit_lexicon

TITLES = [
    "Bosch Cordless Drill",
    "Makita Cordless Drill",
    "Velvet Sofa",
    "Red Backpack",
    "Bose Speaker",
]
QUERIES = ["couch", "red couch", "cordless drill", "bsoe speaker"]


@pytest.fixture(scope="module")
def corrector() -> SpellingCorrector:
    return SpellingCorrector(fit_lexicon(QUERIES, TITLES))


def test_lexicon_has_title_words_and_repeated_query_words_most_frequent_first() -> None:
    lexicon = fit_lexicon(QUERIES + [None], TITLES + [None])
    # two titles each, or two queries; "cordless drill" is one query: no extra count
    assert lexicon[:3] == ("cordless", "couch", "drill")
    assert "couch" in lexicon  # in two distinct queries: a word people use
    assert "bsoe" not in lexicon  # a misspelling typed once
    assert fit_lexicon(QUERIES, TITLES) == fit_lexicon(reversed(QUERIES), reversed(TITLES))


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("bsoe speaker", "bose speaker"),  # swapped neighbours
        ("bakpack", "backpack"),  # a dropped letter
        ("cordlesss drill", "cordless drill"),  # an extra letter
        ("velvet sofa", "velvet sofa"),  # already right
        ("red couch", "red couch"),  # a real word no title has
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
    corrector = SpellingCorrector(("cart", "card"))  # "carx" is one edit from both
    assert corrector("carx") == "cart"
    assert SpellingCorrector(("card", "cart"))("carx") == "card"


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
        {"query": ["bsoe speaker", None], "title": ["bsoe speaker", "Red Backpack"]}
    )
    plain = FeatureSpec.fit(schema, train, hash_buckets=8).encode(rows)
    fitted = FeatureSpec.fit(schema, train, hash_buckets=8, spell_correct=True)
    fixed = fitted.encode(rows)
    assert plain.strings[plain.text_codes[0, 0]] == "bsoe speaker"
    assert fixed.strings[fixed.text_codes[0, 0]] == "bose speaker"
    assert fixed.strings[fixed.text_codes[0, 1]] == "bsoe speaker"  # titles are never changed
    assert fixed.text_codes[1, 0] == 0  # a null query stays null
    assert FeatureSpec.from_json(fitted.to_json()) == fitted  # serving corrects the same way
