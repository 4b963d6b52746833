import numpy as np
import pytest

from mtlrec.evaluation import metrics


def test_auc_none_for_one_class_and_perfect_ranking() -> None:
    assert metrics.auc(np.array([0, 0]), np.array([0.1, 0.2])) is None
    assert metrics.auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8])) == 1.0


def test_gauc_weights_groups_and_skips_single_class_groups() -> None:
    labels = np.array([0, 1, 0, 1, 1, 1])
    scores = np.array([0.1, 0.9, 0.9, 0.1, 0.5, 0.6])
    groups = np.array(["a", "a", "b", "b", "c", "c"])  # a perfect, b inverted, c one class
    assert metrics.gauc(labels, scores, groups) == pytest.approx(0.5)


def test_gauc_is_the_row_weighted_mean_of_each_group_s_roc_auc() -> None:
    """The rank formula against scikit-learn's ROC AUC per group, with tied scores (rounded)
    and groups of one class (left out)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    groups = rng.integers(0, 40, 3_000)
    scores = np.round(rng.uniform(size=3_000), 2)  # many ties
    labels = (rng.uniform(size=3_000) < 0.2 + 0.5 * scores * (groups % 3 > 0)).astype(int)
    labels[groups == 7] = 0  # one class: no AUC
    total = weight = 0.0
    for g in np.unique(groups):
        rows = groups == g
        if 0 < labels[rows].sum() < rows.sum():
            total += roc_auc_score(labels[rows], scores[rows]) * rows.sum()
            weight += rows.sum()
    assert metrics.gauc(labels, scores, groups) == pytest.approx(total / weight, abs=1e-12)
    assert metrics.gauc(np.zeros(4, int), scores[:4], groups[:4]) is None
    with pytest.raises(ValueError, match="0/1 labels"):
        metrics.gauc(np.array([0, 2]), scores[:2], groups[:2])


def test_ece_zero_when_calibrated_and_positive_when_not() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 20_000)
    y = (rng.uniform(0, 1, 20_000) < p).astype(int)
    assert metrics.ece(y, p) < 0.02
    assert metrics.ece(y, np.clip(p * 0.3, 0, 1)) > 0.2


def test_ece_weighs_each_equal_mass_bin_by_its_rows() -> None:
    p = np.array([0.1, 0.1, 0.2, 0.2, 0.8, 0.8, 0.9, 0.9])
    y = np.array([0, 0, 1, 0, 1, 1, 1, 1])
    # Two bins of four rows: |0.25 - 0.15| and |1.0 - 0.85|, each with weight 1/2.
    assert metrics.ece(y, p, bins=2) == pytest.approx(0.5 * 0.1 + 0.5 * 0.15)
    assert metrics.ece(np.ones(4, int), np.full(4, 0.5)) is None


def test_ndcg_per_query_mean() -> None:
    grades = np.array([3, 0, 2, 0])
    queries = np.array(["q1", "q1", "q2", "q2"])
    perfect = metrics.mean_ndcg(grades, np.array([1.0, 0.0, 1.0, 0.0]), queries, k=10)
    worst = metrics.mean_ndcg(grades, np.array([0.0, 1.0, 0.0, 1.0]), queries, k=10)
    assert perfect == pytest.approx(1.0)
    assert worst < 0.7


def test_ndcg_of_a_perfect_ranking_with_tied_averaged_grades_is_at_most_one() -> None:
    """sklearn's ndcg_score gives 1.0000000000000002 for these grades ranked perfectly."""
    grades = np.array([8, 3, 8, 5, 8, 3]) / 3  # averaged rater grades, ties included
    queries = np.zeros(len(grades), dtype=int)
    assert metrics.mean_ndcg(grades, grades, queries, k=10) == 1.0


def test_ndcg_equals_scikit_learn_per_query_with_ties_and_all_zero_queries() -> None:
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 25, size=60)  # queries of one item are left out of the mean
    queries = np.repeat(np.array([f"q{i}" for i in range(len(sizes))]), sizes)
    rng.shuffle(queries)  # a query's rows need not be adjacent
    grades = rng.integers(0, 4, size=len(queries)) * (rng.random(len(queries)) < 0.7)
    grades[queries == "q0"] = 0  # a query with no relevant item scores 0
    scores = np.round(rng.random(len(queries)), 1)  # many tied scores
    for k in (1, 3, 10, 30):
        expected = [
            ndcg_score([grades[queries == q]], [scores[queries == q]], k=k)
            for q in dict.fromkeys(queries)
            if (queries == q).sum() >= 2
        ]
        assert metrics.mean_ndcg(grades, scores, queries, k) == pytest.approx(
            np.mean(expected), abs=1e-12
        )
    assert metrics.mean_ndcg(grades[:0], scores[:0], queries[:0], 10) is None
    assert metrics.mean_ndcg(np.array([2.0]), np.array([0.5]), np.array(["q"]), 10) is None
    with pytest.raises(ValueError, match="NaN"):
        metrics.mean_ndcg(np.array([2.0, 0.0]), np.array([0.5, np.nan]), np.array(["q", "q"]), 10)
