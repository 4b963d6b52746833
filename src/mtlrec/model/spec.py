"""The fitted feature spec: what turns a feature frame into the model's arrays.

`FeatureSpec` is fitted on the training frame only (vocabularies, numeric statistics, array
lengths, the spelling lexicon) and saved next to the weights as JSON, so serving transforms a
frame exactly as training did. Every feature listed in `schema.json` is used; a new column there
grows the model's input, no code change. numpy and pandas only: the tensors are `inputs.py`'s.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd

from mtlrec.model.spelling import LexiconEntry, SpellingCorrector, fit_lexicon
from mtlrec.model.tasks import LABEL_COLUMNS
from mtlrec.tokens import clean_text

FeatureKind = Literal["id", "categorical", "numeric", "text", "array"]
QUERY_FEATURE = "query"
SPEC_VERSION = 1
NUMERIC_BLOCK_ROWS = 16_384  # rows of numerics scaled at a time
NUMERIC_CLIP = 10.0  # a drifted outlier at serving time must not saturate the network
SKEW_FOR_LOG1P = 2.0


@dataclass(frozen=True)
class SchemaFeature:
    name: str
    kind: FeatureKind


def read_schema(path: Path) -> list[SchemaFeature]:
    """Features of `schema.json`, rejecting unknown kinds, duplicates and label columns."""
    raw = json.loads(Path(path).read_text())
    features = [SchemaFeature(item["name"], item["kind"]) for item in raw["features"]]
    names = [feature.name for feature in features]
    bad_kinds = [f.kind for f in features if f.kind not in get_args(FeatureKind)]
    if bad_kinds:
        raise ValueError(f"{path}: unknown feature kinds {bad_kinds}")
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate feature names in {names}")
    leaks = sorted(set(names) & set(LABEL_COLUMNS))
    if leaks:
        raise ValueError(f"{path}: label columns {leaks} listed as features would leak the label")
    return features


@dataclass(frozen=True)
class CategoricalFeature:
    name: str
    vocabulary: tuple[str, ...]  # index i + 1; 0 is missing or out of vocabulary


@dataclass(frozen=True)
class NumericFeature:
    name: str
    log1p: bool
    mean: float
    std: float


@dataclass(frozen=True)
class ArrayFeature:
    name: str
    length: int


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """A fixed integer mixer: ids hash to the same bucket in every process and version."""
    x = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash_ids(series: pd.Series, buckets: int) -> np.ndarray:
    """Bucket 1..buckets per id; 0 for null or negative ids (-1 means "no user")."""
    missing = series.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(series):
        ints = series.fillna(-1).astype("int64").to_numpy()
        missing |= ints < 0
        hashed = _splitmix64(ints.view(np.uint64))
    else:
        hashed = pd.util.hash_array(series.astype(str).to_numpy(dtype=object))
    buckets_ = (hashed % np.uint64(buckets)).astype(np.int64) + 1
    return np.where(missing, 0, buckets_)


def category_keys(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """String keys of a categorical column and its missing mask; 3.0 (a nullable int) is "3"."""
    values = series.to_numpy()
    if values.dtype.kind in "iu":  # plain integers: nothing missing (a serving fast path)
        return values.astype(str).astype(object), np.zeros(len(values), bool)
    if values.dtype == object and all(type(v) is str for v in values):  # noqa: E721
        return values, np.zeros(len(values), bool)  # strings are their own keys
    missing = series.isna().to_numpy()
    present = series[~missing]
    if pd.api.types.is_float_dtype(series) and bool((np.mod(present, 1) == 0).all()):
        series = series.astype("Int64")
    return series.astype(str).to_numpy(dtype=object), missing


def _fit_categorical(name: str, series: pd.Series, max_size: int) -> CategoricalFeature:
    # Counted per distinct value, then per key (3 and "3" in one object column share a key).
    distinct = series.value_counts(dropna=True)
    keys, missing = category_keys(pd.Series(distinct.index, dtype=series.dtype))
    counts: dict[str, int] = {}
    for key, count in zip(keys[~missing], distinct.to_numpy()[~missing], strict=True):
        if count:  # a categorical dtype lists its unused categories with 0
            counts[key] = counts.get(key, 0) + int(count)
    # Most frequent first, ties by key: the same train frame gives the same vocabulary.
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:max_size]
    return CategoricalFeature(name, tuple(str(key) for key, _ in ordered))


def _numeric_values(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(series.dtype):  # already numbers: no parsing pass
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isfinite(values), values, np.nan)


def _fit_numeric(name: str, series: pd.Series) -> NumericFeature:
    values = _numeric_values(series)
    present = pd.Series(values[~np.isnan(values)])
    skew = present.skew() if len(present) > 2 else 0.0
    log1p = bool(len(present) and present.min() >= 0 and skew > SKEW_FOR_LOG1P)
    if log1p:
        present = np.log1p(present)
    mean = float(present.mean()) if len(present) else 0.0
    std = float(present.std(ddof=0)) if len(present) else 1.0
    return NumericFeature(name, log1p, mean, std if std > 1e-12 else 1.0)


def _present_arrays(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The values (object array) and whether each holds an array (None or a scalar NaN: no)."""
    values = series.to_numpy(dtype=object)
    present = np.fromiter((v is not None and np.ndim(v) > 0 for v in values), bool, len(values))
    return values, present


def _fit_array(name: str, series: pd.Series) -> ArrayFeature:
    values, present = _present_arrays(series)
    if not present.any():
        raise ValueError(f"array feature {name!r} has no value in the training frame")
    return ArrayFeature(name, int(len(values[present.argmax()])))


@dataclass(frozen=True)
class EncodedFrame:
    """A frame as arrays: `fields` (N, F) ids, `dense` (N, Dd), `text_codes` (N, T) rows of
    `strings` (row 0 is the null text)."""

    fields: np.ndarray
    dense: np.ndarray
    text_codes: np.ndarray
    strings: list[str]


@dataclass(frozen=True)
class FeatureSpec:
    """Everything fitted on the training frame that turns a frame into model inputs."""

    hash_buckets: int
    ids: tuple[str, ...] = ()
    categoricals: tuple[CategoricalFeature, ...] = ()
    numerics: tuple[NumericFeature, ...] = ()
    arrays: tuple[ArrayFeature, ...] = ()
    texts: tuple[str, ...] = ()
    # Query spelling correction (`text.spell_correct`): (word, count, in an item text) of the
    # training frame's words, most frequent first; empty: queries are read as typed.
    lexicon: tuple[LexiconEntry, ...] = ()
    version: int = field(default=SPEC_VERSION)

    @classmethod
    def fit(
        cls,
        schema: list[SchemaFeature],
        train: pd.DataFrame,
        hash_buckets: int,
        spell_correct: bool = False,
    ) -> FeatureSpec:
        _require_columns(train, [feature.name for feature in schema])
        by_kind = {
            kind: [f.name for f in schema if f.kind == kind] for kind in get_args(FeatureKind)
        }
        lexicon: tuple[LexiconEntry, ...] = ()
        if spell_correct and QUERY_FEATURE in by_kind["text"]:
            others = [train[name] for name in by_kind["text"] if name != QUERY_FEATURE]
            lexicon = fit_lexicon(train[QUERY_FEATURE], itertools.chain(*others))
        return cls(
            hash_buckets=hash_buckets,
            ids=tuple(by_kind["id"]),
            categoricals=tuple(
                _fit_categorical(name, train[name], hash_buckets) for name in by_kind["categorical"]
            ),
            numerics=tuple(_fit_numeric(name, train[name]) for name in by_kind["numeric"]),
            arrays=tuple(_fit_array(name, train[name]) for name in by_kind["array"]),
            texts=tuple(by_kind["text"]),
            lexicon=lexicon,
        )

    @property
    def field_names(self) -> list[str]:
        """Names of the embedded fields, in the column order of `EncodedFrame.fields`."""
        return [*self.ids, *(c.name for c in self.categoricals)]

    @property
    def field_sizes(self) -> list[int]:
        """Embedding-table rows per id/categorical field, the missing/OOV row 0 included."""
        return [self.hash_buckets + 1] * len(self.ids) + [
            len(c.vocabulary) + 1 for c in self.categoricals
        ]

    @property
    def dense_dim(self) -> int:
        """Numeric values and missing flags, then array values and missing flags, then (with
        spelling correction) whether the query was rewritten."""
        arrays = sum(a.length for a in self.arrays) + len(self.arrays)
        return 2 * len(self.numerics) + arrays + int(self.corrects_queries)

    @property
    def query_index(self) -> int | None:
        return self.texts.index(QUERY_FEATURE) if QUERY_FEATURE in self.texts else None

    @property
    def columns(self) -> list[str]:
        return [
            *self.ids,
            *(c.name for c in self.categoricals),
            *(n.name for n in self.numerics),
            *(a.name for a in self.arrays),
            *self.texts,
        ]

    def encode(self, frame: pd.DataFrame) -> EncodedFrame:
        _require_columns(frame, self.columns)
        n_rows = len(frame)
        fields = [hash_ids(frame[name], self.hash_buckets) for name in self.ids]
        fields += [_encode_categorical(c, frame[c.name]) for c in self.categoricals]
        texts = {name: self._text_values(frame, name) for name in self.texts}
        strings, codes = distinct_texts(texts[name] for name in self.texts)
        dense = self._encode_dense(frame)
        if self.corrects_queries:
            # Features computed upstream from the query as typed (the feature store's lexical
            # match) say "no match" for a word the correction fixed: this flag lets the model
            # learn when to discount them.
            rewritten = _rewritten(frame[QUERY_FEATURE].tolist(), texts[QUERY_FEATURE])
            dense = np.concatenate([dense, rewritten[:, None]], axis=1)
        return EncodedFrame(
            fields=np.stack(fields, axis=1) if fields else np.zeros((n_rows, 0), np.int64),
            dense=dense,
            text_codes=np.stack(codes, axis=1) if codes else np.zeros((n_rows, 0), np.int64),
            strings=strings,
        )

    @property
    def corrects_queries(self) -> bool:
        return bool(self.lexicon) and QUERY_FEATURE in self.texts

    def _text_values(self, frame: pd.DataFrame, name: str) -> list[object]:
        if name != QUERY_FEATURE or not self.lexicon:
            return frame[name].tolist()
        corrector = self._corrector()
        values = frame[name].tolist()
        fixed = {q: corrector(q) for q in {v for v in values if isinstance(v, str)}}
        return [fixed[v] if isinstance(v, str) else v for v in values]  # nulls (None, NaN) stay

    def _corrector(self) -> SpellingCorrector:
        # Built once per spec (a serving process corrects every request with it); its memo of
        # corrected words is a pure function of the lexicon.
        corrector = self.__dict__.get("_spelling")
        if corrector is None:
            corrector = SpellingCorrector(self.lexicon)
            object.__setattr__(self, "_spelling", corrector)
        return corrector

    def _encode_dense(self, frame: pd.DataFrame) -> np.ndarray:
        values, flags = _encode_numerics(self.numerics, frame)
        arrays = [_encode_array(a, frame[a.name]) for a in self.arrays]
        parts = [values, flags]
        parts += [value for value, _ in arrays] + [flag[:, None] for _, flag in arrays]
        # Cast as they are copied: no (N, dense_dim) float64 copy first (the numerics are
        # float64), 3.9 GB of peak memory for `mtl_v3`'s 1.07M training rows.
        return np.concatenate(parts, axis=1, dtype=np.float32)  # (N, dense_dim)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        raw = json.loads(text)
        if raw.get("version") != SPEC_VERSION:
            raise ValueError(f"feature spec version {raw.get('version')} != {SPEC_VERSION}")
        return cls(
            hash_buckets=int(raw["hash_buckets"]),
            ids=tuple(raw["ids"]),
            categoricals=tuple(
                CategoricalFeature(c["name"], tuple(c["vocabulary"])) for c in raw["categoricals"]
            ),
            numerics=tuple(NumericFeature(**n) for n in raw["numerics"]),
            arrays=tuple(ArrayFeature(**a) for a in raw["arrays"]),
            texts=tuple(raw["texts"]),
            lexicon=tuple(
                (w, int(n), bool(t)) for w, n, t in raw.get("lexicon", ())
            ),  # a spec saved before it: no correction
        )

    def save(self, path: Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: Path) -> FeatureSpec:
        return cls.from_json(Path(path).read_text())


def _require_columns(frame: pd.DataFrame, names: list[str]) -> None:
    # A silently all-null feature would be a training/serving skew: fail instead.
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise KeyError(f"frame lacks feature columns {missing}")


def _rewritten(typed: list[object], read: list[object]) -> np.ndarray:
    """(N,) 1.0 where spelling correction changed a query's words, else 0.0 (null queries too)."""
    changed = [isinstance(t, str) and t.lower() != r for t, r in zip(typed, read, strict=True)]
    return np.asarray(changed, dtype=np.float32)


def _encode_categorical(feature: CategoricalFeature, series: pd.Series) -> np.ndarray:
    """Each row's vocabulary code (0: missing or unseen). A column holds a handful of distinct
    values in a million rows: each distinct value is keyed and looked up once, then gathered."""
    rows, distinct = pd.factorize(series, use_na_sentinel=True)  # (N,) -1 where missing
    keys, missing = category_keys(pd.Series(distinct, dtype=series.dtype))
    index = _vocabulary_index(feature)
    codes = np.fromiter((index.get(key, 0) for key in keys), np.int64, len(keys))  # unseen: 0
    codes = np.append(np.where(missing, 0, codes), 0)  # the last entry: row code -1, missing
    return codes[rows]


_INDEXES: dict[int, tuple[CategoricalFeature, dict[str, int]]] = {}


def _vocabulary_index(feature: CategoricalFeature) -> dict[str, int]:
    """Each vocabulary key's code (1 + its position), built once per fitted feature (a
    service encodes each request with it)."""
    cached = _INDEXES.get(id(feature))
    if cached is None or cached[0] is not feature:
        codes = {key: code for code, key in enumerate(feature.vocabulary, start=1)}
        cached = (feature, codes)
        _INDEXES[id(feature)] = cached
    return cached[1]


def _encode_numerics(
    features: tuple[NumericFeature, ...], frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) scaled values (0 where missing) and (N, K) missing flags of K numeric columns,
    all columns at once (element for element what one column at a time computes: a serving
    request pays a few numpy calls, not a few per column)."""
    n_rows = len(frame)
    if not features:
        return np.zeros((n_rows, 0)), np.zeros((n_rows, 0), np.float32)
    values = np.empty((n_rows, len(features)), np.float64)
    dtypes = frame.dtypes
    numbers = [i for i, f in enumerate(features) if pd.api.types.is_numeric_dtype(dtypes[f.name])]
    if numbers:  # columns already numbers: converted together (what _numeric_values does)
        block = frame[[features[i].name for i in numbers]]
        values[:, numbers] = block.to_numpy(dtype=np.float64, na_value=np.nan)
    for column in sorted(set(range(len(features))) - set(numbers)):
        values[:, column] = _numeric_values(frame[features[column].name])
    log1p = np.array([feature.log1p for feature in features])
    mean = np.array([feature.mean for feature in features])
    std = np.array([feature.std for feature in features])
    flags = np.empty((n_rows, len(features)), np.float32)
    # In place, a block of rows at a time: a million rows x 30 columns is ~250 MB a pass, a
    # block stays in the cache for all of its passes.
    for start in range(0, n_rows, NUMERIC_BLOCK_ROWS):
        block_values = values[start : start + NUMERIC_BLOCK_ROWS]
        block_values[~np.isfinite(block_values)] = np.nan
        missing = np.isnan(block_values)
        if log1p.any():
            block_values[:, log1p] = np.log1p(np.clip(block_values[:, log1p], 0.0, None))
        block_values -= mean
        block_values /= std
        np.clip(block_values, -NUMERIC_CLIP, NUMERIC_CLIP, out=block_values)
        block_values[missing] = 0.0
        flags[start : start + NUMERIC_BLOCK_ROWS] = missing
    return values, flags


def _encode_array(feature: ArrayFeature, series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(N, length) values (NaN as 0, zero where missing) and (N,) missing flags.

    One `np.stack` into float32 and one `nan_to_num`, not one of each per row: `mtl_v3`'s
    384-float title embedding on the default data, 2.5 us a row instead of 5.6."""
    values, present = _present_arrays(series)
    out = np.zeros((len(values), feature.length), np.float32)
    rows = values[present]
    if len(rows):
        lengths = np.fromiter(map(len, rows), np.int64, len(rows))
        wrong = lengths[lengths != feature.length]
        if len(wrong):
            raise ValueError(f"{feature.name}: length {wrong[0]} != {feature.length}")
        if present.all():  # the usual case: straight into the result, no second copy
            np.stack(rows, out=out, casting="same_kind")
        else:
            out[present] = np.stack(rows, dtype=np.float32, casting="same_kind")
        np.nan_to_num(out, copy=False)
    return out, (~present).astype(np.float32)


def distinct_texts(columns: Iterable[Sequence[object]]) -> tuple[list[str], list[np.ndarray]]:
    """Distinct strings (row 0 is the null text) and each column as row indices into them."""
    index: dict[str | None, int] = {None: 0}
    coded = []
    for values in columns:
        # Texts repeat (a few thousand distinct in a million rows): each distinct value is
        # cleaned once, in order of first appearance, so the codes are those of a row-wise pass.
        rows, distinct = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
        codes = [index.setdefault(clean_text(value), len(index)) for value in distinct]
        coded.append(np.asarray([*codes, 0], np.int64)[rows])  # row code -1 (null): the last
    strings = [""] + [text for text in index if text is not None]
    return strings, coded
