"""The on-demand view's function on hand-made rows (Feast runs the same function, offline and
online; tests/features/test_store.py checks that the two agree)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import pandas as pd
import pytest

from tests.conftest import REPO

# Top-level modules of feature_repo/, importable only with it on sys.path (as `feast` does).
REPO_MODULES = ("features", "data_sources", "entities", "ttls", "windows")


@pytest.fixture(scope="module")
def match() -> Callable[[pd.DataFrame], pd.DataFrame]:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO / "feature_repo"))
        view = importlib.import_module("features.query").query_item_match
        for name in [m for m in sys.modules if m.split(".")[0] in REPO_MODULES]:
            del sys.modules[name]  # keep the repo's modules out of the rest of the session
    return view.feature_transformation.udf


def _rows(*rows: tuple[str | None, str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["query", "title", "category", "brand"])


def test_word_overlap_and_phrase_flags(match: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    out = match(
        _rows(
            ("desk lamp", "Wood Architect Lamp, White, Eye-Care", "desk lamp", "unknown"),
            ("sony earbuds", "Sony True Wireless Earbuds", "headphones", "Sony"),
            ("lamp", "Desk Lamp LED", "desk lamp", "Acme"),
        )
    )
    # {desk, lamp} vs {wood, architect, lamp, white, eye-care}: 1 shared of 6
    assert out["title_jaccard"].tolist() == pytest.approx([1 / 6, 2 / 4, 1 / 3])
    assert out["query_coverage"].tolist() == pytest.approx([0.5, 1.0, 1.0])
    assert out["category_in_query"].tolist() == [1, 0, 0]  # "desk lamp" is no phrase of "lamp"
    assert out["brand_in_query"].tolist() == [0, 1, 0]


def test_no_query_gives_zeros_and_unknown_never_matches(
    match: Callable[[pd.DataFrame], pd.DataFrame],
) -> None:
    out = match(
        _rows(
            (None, "Sony True Wireless Earbuds", "headphones", "Sony"),
            ("unknown lamp", "Lamp", "unknown", "unknown"),
        )
    )
    assert out.iloc[0].tolist() == [0, 0, 0, 0]
    assert out.loc[1, ["category_in_query", "brand_in_query"]].tolist() == [0, 0]
    assert str(out["title_jaccard"].dtype) == "float32"
    assert str(out["category_in_query"].dtype) == "int64"


def test_the_view_splits_words_as_the_model_does(
    match: Callable[[pd.DataFrame], pd.DataFrame],
) -> None:
    """One tokenizer: "usb-c" and "5.3" are one word for the feature store as for the model."""
    from mtlrec.model.match import words

    title = "Anker Speaker, USB-C, Bluetooth 5.3"
    out = match(_rows(("usb-c bluetooth 5.3", title, "bluetooth speaker", "Anker")))
    assert words("usb-c bluetooth 5.3") == ["usb-c", "bluetooth", "5.3"]
    assert out["query_coverage"].tolist() == [1.0]  # [a-z0-9]+ would see usb, c, 5, 3
    assert out["title_jaccard"].tolist() == pytest.approx([3 / 5])


def test_repeated_rows_and_nulls_match_as_each_row_alone(
    match: Callable[[pd.DataFrame], pd.DataFrame],
) -> None:
    """Each distinct row is computed once: a frame's rows give what they give one by one."""
    rows = [
        ("desk lamp", "Desk Lamp LED", "desk lamp", "Acme"),
        (None, "Desk Lamp LED", "desk lamp", "Acme"),
        (float("nan"), "Desk Lamp LED", "desk lamp", "Acme"),
        ("sony earbuds", "Sony True Wireless Earbuds", "headphones", "Sony"),
        ("desk lamp", "Desk Lamp LED", "desk lamp", "Acme"),
        ("desk lamp", None, "desk lamp", float("nan")),
    ]
    together = match(_rows(*rows))
    alone = pd.concat([match(_rows(row)) for row in rows], ignore_index=True)
    pd.testing.assert_frame_equal(together, alone)
    assert together.iloc[0].tolist() == together.iloc[4].tolist() != [0, 0, 0, 0]
    assert together.iloc[1].tolist() == together.iloc[2].tolist() == [0, 0, 0, 0]


def test_no_rows_give_an_empty_frame_of_the_view_s_columns(
    match: Callable[[pd.DataFrame], pd.DataFrame],
) -> None:
    out = match(_rows())
    assert list(out.columns) == [
        "title_jaccard", "query_coverage", "category_in_query", "brand_in_query"
    ]  # fmt: skip
    assert len(out) == 0 and str(out["brand_in_query"].dtype) == "int64"
