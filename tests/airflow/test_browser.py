"""Retraining from the Airflow UI, in a real browser, surviving a scheduler crash.

Airflow runs as it does for `make airflow`: api-server, scheduler and dag-processor processes,
LocalExecutor, SQLite. Headless Chromium logs in, opens `mtl_retraining` (paused, as every new
DAG), sets the epochs field of the trigger form to 3, ticks "Unpause on trigger" and triggers.
While `train` runs, the scheduler is killed with SIGKILL together with every process it
started (the running task dies with it), then started again: the run must still finish
successfully with each output made exactly once. The run's page is saved as a screenshot.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from mtlrec import pipeline
from mtlrec.registry import Registry
from tests.airflow.conftest import SCREENSHOTS, make_project
from tests.airflow.services import PASSWORD, USER, Airflow, wait_for
from tests.browser import chromium_driver

pytestmark = pytest.mark.slow

DAG = "mtl_retraining"
# A restarted scheduler resets the dead one's running tasks once that scheduler has missed its
# heartbeats for this long (defaults: 30 s, checked every 300 s; shortened for the test).
QUICK_RECOVERY = {
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
}


@dataclass(frozen=True)
class BrowserRun:
    airflow: Airflow
    project: Path
    run_id: str
    state: str
    crashed_during: str
    screenshot: Path
    page_text: str


def log_in(driver, airflow: Airflow) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{airflow.url}/")
    driver.find_element(By.NAME, "username").send_keys(USER)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: "/auth/login" not in driver.current_url, 60, "the login to go through")


def trigger_from_form(driver, airflow: Airflow, epochs: int) -> str:
    """Open the DAG's trigger form, set the epochs, trigger; the new run's id from the URL."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(f"{airflow.url}/dags/{DAG}")
    driver.find_element(By.CSS_SELECTOR, "button[aria-label='Trigger Dag']").click()
    driver.find_element(By.XPATH, "//button[.//text()[normalize-space()='Model']]").click()
    field = driver.find_element(By.NAME, "element_epochs")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(str(epochs))
    wait_for(lambda: field.get_attribute("value") == str(epochs), 10, "the epochs field")
    dialog = driver.find_element(By.CSS_SELECTOR, "[role=dialog][data-state=open]")
    # New DAGs start paused; the form offers to unpause this one on trigger.
    unpause = dialog.find_element(By.XPATH, f".//label[contains(., 'Unpause {DAG} on trigger')]")
    if not unpause.find_element(By.TAG_NAME, "input").is_selected():
        unpause.click()
    dialog.find_element(By.XPATH, ".//button[normalize-space()='Trigger']").click()
    wait_for(lambda: f"/dags/{DAG}/runs/" in driver.current_url, 60, "the new run's page")
    return unquote(driver.current_url.split("/runs/", 1)[1].split("/")[0].split("?")[0])


def crash_scheduler_during(airflow: Airflow, run_id: str, task: str) -> None:
    wait_for(
        lambda: airflow.task_states(DAG, run_id).get(task) == "running",
        900,
        f"{task} to run",
        lambda: f"{airflow.task_states(DAG, run_id)}\n{airflow.logs()}",
    )
    airflow.crash("scheduler")
    time.sleep(5)
    airflow.start("scheduler", "scheduler")


def screenshot_of_run(driver, airflow: Airflow, run_id: str, target: Path) -> str:
    from selenium.webdriver.common.by import By

    driver.get(f"{airflow.url}/dags/{DAG}/runs/{quote(run_id, safe='')}")
    wait_for(
        lambda: "success" in driver.find_element(By.TAG_NAME, "body").text.lower(),
        60,
        "the run page to show its state",
    )
    time.sleep(3)  # let the graph settle
    target.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(target))
    return driver.find_element(By.TAG_NAME, "body").text


@pytest.fixture(scope="module")
def browser_run(tmp_path_factory: pytest.TempPathFactory, chromium: None) -> Iterator[BrowserRun]:
    root = tmp_path_factory.mktemp("browser")
    project = make_project(root / "project")
    home = root / "airflow"
    airflow = Airflow(
        home, project, f"sqlite:///{home}/airflow.db", "LocalExecutor", QUICK_RECOVERY
    )
    airflow.migrate()
    try:
        for component in ("api-server", "scheduler", "dag-processor"):
            airflow.start(component, component)
        airflow.wait_until_up()
        airflow.wait_for_dag(DAG)
        with chromium_driver(root / "chromium-profile") as driver:
            log_in(driver, airflow)
            # 3 epochs, not the project's 1: one epoch of the tiny shop is a handful of steps, and
            # whether that model beat the popularity ranker (and was promoted) hung on its
            # random draws.
            run_id = trigger_from_form(driver, airflow, epochs=3)
            crash_scheduler_during(airflow, run_id, "train")
            state = airflow.wait_for_run(DAG, run_id, timeout=900)
            shot = project / "reports" / "screenshots" / "mtl_retraining_run.png"
            text = screenshot_of_run(driver, airflow, run_id, shot)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        kept = shutil.copy2(shot, SCREENSHOTS / shot.name)
        print(f"\nscreenshot of the run: {shot}\n  copied to {kept}")
        yield BrowserRun(airflow, project, run_id, state, "train", Path(kept), text)
    finally:
        airflow.stop_all()


def test_run_triggered_from_the_form_succeeds(browser_run: BrowserRun) -> None:
    airflow, run_id = browser_run.airflow, browser_run.run_id
    assert browser_run.state == "success", airflow.task_states(DAG, run_id)
    assert airflow.api("GET", f"dags/{DAG}")["is_paused"] is False  # unpaused from the form
    conf = airflow.api("GET", f"dags/{DAG}/dagRuns/{quote(run_id, safe='')}")["conf"]
    assert conf["epochs"] == 3 and conf["force_promote"] is False
    states = airflow.task_states(DAG, run_id)
    assert {task for task, state in states.items() if state != "success"} == {"champion_kept"}


def test_form_values_reach_the_dvc_experiment(browser_run: BrowserRun) -> None:
    name = pipeline.experiment_name(browser_run.run_id)
    saved = pipeline.experiment(browser_run.project, name)
    assert saved is not None, f"dvc exp show does not list {name}"
    assert saved["params"]["params.yaml"]["data"]["train"]["epochs"] == 3


def test_screenshot_shows_the_successful_run(browser_run: BrowserRun) -> None:
    assert browser_run.screenshot.stat().st_size > 10_000
    assert browser_run.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "success" in browser_run.page_text.lower()


def test_scheduler_crash_loses_nothing(browser_run: BrowserRun) -> None:
    """The task killed with the scheduler ran again; every output exists exactly once."""
    airflow, run_id = browser_run.airflow, browser_run.run_id
    found = airflow.api("GET", f"dags/{DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances")
    tries = {ti["task_id"]: ti["try_number"] for ti in found["task_instances"]}
    assert tries[browser_run.crashed_during] == 2, tries  # killed once, then finished
    registry = browser_run.project / "models" / "registry"
    assert sorted(path.name for path in registry.glob("v*")) == ["v1"]
    assert Registry(registry).version_of_run(run_id) == "v1"
    assert pipeline.production(browser_run.project) == {"version": "v1", "run_id": run_id}
    assert (browser_run.project / "metrics" / "challenger.json").is_file()
    listed = pipeline.dvc(browser_run.project, "exp", "list", "--name-only").split()
    assert listed == [pipeline.experiment_name(run_id)]
