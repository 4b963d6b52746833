"""The plots as `dvc plots show` draws them from dvc.yaml, .dvc/plots/ and the evaluate and
report stages' tables: what each chart encodes, and that the page renders with no network.

The tables are written by the stages' own functions from synthetic scores and metrics (no
pipeline run); DVC itself fills the templates, in a copy of the project.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtlrec.evaluation import plots, report
from mtlrec.evaluation.baselines import compare
from mtlrec.stages import PLOTS
from tests.browser import OfflinePage, chromium_driver, open_offline
from tests.conftest import copy_project, tool_env

MULTI = {
    "ctr": {"auc": 0.7767, "oracle_auc": 0.7809},
    "cvr": {"auc": 0.7074, "oracle_auc": 0.7155},
    "ctcvr": {"auc": 0.8415, "oracle_auc": 0.8467},
    "relevance": {"auc_relevant": 0.9701, "oracle_auc_relevant": 0.9739},
}
SINGLE = {
    "ctr": {"auc": 0.7757},
    "cvr": {"auc": 0.7030},
    "ctcvr": {"auc": 0.8390},
    "relevance": {"auc_relevant": 0.9677},
}
# Every plot of dvc.yaml but the online test's, whose table this test does not write.
DRAWN = [name for plot in PLOTS for name in plot if name != "Online test"]


def dvc(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["dvc", "plots", "show", *args], cwd=root, env=tool_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("plots"))
    rng = np.random.default_rng(0)
    binary = {}
    for task, rate in (("ctr", 0.1), ("cvr", 0.2), ("ctcvr", 0.02)):
        p = rng.beta(2, 2 / rate - 2, 4000)
        binary[task] = ((rng.random(4000) < p).astype(int), np.clip(1.2 * p, 0, 1))
    plots.write_curves(binary, root / "plots")
    curve = {"epoch": [0, 1, 2, 3], "train_loss": [2.9, 2.75, 2.7, 2.68]}
    curve |= {"valid_loss": [2.8, 2.74, 2.72, 2.71], "valid_score": [6.6, 6.45, 6.41, 6.4]}
    pd.DataFrame(curve).to_csv(root / "plots" / "training_curve.csv", index=False)
    rows = report.comparison_rows(compare(MULTI, SINGLE), {"ctr": {"auc": 0.77}})
    report.write_plot_table(rows, root / "reports" / "comparison.csv")
    return root


@pytest.fixture(scope="module")
def specs(project: Path) -> dict[str, dict]:
    """Each plot's Vega-Lite spec as DVC fills it."""
    shown = json.loads(dvc(project, "--json"))["data"]
    return {name: shown[name][0]["content"] for name in DRAWN}


def layers(spec: dict) -> list[dict]:
    return spec.get("layer") or spec.get("vconcat") or [spec.get("spec", spec)]


def test_curves_have_one_colour_per_task_and_a_dash_per_revision(specs) -> None:
    for name in ("ROC", "Precision-recall", "Calibration"):
        (curve,) = [layer for layer in layers(specs[name]) if "color" in layer["encoding"]]
        assert curve["encoding"]["color"]["field"] == "task", name
        assert curve["encoding"]["strokeDash"]["field"] == "rev", name
        tasks = {row["filename"] for row in specs[name]["data"]["values"]}
        assert tasks == {"ctr.csv", "cvr.csv", "ctcvr.csv"}, name


def test_roc_has_its_chance_line_and_calibration_its_diagonal(specs) -> None:
    (chance,) = [layer for layer in layers(specs["ROC"]) if "data" in layer]
    assert chance["data"]["values"] == [{"x": 0, "y": 0}, {"x": 1, "y": 1}]
    (diagonal,) = [layer for layer in layers(specs["Calibration"]) if "x2" in layer["encoding"]]
    encoding = diagonal["encoding"]
    # from (low, low) to (high, high): y = x over the range of the bins
    assert encoding["x"]["field"] == encoding["y"]["field"] == "low"
    assert encoding["x2"]["field"] == encoding["y2"]["field"] == "high"


def test_training_curve_gives_the_selection_score_its_own_axis(specs) -> None:
    losses, score = specs["Training curve"]["vconcat"]
    assert losses["transform"] == [{"filter": "datum.field != 'valid_score'"}]
    assert score["transform"] == [{"filter": "datum.field == 'valid_score'"}]
    fields = {row["field"] for row in specs["Training curve"]["data"]["values"]}
    assert fields == {"train_loss", "valid_loss", "valid_score"}


def test_comparison_has_a_row_per_task_on_its_own_scale(specs) -> None:
    spec = specs["Comparison"]
    assert spec["facet"]["row"]["field"] == "metric"
    assert spec["resolve"]["scale"]["x"] == "independent"
    assert spec["spec"]["encoding"]["color"]["field"] == "model"
    values = {(row["metric"], row["model"]): row["value"] for row in spec["data"]["values"]}
    assert values[("cvr.auc", "oracle")] == "0.7155"
    assert values[("ctr.auc", "champion")] == "0.77"
    assert ("cvr.auc", "champion") not in values


def rendering_problems(driver, page: OfflinePage) -> list[str]:
    """Requests beyond the page's file, console errors, and charts not drawn: Vega-Embed draws
    each plot on a canvas of non-zero size."""
    problems = [f"fetched {url}" for url in page.remote_requests]
    problems += [f"console: {error}" for error in page.console_errors]
    sizes = driver.execute_script(
        "return [...document.querySelectorAll('.vega-embed canvas')]"
        ".map(c => [c.getBoundingClientRect().width, c.getBoundingClientRect().height])"
    )
    drawn = [size for size in sizes if size[0] > 100 and size[1] > 100]
    if len(drawn) != len(DRAWN):
        problems.append(f"{len(drawn)} charts drawn of {len(DRAWN)} ({sizes})")
    if page.colours < 20:
        problems.append(f"the screenshot has {page.colours} colours: blank")
    return problems


@pytest.fixture(scope="module")
def driver(chromium: None, tmp_path_factory: pytest.TempPathFactory):
    with chromium_driver(tmp_path_factory.mktemp("profile"), log_network=True) as driver:
        yield driver


def test_dvc_plots_page_renders_offline(project: Path, driver, tmp_path: Path) -> None:
    dvc(project)  # .dvc/config names the page: plots.html_template
    page = open_offline(driver, project / "dvc_plots" / "index.html", tmp_path / "plots.png")
    assert rendering_problems(driver, page) == [], page.describe()


def test_the_check_fails_on_dvcs_own_cdn_page(project: Path, driver, tmp_path: Path) -> None:
    from dvc_render.html import PAGE_HTML

    (tmp_path / "dvc_page.html").write_text(PAGE_HTML)
    dvc(project, "-o", str(tmp_path / "cdn"), "--html-template", str(tmp_path / "dvc_page.html"))
    page = open_offline(driver, tmp_path / "cdn" / "index.html", tmp_path / "cdn.png")
    problems = rendering_problems(driver, page)
    assert any(p.startswith("fetched https://cdn.jsdelivr.net/") for p in problems), problems
    assert any("0 charts drawn" in p for p in problems), problems
