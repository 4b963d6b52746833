"""Word-level query-title match features (K-NRM kernel pooling)."""

from pathlib import Path

import numpy as np
import pytest

from mtlrec.model import match
from mtlrec.model.match import KERNELS, n_match_features, word_match, words
from tests.plain import plain_text

TINY = plain_text(encoder="tiny", max_length=16)


def test_words_keep_model_numbers_whole() -> None:
    assert words("Anker Bluetooth 5.3 Headphones, USB-C") == [
        "anker", "bluetooth", "5.3", "headphones", "usb-c",
    ]  # fmt: skip
    assert words("") == [] and len(words("a " * 100)) == match.MAX_WORDS


def test_exact_match_kernel_counts_shared_words(tmp_path: Path) -> None:
    strings = ["", "red mug", "Red Mug, Ceramic", "blue lamp", "red lamp"]
    codes = np.array([[1, 2], [1, 3], [1, 4], [0, 2], [1, 0]])  # (query, title) per row
    features = word_match(strings, codes, 0, TINY, tmp_path)
    assert features.shape == (5, n_match_features(2, 0)) == (5, len(KERNELS))
    exact = features[:, 0]
    # Both query words found: log1p(1) each; one of two: half of that; none: 0.
    assert exact[0] == pytest.approx(np.log(2.0), abs=1e-3)
    assert exact[2] == pytest.approx(np.log(2.0) / 2, abs=1e-3)
    assert exact[1] == pytest.approx(0.0, abs=1e-3)
    assert not features[3:].any()  # a null query or a null title matches nothing


def test_same_pair_same_features_and_no_query_column(tmp_path: Path) -> None:
    strings = ["", "red mug", "red mug ceramic"]
    codes = np.array([[1, 2], [1, 2]])
    features = word_match(strings, codes, 0, TINY, tmp_path)
    np.testing.assert_array_equal(features[0], features[1])
    assert word_match(strings, codes, None, TINY, tmp_path).shape == (2, 0)


def test_term_match_says_which_query_word_went_unmatched(tmp_path: Path) -> None:
    strings = ["", "bosch drill", "Makita Cordless Drill", "Bosch Drill Kit"]
    codes = np.array([[1, 2], [1, 3], [0, 2], [1, 3]])  # (query, title) per row
    terms = match.term_match(strings, codes, 0, TINY, tmp_path)
    assert terms is not None
    rows = terms.index  # rows 1 and 3 are the same pair
    assert rows[1] == rows[3] and len(terms.counts) == 3
    exact = terms.counts[rows, :, 0]  # (N, Lq) exact-match kernel per query term
    assert exact[0, 0] == pytest.approx(0.0, abs=1e-3)  # "bosch" is not in the Makita title
    assert exact[0, 1] == pytest.approx(np.log(2.0), abs=1e-3)  # "drill" is
    assert exact[1, :2] == pytest.approx([np.log(2.0)] * 2, abs=1e-3)
    # Terms point at their own word vectors; padding (and a null query) at row 0, all zeros.
    t = terms.terms[rows]
    assert (t[0, :2] > 0).all() and not t[0, 2:].any() and not t[2].any()
    assert not terms.vectors[0].any()
    np.testing.assert_array_equal(terms.vectors[t[0, 1]], terms.vectors[t[1, 1]])  # "drill"
    assert not terms.counts[rows[2]].any()
    assert match.term_match(strings, codes, None, TINY, tmp_path) is None


def test_term_buckets_are_stable_across_frames(tmp_path: Path) -> None:
    cfg = TINY.model_copy(update={"term_buckets": 64})
    first = match.term_match(
        ["", "bosch drill", "Bosch Drill"], np.array([[1, 2]]), 0, cfg, tmp_path
    )
    other = ["", "red lamp", "drill bosch", "Red Lamp"]  # another vocabulary order
    second = match.term_match(other, np.array([[2, 3], [1, 3]]), 0, cfg, tmp_path)
    assert first is not None and second is not None
    bucket = lambda m, row, term: m.buckets[m.terms[m.index[row], term]]  # noqa: E731
    assert bucket(first, 0, 0) == bucket(second, 0, 1)  # "bosch", first and second word
    assert bucket(first, 0, 1) == bucket(second, 0, 0)  # "drill"
    assert 1 <= bucket(first, 0, 0) <= 64 and first.buckets[0] == 0  # 0 is padding only
    plain = match.term_match(
        ["", "bosch drill", "Bosch Drill"], np.array([[1, 2]]), 0, TINY, tmp_path
    )
    assert plain is not None and not plain.buckets.any()
