"""Team-draft interleaving (Radlinski, Kurup, Joachims, CIKM 2008; Chapelle, Joachims,
Radlinski, Yue, "Large-scale validation and analysis of interleaved search evaluation", TOIS 2012).

Two rankers draft the shown list like team captains: in each round a coin says who picks first,
and each adds its best item not yet shown, so both contribute alike to every position. A
session's clicks are credited to the team whose pick was clicked; the session prefers the ranker
with more credited clicks (a tie prefers neither). One session compares both rankers on the same
user and query at once, which is why it needs far fewer sessions than an A/B split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHAMPION, CHALLENGER = 0, 1


@dataclass(frozen=True)
class Interleaved:
    shown: np.ndarray  # (S, k) item ids, -1 past the end of both lists
    team: np.ndarray  # (S, k) CHAMPION or CHALLENGER; -1 where nothing is shown


def team_draft(
    champion: list[np.ndarray], challenger: list[np.ndarray], k: int, rng: np.random.Generator
) -> Interleaved:
    """The interleaved lists of k items of every session (rankings best first)."""
    n = len(champion)
    shown = np.full((n, k), -1, dtype=np.int64)
    team = np.full((n, k), -1, dtype=np.int64)
    coins = rng.random((n, k))
    for s in range(n):
        lists = (champion[s].tolist(), challenger[s].tolist())
        taken: set[int] = set()
        cursor, picks = [0, 0], [0, 0]
        for slot in range(k):
            # The team with fewer picks drafts next; on a tie the coin decides.
            first = CHAMPION if coins[s, slot] < 0.5 else CHALLENGER
            if picks[0] != picks[1]:
                first = CHAMPION if picks[0] < picks[1] else CHALLENGER
            for side in (first, 1 - first):  # the other drafts when the first has run out
                while cursor[side] < len(lists[side]) and lists[side][cursor[side]] in taken:
                    cursor[side] += 1
                if cursor[side] < len(lists[side]):
                    item = int(lists[side][cursor[side]])
                    taken.add(item)
                    shown[s, slot], team[s, slot] = item, side
                    picks[side] += 1
                    break
            else:
                break  # both lists used up
    return Interleaved(shown, team)


def preferences(interleaved: Interleaved, clicks: np.ndarray) -> np.ndarray:
    """(S,) +1 where a session's credited events (clicks, or purchases) prefer the
    challenger, -1 the champion, 0 a tie."""
    challenger = (clicks * (interleaved.team == CHALLENGER)).sum(axis=1)
    champion = (clicks * (interleaved.team == CHAMPION)).sum(axis=1)
    return np.sign(challenger - champion).astype(np.int64)
