"""The synthetic shop: the raw contract, determinism, reruns, realism and the ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtlrec.config import SimulateConfig, SimulationSize
from mtlrec.contract import TABLES
from mtlrec.data import simulate
from mtlrec.shop import load_behaviour

START = date(2026, 1, 1)
TINY = SimulationSize(
    n_users=60,
    n_items=80,
    n_days=6,
    impressions_per_day=400,
    n_judged_queries=30,
    judgments_per_query=6,
)
# Big enough for rates to be measured to a few tenths of a percent, still under a second.
MEDIUM = SimulationSize(
    n_users=800,
    n_items=400,
    n_days=4,
    impressions_per_day=15_000,
    n_judged_queries=120,
    judgments_per_query=10,
)
UTC_NS = "datetime64[ns, UTC]"


def make_config(size: SimulationSize = TINY, seed: int = 7) -> SimulateConfig:
    return SimulateConfig(seed=seed, start_date=START, preset="test", presets={"test": size})


@dataclass(frozen=True)
class Output:
    summary: simulate.SimulationSummary
    landing: Path
    truth: Path

    def table(self, name: str) -> pd.DataFrame:
        """All batches of one landing table, in batch order."""
        files = sorted((self.landing / name).glob("*.parquet"))
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)

    def truth_table(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.truth / f"{name}.parquet")


def simulate_into(root: Path, config: SimulateConfig) -> Output:
    landing, truth = root / "landing", root / "truth"
    return Output(simulate.run(config, landing, truth), landing, truth)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Output:
    return simulate_into(tmp_path_factory.mktemp("tiny"), make_config())


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> Output:
    return simulate_into(tmp_path_factory.mktemp("medium"), make_config(MEDIUM))


@pytest.fixture(scope="module")
def medium_impressions(medium: Output) -> pd.DataFrame:
    """Impressions joined with their truth."""
    return medium.table("impressions").merge(medium.truth_table("impressions"), on="impression_id")


# ------------------------------------------------------------------------------------------
# The raw contract.


def test_batches_are_named_by_date_within_the_simulated_range(tiny: Output) -> None:
    days = [str(START + timedelta(days=d)) for d in range(TINY.n_days)]
    names = {t: sorted(p.stem for p in (tiny.landing / t).glob("*")) for t in TABLES}
    assert names["users"] == [str(START)]
    assert names["items"] == [str(START)]
    assert names["impressions"] == days
    assert names["judgments"] and set(names["judgments"]) <= set(days)
    assert tiny.summary.batches == sum(len(n) for n in names.values())


def test_users_follow_the_contract(tiny: Output) -> None:
    users = tiny.table("users")
    assert list(users.columns) == ["user_id", "signup_ts", "age_bucket", "gender", "city_tier"]
    assert users.dtypes.astype(str).tolist() == ["int64", UTC_NS, "int64", "object", "int64"]
    assert len(users) == TINY.n_users and users.user_id.is_unique
    assert users.age_bucket.between(0, 6).all() and users.city_tier.between(1, 5).all()
    assert set(users.gender) <= {"F", "M", "U"}
    assert (users.signup_ts < pd.Timestamp(START, tz="UTC")).all()


def test_items_follow_the_contract(tiny: Output) -> None:
    items = tiny.table("items")
    assert list(items.columns) == ["item_id", "title", "category", "brand", "price", "created_ts"]
    expected = ["int64", "object", "object", "object", "float64", UTC_NS]
    assert items.dtypes.astype(str).tolist() == expected
    assert len(items) == TINY.n_items and items.item_id.is_unique
    assert (items.title.str.len() > 0).all()
    assert items[["category", "brand"]].notna().all().all()
    assert (items.price > 0).all()
    assert (items.created_ts < pd.Timestamp(START, tz="UTC")).all()


def test_impressions_follow_the_contract(tiny: Output) -> None:
    impressions = tiny.table("impressions")
    expected = {
        "impression_id": "object",
        "event_timestamp": UTC_NS,
        "user_id": "int64",
        "item_id": "int64",
        "scenario": "object",
        "query": "object",
        "position": "int64",
        "click": "int64",
        "purchase": "int64",
    }
    assert impressions.dtypes.astype(str).to_dict() == expected
    assert list(impressions.columns) == list(expected)
    assert len(impressions) == TINY.n_days * TINY.impressions_per_day
    assert impressions.impression_id.is_unique
    assert impressions.user_id.isin(tiny.table("users").user_id).all()
    assert impressions.item_id.isin(tiny.table("items").item_id).all()
    assert set(impressions.scenario) == {"search", "feed"}
    search = impressions.scenario == "search"
    assert impressions["query"].notna().eq(search).all()
    assert (impressions.loc[search, "query"].str.len() > 0).all()
    assert (impressions.position >= 1).all()
    assert set(impressions.click) <= {0, 1} and set(impressions.purchase) <= {0, 1}
    assert (impressions.purchase <= impressions.click).all()


def test_each_impression_batch_holds_only_its_own_day(tiny: Output) -> None:
    for path in sorted((tiny.landing / "impressions").glob("*.parquet")):
        batch = pd.read_parquet(path)
        day = pd.Timestamp(path.stem, tz="UTC")
        assert len(batch) == TINY.impressions_per_day
        assert batch.event_timestamp.between(day, day + pd.Timedelta(days=1), "left").all()
        assert batch.event_timestamp.is_monotonic_increasing


def test_judgments_follow_the_contract(tiny: Output) -> None:
    judgments = tiny.table("judgments")
    assert list(judgments.columns) == ["query", "item_id", "relevance", "judged_at"]
    assert judgments.dtypes.astype(str).tolist() == ["object", "int64", "float64", UTC_NS]
    assert len(judgments) == TINY.n_judged_queries * TINY.judgments_per_query
    assert (judgments["query"].str.len() > 0).all()
    assert judgments.item_id.isin(tiny.table("items").item_id).all()
    assert not judgments.duplicated(["query", "item_id"]).any()
    assert judgments.relevance.between(0.0, 3.0).all()
    # The average of three integer grades.
    grades_sum = judgments.relevance * 3
    assert np.allclose(grades_sum, grades_sum.round())
    end = pd.Timestamp(START + timedelta(days=TINY.n_days), tz="UTC")
    assert judgments.judged_at.between(pd.Timestamp(START, tz="UTC"), end, "left").all()


def test_summary_counts_what_was_written(tiny: Output) -> None:
    impressions, summary = tiny.table("impressions"), tiny.summary
    assert summary.impressions == len(impressions)
    assert summary.clicks == impressions.click.sum()
    assert summary.purchases == impressions.purchase.sum()
    assert summary.judgments == len(tiny.table("judgments"))
    assert summary.ctr == pytest.approx(impressions.click.mean())
    assert f"impressions={summary.impressions}" in str(summary)
    assert summary.as_dict()["users"] == TINY.n_users


# ------------------------------------------------------------------------------------------
# Ground truth.


def test_truth_has_one_row_per_impression(tiny: Output) -> None:
    impressions, truth = tiny.table("impressions"), tiny.truth_table("impressions")
    assert truth.impression_id.tolist() == impressions.impression_id.tolist()
    assert truth.p_click.between(0.0, 1.0, "neither").all()
    assert truth.p_purchase_given_click.between(0.0, 1.0, "neither").all()
    search = (impressions.scenario == "search").to_numpy()
    assert truth.true_relevance[search].between(0.0, 3.0).all()
    assert truth.true_relevance[~search].isna().all()


def test_truth_has_one_row_per_judgment(tiny: Output) -> None:
    judgments, truth = tiny.table("judgments"), tiny.truth_table("judgments")
    assert list(truth.columns) == ["query", "item_id", "true_relevance"]
    merged = judgments.merge(truth, on=["query", "item_id"], how="outer", validate="1:1")
    assert len(merged) == len(judgments) == len(truth)
    assert merged.true_relevance.between(0.0, 3.0).all()
    # Raters are noisy but agree with the truth on average.
    assert (merged.relevance - merged.true_relevance).abs().mean() < 0.5


# ------------------------------------------------------------------------------------------
# Determinism and reruns.


def read_all(output: Output) -> dict[str, pd.DataFrame]:
    tables = {name: output.table(name) for name in TABLES}
    return tables | {f"truth/{n}": output.truth_table(n) for n in ("impressions", "judgments")}


def test_same_seed_writes_identical_files(tiny: Output, tmp_path: Path) -> None:
    again = simulate_into(tmp_path, make_config())
    assert again.summary == tiny.summary
    theirs = read_all(again)
    for name, table in read_all(tiny).items():
        pd.testing.assert_frame_equal(theirs[name], table, obj=name)
    for path in sorted(tiny.landing.rglob("*.parquet")):
        assert (again.landing / path.relative_to(tiny.landing)).read_bytes() == path.read_bytes()


def test_the_fitted_behaviour_is_written_beside_the_truth(tiny: Output, tmp_path: Path) -> None:
    written = sorted(p.name for p in tiny.truth.iterdir())
    assert written == ["behaviour.json", "impressions.parquet", "judgments.parquet"]
    other = simulate_into(tmp_path, make_config(seed=8))
    assert load_behaviour(other.truth) != load_behaviour(tiny.truth)  # fitted on its own shop


def test_another_seed_writes_another_shop(tiny: Output, tmp_path: Path) -> None:
    other = read_all(simulate_into(tmp_path, make_config(seed=8)))
    ours = read_all(tiny)
    for name in ("users", "items", "impressions", "judgments"):
        assert not other[name].equals(ours[name]), name


def test_rerun_replaces_every_earlier_batch(tmp_path: Path) -> None:
    simulate_into(tmp_path, make_config())
    stale = tmp_path / "landing" / "impressions" / "2025-12-31.parquet"
    stale.write_bytes(b"left over")
    unrelated = tmp_path / "landing" / "README"
    unrelated.write_text("not ours")
    shorter = make_config(TINY.model_copy(update={"n_days": 2}))
    output = simulate_into(tmp_path, shorter)
    written = sorted(p.stem for p in (output.landing / "impressions").iterdir())
    assert written == ["2026-01-01", "2026-01-02"]
    assert set(p.stem for p in (output.landing / "judgments").iterdir()) <= set(written)
    assert len(output.truth_table("impressions")) == 2 * TINY.impressions_per_day
    assert unrelated.read_text() == "not ours"


# ------------------------------------------------------------------------------------------
# Realism: the data must carry the signals a model is meant to learn.


def test_click_and_purchase_rates_are_plausible(medium: Output) -> None:
    assert 0.02 <= medium.summary.ctr <= 0.15
    assert 0.05 <= medium.summary.cvr <= 0.30


def test_top_positions_are_clicked_more(medium_impressions: pd.DataFrame) -> None:
    by_position = medium_impressions.groupby(medium_impressions.position.clip(upper=5)).click
    assert by_position.mean()[1] > 1.5 * by_position.mean()[5]


def test_search_clicks_rise_with_true_relevance(medium_impressions: pd.DataFrame) -> None:
    search = medium_impressions[medium_impressions.scenario == "search"]
    bins = pd.cut(search.true_relevance, [0.0, 1.0, 2.0, 3.0], include_lowest=True)
    ctr = search.groupby(bins, observed=True).click.mean().to_numpy()
    assert len(ctr) == 3 and ctr[0] < ctr[1] < ctr[2]


def test_click_and_purchase_are_related_but_different(medium_impressions: pd.DataFrame) -> None:
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    p_click, p_buy = medium_impressions.p_click, medium_impressions.p_purchase_given_click
    correlation = np.corrcoef(logit(p_click), logit(p_buy))[0, 1]
    assert 0.1 < correlation < 0.9
    # The truth explains the labels: clicked rows had a higher click probability.
    assert p_click[medium_impressions.click == 1].mean() > 1.5 * p_click.mean()


def test_a_few_users_make_much_of_the_traffic(medium_impressions: pd.DataFrame) -> None:
    per_user = medium_impressions.user_id.value_counts()
    top_tenth = per_user.head(MEDIUM.n_users // 10).sum()
    assert top_tenth > 0.3 * len(medium_impressions)


def test_judgments_span_the_grades(medium: Output) -> None:
    relevance = medium.table("judgments").relevance
    assert relevance.min() == 0.0 and relevance.max() == 3.0
    assert 0.2 < (relevance >= 2).mean() < 0.8
    # Averaged grades: fractional values occur.
    assert (relevance % 1 != 0).mean() > 0.2


def test_items_and_queries_look_like_a_shop(medium: Output) -> None:
    items, impressions = medium.table("items"), medium.table("impressions")
    assert 10 <= items.category[items.category != "unknown"].nunique() <= 15
    assert 0 < (items.category == "unknown").mean() < 0.1
    assert 0 < (items.brand == "unknown").mean() < 0.1
    queries = impressions["query"].dropna()
    assert queries.nunique() > 100
    # Synonyms: people search for a couch although no title says so.
    assert not items.title.str.contains("couch", case=False).any()
    judged = medium.table("judgments")["query"]
    assert pd.concat([queries, judged]).str.contains("couch").any()
