"""Team-draft interleaving on hand-made rankings."""

from __future__ import annotations

import numpy as np
import pytest

from mtlrec.online.interleaving import CHALLENGER, CHAMPION, preferences, team_draft


def _draft(a: list[list[int]], b: list[list[int]], k: int, seed: int = 0):
    return team_draft(
        [np.array(x) for x in a], [np.array(x) for x in b], k, np.random.default_rng(seed)
    )


def test_each_team_drafts_its_best_unshown_item_and_the_teams_stay_even() -> None:
    rng = np.random.default_rng(1)
    a = [list(rng.permutation(30)[:12]) for _ in range(200)]
    b = [list(rng.permutation(30)[:12]) for _ in range(200)]
    out = _draft(a, b, 10)
    for s in range(200):
        shown, team = out.shown[s], out.team[s]
        assert len(set(shown.tolist())) == 10  # no item twice
        for slot in range(10):
            picks = team[: slot + 1]
            assert abs((picks == CHAMPION).sum() - (picks == CHALLENGER).sum()) <= 1
            own = a[s] if team[slot] == CHAMPION else b[s]
            best = next(i for i in own if i not in set(shown[:slot].tolist()))
            assert shown[slot] == best  # the team's highest-ranked item not yet shown


def test_the_coin_decides_who_drafts_first_about_half_the_time() -> None:
    out = _draft([[1, 2, 3]] * 2000, [[4, 5, 6]] * 2000, 2, seed=3)
    first = (out.team[:, 0] == CHALLENGER).mean()
    assert 0.45 < first < 0.55


def test_short_lists_are_used_up_then_padded() -> None:
    out = _draft([[1]], [[1, 2]], 4)
    assert sorted(out.shown[0][:2].tolist()) == [1, 2] and out.shown[0][2:].tolist() == [-1, -1]
    assert out.team[0][2:].tolist() == [-1, -1]


def test_clicks_are_credited_to_the_team_that_drafted_the_item() -> None:
    out = _draft([[1, 2, 3]], [[4, 5, 6]], 4)
    clicks = np.zeros((1, 4), dtype=np.int64)
    clicks[0, np.flatnonzero(out.team[0] == CHALLENGER)] = 1
    assert preferences(out, clicks).tolist() == [1]
    clicks[:] = 0
    assert preferences(out, clicks).tolist() == [0]  # no click: a tie
    clicks[0, np.flatnonzero(out.team[0] == CHAMPION)[0]] = 1
    assert preferences(out, clicks).tolist() == [-1]


@pytest.mark.parametrize("seed", [0, 1])
def test_the_same_seed_drafts_the_same_lists(seed: int) -> None:
    rng = np.random.default_rng(5)
    a = [list(rng.permutation(20)[:10]) for _ in range(50)]
    b = [list(rng.permutation(20)[:10]) for _ in range(50)]
    first, second = _draft(a, b, 8, seed), _draft(a, b, 8, seed)
    assert np.array_equal(first.shown, second.shown) and np.array_equal(first.team, second.team)
