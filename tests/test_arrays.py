import numpy as np

from mtlrec.arrays import unique_rows


def test_unique_rows_is_numpy_s_unique_over_rows() -> None:
    rng = np.random.default_rng(0)
    for codes in (
        rng.integers(0, 5, size=(200, 2)),
        rng.integers(0, 1 << 20, size=(300, 3)),  # 60 bits: packed in one int64 key
        rng.integers(0, 1 << 40, size=(50, 2)),  # 80 bits: numpy's own row-wise unique
        np.zeros((0, 2), np.int64),
    ):
        distinct, index = unique_rows(codes)
        expected, inverse = np.unique(codes, axis=0, return_inverse=True)
        assert np.array_equal(distinct, expected)
        assert np.array_equal(index, inverse.reshape(-1))
        assert np.array_equal(distinct[index], codes)
