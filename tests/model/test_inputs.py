"""The feature spec: fitted from schema + train frame, JSON round trip, deterministic encoding."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mtlrec.model.inputs import frame_cosines, query_cosines
from mtlrec.model.spec import FeatureSpec, SchemaFeature, hash_ids, read_schema
from mtlrec.model.text import TextTable
from mtlrec.training.synthetic import SCHEMA, synthetic_frame


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_frame(120, 30, seed=3)


def schema(*extra: dict) -> list[SchemaFeature]:
    return [SchemaFeature(f["name"], f["kind"]) for f in [*SCHEMA, *extra]]


def test_spec_groups_schema_features_by_kind(frame: pd.DataFrame) -> None:
    spec = FeatureSpec.fit(schema(), frame, hash_buckets=50)
    assert spec.ids == ("user_id", "item_id")
    assert spec.texts == ("query", "item_profile__title")
    assert spec.query_index == 0
    assert [n.name for n in spec.numerics] == ["item_profile__price", "user_activity__clicks_7d"]
    assert spec.field_sizes[:2] == [51, 51]
    assert spec.dense_dim == 4  # two values + two missing flags


def test_encoding_handles_missing_and_unseen_values(frame: pd.DataFrame) -> None:
    spec = FeatureSpec.fit(schema(), frame, hash_buckets=50)
    rows = frame.head(3).copy()
    rows["user_id"] = [-1, 7, 7]
    rows["item_profile__category"] = ["never-seen", None, rows["item_profile__category"].iloc[2]]
    rows["user_activity__clicks_7d"] = [np.nan, 1.0, 1.0]
    rows["query"] = [None, "  ", "red mug"]
    encoded = spec.encode(rows)
    category = 2 + [c.name for c in spec.categoricals].index("item_profile__category")
    assert encoded.fields[0, 0] == 0 and encoded.fields[1, 0] == encoded.fields[2, 0] > 0
    assert list(encoded.fields[:, category][:2]) == [0, 0] and encoded.fields[2, category] > 0
    assert encoded.dense[0, 1] == 0.0 and encoded.dense[0, 3] == 1.0  # value 0, missing flag 1
    assert list(encoded.text_codes[:, 0]) == [0, 0, encoded.text_codes[2, 0]]
    assert encoded.strings[encoded.text_codes[2, 0]] == "red mug"


def test_numeric_is_standardised_on_train(frame: pd.DataFrame) -> None:
    spec = FeatureSpec.fit(schema(), frame, hash_buckets=50)
    price = spec.encode(frame).dense[:, 0]
    assert abs(price.mean()) < 1e-5 and abs(price.std() - 1.0) < 1e-3


def test_float_categories_match_their_integer_form() -> None:
    train = pd.DataFrame({"age": [1, 2, 2]})
    spec = FeatureSpec.fit([SchemaFeature("age", "categorical")], train, hash_buckets=10)
    encoded = spec.encode(pd.DataFrame({"age": [2.0, np.nan, 1.0]}))
    assert list(encoded.fields[:, 0]) == [1, 0, 2]  # "2" is most frequent: index 1


def test_id_hash_is_stable_across_dtypes_and_calls() -> None:
    ids = pd.Series([5, 123456789012, -1])
    first = hash_ids(ids, 1000)
    assert list(first) == list(hash_ids(ids.astype("Int64"), 1000))
    assert first[2] == 0 and 1 <= first[0] <= 1000
    assert list(first) == [int(v) for v in hash_ids(ids, 1000)]


def test_spec_json_round_trip(frame: pd.DataFrame) -> None:
    with_array = synthetic_frame(40, 10, seed=1)
    array = {"name": "item_profile__title_embedding", "kind": "array"}
    spec = FeatureSpec.fit(schema(array), with_array, hash_buckets=50)
    assert spec.arrays[0].length == 4 and spec.dense_dim == 4 + 4 + 1
    restored = FeatureSpec.from_json(spec.to_json())
    assert restored == spec
    np.testing.assert_array_equal(restored.encode(with_array).dense, spec.encode(with_array).dense)


def test_array_features_encode_values_and_missing_flags() -> None:
    """An array feature's values fill its columns (NaN as 0), a null or NaN row is zeros with
    its missing flag, and a row of another length fails naming the feature."""
    rows = [np.array([1.0, np.nan, 3.0]), None, [4.0, 5.0, 6.0], np.nan]
    frame = pd.DataFrame({"emb": pd.Series(rows, dtype=object)})
    spec = FeatureSpec.fit([SchemaFeature("emb", "array")], frame, hash_buckets=10)
    assert spec.arrays[0].length == 3
    dense = spec.encode(frame).dense
    assert dense.dtype == np.float32
    expected = [[1, 0, 3, 0], [0, 0, 0, 1], [4, 5, 6, 0], [0, 0, 0, 1]]
    np.testing.assert_array_equal(dense, np.array(expected, np.float32))
    full = pd.DataFrame({"emb": pd.Series([[1.0, 2.0, 3.0], [7.0, 8.0, 9.0]], dtype=object)})
    np.testing.assert_array_equal(spec.encode(full).dense[:, :3], [[1, 2, 3], [7, 8, 9]])
    short = pd.DataFrame({"emb": pd.Series([[1.0, 2.0, 3.0], [1.0, 2.0]], dtype=object)})
    with pytest.raises(ValueError, match="emb: length 2 != 3"):
        spec.encode(short)


def test_schema_rejects_labels_and_unknown_kinds(tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps({"features": [{"name": "click", "kind": "numeric"}]}))
    with pytest.raises(ValueError, match="leak"):
        read_schema(path)
    path.write_text(json.dumps({"features": [{"name": "x", "kind": "image"}]}))
    with pytest.raises(ValueError, match="unknown feature kinds"):
        read_schema(path)


def test_missing_feature_column_fails(frame: pd.DataFrame) -> None:
    spec = FeatureSpec.fit(schema(), frame, hash_buckets=50)
    with pytest.raises(KeyError, match="item_profile__price"):
        spec.encode(frame.drop(columns=["item_profile__price"]))


def test_categorical_codes_are_those_of_a_row_by_row_lookup() -> None:
    """Codes come from each distinct value keyed once: the same as keying every row (a float
    column of whole numbers keys as integers; 3 and "3" share a key; NaN, None are missing)."""
    from mtlrec.model.spec import _encode_categorical, _fit_categorical, category_keys

    columns = {
        "object": pd.Series([3, "3", None, "a", "b", "a", float("nan"), "zz"], dtype=object),
        "float": pd.Series([1.0, 2.0, None, 2.0, 7.0, 1.0, 1.0, 9.0]),
        "nullable": pd.Series([1, 2, None, 2, 5, 1, 1, 4], dtype="Int64"),
        "category": pd.Series([*"xyxyxy", None, "w"], dtype=pd.CategoricalDtype([*"xyzw"])),
    }
    for name, column in columns.items():
        feature = _fit_categorical(name, column.iloc[:6], max_size=10)  # the last rows unseen
        keys, missing = category_keys(column)
        vocabulary = {key: code for code, key in enumerate(feature.vocabulary, start=1)}
        expected = [
            0 if gone else vocabulary.get(key, 0) for key, gone in zip(keys, missing, strict=True)
        ]
        assert _encode_categorical(feature, column).tolist() == expected, name
    # counted per key: "3" twice (3 and "3"), "a" twice, "b" once; unused categories left out
    assert _fit_categorical("o", columns["object"], 10).vocabulary == ("3", "a", "b", "zz")
    assert _fit_categorical("c", columns["category"], 10).vocabulary == ("x", "y", "w")


def test_distinct_texts_in_order_of_first_appearance() -> None:
    from mtlrec.model.spec import distinct_texts

    strings, codes = distinct_texts([["b", " a ", None, "b", float("nan"), "  "], ["a", "c"]])
    assert strings == ["", "b", "a", "c"]  # row 0: the null text; blanks and NaN are null
    assert [c.tolist() for c in codes] == [[1, 2, 0, 1, 0, 0], [2, 3]]


def test_numerics_are_scaled_the_same_in_blocks_of_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    from mtlrec.model import spec

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.lognormal(size=50), "y": rng.normal(size=50)})
    frame.loc[::7, "x"] = np.nan
    frame.loc[::9, "y"] = np.inf
    features = (
        spec.NumericFeature("x", mean=0.5, std=2.0, log1p=True),
        spec.NumericFeature("y", mean=-0.1, std=0.5, log1p=False),
    )
    whole = spec._encode_numerics(features, frame)
    monkeypatch.setattr(spec, "NUMERIC_BLOCK_ROWS", 8)
    blocks = spec._encode_numerics(features, frame)
    for a, b in zip(whole, blocks, strict=True):
        assert np.array_equal(a, b)
    values, flags = whole
    assert flags[::7, 0].all() and flags[::9, 1].all() and not flags[1:7, 0].any()
    assert (values[flags.astype(bool)] == 0.0).all()
    expected = (np.log1p(frame["x"].iloc[1]) - 0.5) / 2.0
    assert values[1, 0] == pytest.approx(expected)


def test_frame_cosines_are_the_row_by_row_cosines_bit_for_bit() -> None:
    """Computed once per distinct (query, text, ...) combination, copied to its rows: the same
    bits as every row's own, nulls (code 0) included."""
    torch.manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(12, 16), dim=-1)
    embeddings[0] = 0.0  # the null text
    codes = torch.randint(0, 12, (500, 3))
    expected = query_cosines(embeddings, codes, codes > 0, 1)
    cosines = frame_cosines(TextTable(["s"] * 12, embeddings=embeddings), codes, 1)
    assert cosines is not None and cosines.shape == (500, 2)
    assert torch.equal(cosines, expected)
    assert (cosines[(codes[:, 1] == 0)] == 0).all()
