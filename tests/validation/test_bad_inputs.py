"""Every kind of bad input is rejected with a message that names its cause, and nothing is lost.

One landing zone holds the clean tiny shop plus one bad batch per kind, each on a day of its
own and otherwise valid (a good day moved to another date), so each batch fails for its flaw
alone. The gate runs once through the CLI (`mtlrec validate`, as dvc runs it); each test then
reads its own batch's part of the message and its quarantine folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mtlrec import cli
from tests.conftest import tiny_raw_params
from tests.validation.conftest import (
    assert_held,
    batch_lines,
    make_workspace,
    parquet_files,
    redated,
)

GOOD_DAY = "2026-01-02"  # the day every bad impressions batch is made from


def _write(frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda path: frame.to_parquet(path, index=False)


def _empty_file(landing: Path, day: str) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(b"")


def _zero_rows(landing: Path, day: str) -> Callable[[Path], None]:
    return _write(redated(landing, GOOD_DAY, day).iloc[:0])


def _truncated(landing: Path, day: str) -> Callable[[Path], None]:
    good = (landing / "impressions" / f"{GOOD_DAY}.parquet").read_bytes()
    return lambda path: path.write_bytes(good[: len(good) // 2])


def _missing_column(landing: Path, day: str) -> Callable[[Path], None]:
    return _write(redated(landing, GOOD_DAY, day).drop(columns=["position"]))


def _extra_column(landing: Path, day: str) -> Callable[[Path], None]:
    return _write(redated(landing, GOOD_DAY, day).assign(coupon="SALE10"))


def _wrong_dtype(landing: Path, day: str) -> Callable[[Path], None]:
    return _write(redated(landing, GOOD_DAY, day).astype({"position": "float64"}))


def _nulls(landing: Path, day: str) -> Callable[[Path], None]:
    frame = redated(landing, GOOD_DAY, day)
    frame["user_id"] = frame["user_id"].astype("Int64")  # nullable ints, as a CSV export has
    frame.loc[frame.index[5:8], "user_id"] = pd.NA
    return _write(frame)


def _duplicate_keys(landing: Path, day: str) -> Callable[[Path], None]:
    frame = redated(landing, GOOD_DAY, day)
    frame.loc[frame.index[11], "impression_id"] = frame.loc[frame.index[10], "impression_id"]
    return _write(frame)


def _out_of_range(landing: Path, day: str) -> Callable[[Path], None]:
    frame = redated(landing, GOOD_DAY, day)
    frame.loc[frame.index[:2], "position"] = [0, -3]
    return _write(frame)


def _unknown_category(landing: Path, day: str) -> Callable[[Path], None]:
    frame = redated(landing, GOOD_DAY, day)
    frame.loc[frame.index[3], "scenario"] = "homepage"
    return _write(frame)


def _orphans(landing: Path, day: str) -> Callable[[Path], None]:
    frame = redated(landing, GOOD_DAY, day)
    frame.loc[frame.index[:2], "item_id"] = 999_999_999
    return _write(frame)


def _future(landing: Path, day: str) -> Callable[[Path], None]:
    frame = redated(landing, GOOD_DAY, day)
    frame.loc[frame.index[-2:], "event_timestamp"] = pd.Timestamp("2099-06-01", tz="UTC")
    return _write(frame)


def _contradictions(landing: Path, day: str) -> Callable[[Path], None]:
    frame = redated(landing, GOOD_DAY, day)
    unclicked = frame.index[frame["click"] == 0][:2]
    frame.loc[unclicked, "purchase"] = 1  # bought without a click
    feed = frame.index[frame["scenario"] == "feed"][0]
    frame.loc[feed, "query"] = "sofa"  # a query on a feed impression
    return _write(frame)


def _already_ingested(landing: Path, day: str) -> Callable[[Path], None]:
    good = (landing / "impressions" / f"{GOOD_DAY}.parquet").read_bytes()
    return lambda path: path.write_bytes(good)


def _ctr_shift(landing: Path, day: str) -> Callable[[Path], None]:
    frame = redated(landing, GOOD_DAY, day)
    frame.loc[frame.index[::2], "click"] = 1  # half the impressions clicked: CTR about 50%
    return _write(frame)


def _low_volume(landing: Path, day: str) -> Callable[[Path], None]:
    return _write(redated(landing, GOOD_DAY, day).iloc[:40])


def _wrong_day(landing: Path, day: str) -> Callable[[Path], None]:
    frame = redated(landing, GOOD_DAY, day)
    frame["event_timestamp"] -= pd.Timedelta(days=1)  # yesterday's events in today's batch
    return _write(frame)


def _clean(landing: Path, day: str) -> Callable[[Path], None]:
    return _write(redated(landing, GOOD_DAY, day if day[:4].isdigit() else "2026-01-25"))


def _items_shift(landing: Path, day: str) -> Callable[[Path], None]:
    """New items, ten times the price of the catalogue, all sofas."""
    frame = pd.read_parquet(landing / "items" / "2026-01-01.parquet")
    frame = frame.assign(item_id=frame["item_id"] + 10_000_000, price=frame["price"] * 10)
    return _write(frame.assign(category="sofa"))


def _judgment_pairs(landing: Path, day: str) -> Callable[[Path], None]:
    """A rating round (the first one moved a day on) that judges one pair twice."""
    frame = pd.read_parquet(sorted((landing / "judgments").glob("*.parquet"))[0])
    frame["judged_at"] += pd.Timedelta(days=1)
    return _write(pd.concat([frame, frame.iloc[[0]]], ignore_index=True))


@dataclass(frozen=True)
class Bad:
    table: str
    day: str
    build: Callable[[Path, str], Callable[[Path], None]]


BAD = {
    "empty": Bad("impressions", "2026-01-07", _empty_file),
    "zero_rows": Bad("impressions", "2026-01-08", _zero_rows),
    "truncated": Bad("impressions", "2026-01-09", _truncated),
    "missing_column": Bad("impressions", "2026-01-10", _missing_column),
    "extra_column": Bad("impressions", "2026-01-11", _extra_column),
    "wrong_dtype": Bad("impressions", "2026-01-12", _wrong_dtype),
    "nulls": Bad("impressions", "2026-01-13", _nulls),
    "duplicate_keys": Bad("impressions", "2026-01-14", _duplicate_keys),
    "out_of_range": Bad("impressions", "2026-01-15", _out_of_range),
    "unknown_category": Bad("impressions", "2026-01-16", _unknown_category),
    "orphans": Bad("impressions", "2026-01-17", _orphans),
    "future": Bad("impressions", "2026-01-18", _future),
    "contradictions": Bad("impressions", "2026-01-19", _contradictions),
    "already_ingested": Bad("impressions", "2026-01-20", _already_ingested),
    "ctr_shift": Bad("impressions", "2026-01-21", _ctr_shift),
    "low_volume": Bad("impressions", "2026-01-22", _low_volume),
    "wrong_day": Bad("impressions", "2026-01-23", _wrong_day),
    "not_a_date": Bad("impressions", "latest", _clean),
    "items_shift": Bad("items", "2026-01-02", _items_shift),
    "judgment_pairs": Bad("judgments", "2026-01-04", _judgment_pairs),
}
CLEAN = Bad("impressions", "2026-01-24", _clean)


@dataclass(frozen=True)
class Run:
    root: Path
    exit_code: int
    message: str

    def held(self, kind: str, *causes: str) -> dict:
        bad = BAD[kind]
        return assert_held(self.root, self.message, bad.table, bad.day, *causes)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_shop: Path) -> Run:
    root = make_workspace(tmp_path_factory.mktemp("bad"), tiny_shop)
    landing = root / "landing"
    for bad in [*BAD.values(), CLEAN]:
        bad.build(landing, bad.day)(landing / bad.table / f"{bad.day}.parquet")
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_raw_params()))
    return _cli_run(root)


def _cli_run(root: Path) -> Run:
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    argv = ["--params", str(root / "params.yaml"), "validate", "--landing", str(root / "landing")]
    argv += ["--out", str(root / "validated"), "--quarantine", str(root / "quarantine")]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main([*argv, "--project", str(root)])
    assert stdout.getvalue() == "", "a failing run prints its message on stderr only"
    return Run(root, code, stderr.getvalue())


def test_the_run_fails_and_lists_exactly_the_bad_batches(run: Run) -> None:
    assert run.exit_code == 1
    assert run.message.startswith(f"mtlrec validate: validation failed: {len(BAD)} of ")
    listed = {line.split(" -> ")[0].strip() for line in run.message.splitlines() if " -> " in line}
    assert listed == {f"{bad.table}/{bad.day}" for bad in BAD.values()}


def test_nothing_is_lost_each_batch_is_in_exactly_one_place(run: Run) -> None:
    landed = parquet_files(run.root / "landing")
    accepted = parquet_files(run.root / "validated")
    held = {f"{p.parent.parent.name}/{p.name}" for p in (run.root / "quarantine").glob("*/*/*")}
    held = {name for name in held if name.endswith(".parquet")}
    assert accepted | held == landed and not accepted & held
    assert f"impressions/{CLEAN.day}.parquet" in accepted  # the flaws alone fail them


def test_empty_file(run: Run) -> None:
    run.held("empty", "readable_parquet: the file is empty (0 bytes)")
    run.held("zero_rows", "expect_table_row_count_to_be_between", "[a batch is never empty]")


def test_truncated_parquet(run: Run) -> None:
    run.held("truncated", "readable_parquet: cannot read 2026-01-09.parquet", "magic bytes")


def test_missing_column(run: Run) -> None:
    result = run.held("missing_column", "expect_table_columns_to_match_set", "missing ['position']")
    # checks on the absent column are not listed one by one: the schema failure names it
    assert [f["expectation"] for f in result["failures"]] == ["expect_table_columns_to_match_set"]


def test_extra_column(run: Run) -> None:
    run.held("extra_column", "expect_table_columns_to_match_set", "unexpected ['coupon']")


def test_wrong_dtype(run: Run) -> None:
    run.held(
        "wrong_dtype",
        "expect_column_values_to_be_of_type(position)",
        "observed float64; expected int64",
    )


def test_nulls(run: Run) -> None:
    lines = batch_lines(run.message, "impressions", BAD["nulls"].day)
    cause = next(line for line in lines if "expect_column_values_to_not_be_null(user_id)" in line)
    assert "3 of 400 rows" in cause and "row 5 (impression_id=imp-20260113-000005)" in cause
    run.held("nulls", "user_id=null")


def test_duplicate_keys(run: Run) -> None:
    run.held("duplicate_keys", "expect_column_values_to_be_unique(impression_id)", "2 of 400 rows")
    run.held(
        "judgment_pairs",
        "expect_compound_columns_to_be_unique(query, item_id) [one judgement per (query, item)]",
    )


def test_out_of_range_values(run: Run) -> None:
    run.held(
        "out_of_range",
        "expect_column_values_to_be_between(position) [position >= 1]",
        "2 of 400 rows; expected >= 1;",
        "position=0",
        "position=-3",
    )


def test_unknown_category(run: Run) -> None:
    run.held(
        "unknown_category",
        "expect_column_values_to_be_in_set(scenario)",
        "expected in {search, feed}",
        "scenario=homepage",
    )


def test_orphan_foreign_keys(run: Run) -> None:
    run.held(
        "orphans",
        "expect_column_values_to_not_be_in_set(item_id) [every item_id exists",
        "item_id=999999999",
    )


def test_future_timestamps(run: Run) -> None:
    run.held(
        "future",
        "expect_column_values_to_be_between(event_timestamp) [nothing happens after now]",
        "event_timestamp=2099-06-01T00:00:00+00:00",
    )


def test_label_contradictions(run: Run) -> None:
    run.held(
        "contradictions",
        "expect_column_pair_values_a_to_be_greater_than_b(click, purchase) [a purchase implies",
        "click=0, purchase=1",
        "expect_column_values_to_be_null(query) [a feed impression has no query]",
    )


def test_batch_already_ingested(run: Run) -> None:
    result = run.held(
        "already_ingested", "unique_content: same rows as impressions/2026-01-02 (accepted"
    )
    assert len(result["content_sha256"]) == 64


def test_whole_batch_shifted_in_distribution(run: Run) -> None:
    run.held(
        "ctr_shift",
        "expect_column_mean_to_be_between(click) [CTR close to earlier batches]: observed 0.5",
    )
    run.held(
        "items_shift",
        "expect_column_quantile_values_to_stay_between(price)",
        "expect_column_kl_divergence_to_stay_below(category) [category mix close to earlier",
    )


def test_volume_outside_the_bounds_of_earlier_batches(run: Run) -> None:
    run.held(
        "low_volume",
        "expect_table_row_count_to_be_between [volume close to earlier batches]: observed 40",
    )


def test_events_outside_the_batch_day(run: Run) -> None:
    run.held(
        "wrong_day",
        "expect_column_values_to_be_between(event_timestamp) [events within the batch's day]",
        "400 of 400 rows",
    )


def test_batch_id_must_name_its_day(run: Run) -> None:
    run.held("not_a_date", "batch_id_is_date: 'latest' is not a date (YYYY-MM-DD)")


def test_result_json_keeps_the_full_gx_result(run: Run) -> None:
    held = run.root / "quarantine" / "impressions" / BAD["orphans"].day
    results = json.loads((held / "gx_result.json").read_text())
    failed = [r for suite in results for r in suite["results"] if not r["success"]]
    assert failed and failed[0]["result"]["unexpected_index_list"]


def test_data_docs_page_renders_the_failed_expectations(run: Run) -> None:
    index = run.root / "reports" / "data_docs" / "index.html"
    assert str(index) in run.message
    result = json.loads(
        (run.root / "quarantine" / "impressions" / BAD["orphans"].day / "result.json").read_text()
    )
    page = Path(result["data_docs"][0])
    text = _visible_text(page.read_text())
    assert "Failed" in text
    assert "999999999" in text  # the offending value, in the failed expectation's table
    assert page.relative_to(index.parent).as_posix() in index.read_text()


def test_the_message_links_each_quarantined_batch_to_its_failing_page(run: Run) -> None:
    """Not only the index: the page of the suite that failed, under the batch it failed."""
    lines = run.message.splitlines()
    start = lines.index(next(line for line in lines if line.startswith(
        f"  impressions/{BAD['orphans'].day} -> ")))  # fmt: skip
    section = lines[start + 1 : next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("  ") and not
         lines[i].startswith("    ")), len(lines))]  # fmt: skip
    pages = [line.split("report: ", 1)[1] for line in section if line.startswith("    report: ")]
    assert pages, section
    for page in map(Path, pages):
        assert page.is_file() and page.suffix == ".html", page
        text = _visible_text(page.read_text())
        assert "Failed" in text and "999999999" in text


def _visible_text(html: str) -> str:
    class Collect(HTMLParser):
        parts: list[str] = []

        def handle_data(self, data: str) -> None:
            self.parts.append(data)

    parser = Collect()
    parser.parts = []
    parser.feed(html)  # raises on markup it cannot parse
    return " ".join(parser.parts)
