"""docker/: the Dockerfile passes hadolint, and the compose file hangs together.

No container engine runs here, so the compose file is checked as data: its services, the
Celery profile, what each service waits for, and that every Airflow component gets the same
configuration pointing at services that exist.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tests.conftest import REPO

DOCKER = REPO / "docker"
AIRFLOW_SERVICES = {
    "airflow-init": ["db", "migrate"],
    "airflow-apiserver": ["api-server", "--port", "8080"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-worker": ["celery", "worker"],
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text()


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    done = subprocess.run(
        [str(hadolint), str(DOCKER / "Dockerfile")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_installs_the_locked_dependencies_and_cpu_torch(dockerfile: str) -> None:
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.MULTILINE)
    pins = dict(
        line.split("==")
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    torch = re.search(
        r'--index-url https://download\.pytorch\.org/whl/cpu "torch==([\d.]+)"', dockerfile
    )
    assert torch and torch.group(1) == pins["torch"]
    assert "pip install --constraint constraints.txt --editable ." in dockerfile


def test_image_copies_only_what_exists_and_is_not_ignored(dockerfile: str) -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE):
        for source in line.split()[:-1]:
            assert (REPO / source).exists(), f"COPY {source}: no such path"
            assert source.rstrip("/") in allowed, f"COPY {source}: excluded by the dockerignore"


def test_compose_runs_every_airflow_component(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "mtlrec-serve", *AIRFLOW_SERVICES}
    for name, command in AIRFLOW_SERVICES.items():
        assert services[name]["command"] == command, name
        assert services[name]["image"] == services["airflow-scheduler"]["image"]
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile"
        assert (DOCKER / services[name]["build"]["context"] / "docker" / "Dockerfile").is_file()


def test_only_the_celery_worker_is_behind_a_profile(compose: dict) -> None:
    profiles = {name: spec.get("profiles") for name, spec in compose["services"].items()}
    assert profiles.pop("airflow-worker") == ["celery"]
    assert set(profiles.values()) == {None}


def test_services_wait_for_what_they_need(compose: dict) -> None:
    services = compose["services"]
    for name, spec in services.items():
        for needed, condition in (spec.get("depends_on") or {}).items():
            assert needed in services, f"{name} depends on unknown service {needed}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[needed], f"{needed} has no healthcheck"
    for name in set(AIRFLOW_SERVICES) - {"airflow-init"}:
        waits = services[name]["depends_on"]
        assert waits["airflow-init"]["condition"] == "service_completed_successfully", name
        assert {"postgres", "redis"} <= set(waits), name
    for name in ("airflow-scheduler", "airflow-worker"):
        assert "airflow-apiserver" in services[name]["depends_on"]  # tasks report to it


def test_every_airflow_component_shares_one_configuration(compose: dict) -> None:
    services = compose["services"]
    env = services["airflow-scheduler"]["environment"]
    for name in AIRFLOW_SERVICES:
        assert services[name]["environment"] == env, name
        assert "..:/opt/mtlrec" in services[name]["volumes"], name
    assert env["MTLREC_PROJECT_DIR"] == "/opt/mtlrec"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/mtlrec/dags"
    assert "${AIRFLOW_JWT_SECRET:?" in env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    assert (REPO / "dags" / "mtl_retraining.py").is_file()  # what ..:/opt/mtlrec mounts


def test_connections_point_at_the_compose_services(compose: dict) -> None:
    services = compose["services"]
    env = services["airflow-scheduler"]["environment"]
    postgres = services["postgres"]["environment"]
    database = urlparse(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert database.hostname == "postgres" and database.path == f"/{postgres['POSTGRES_DB']}"
    assert (database.username, database.password) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
    )
    assert (
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"]
        == env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    )
    assert (
        env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    )
    assert urlparse(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
    assert env["MTLREC_FEAST_REDIS"].split(":")[0] == "redis"
    assert urlparse(env["MTLREC_FEAST_REGISTRY_URL"]).hostname == "postgres"
    api = urlparse(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert api.hostname == "airflow-apiserver"
    assert f"{api.port}:{api.port}" in services["airflow-apiserver"]["ports"]


def test_postgres_creates_the_feast_registry_database(compose: dict) -> None:
    mount = next(v for v in compose["services"]["postgres"]["volumes"] if "initdb" in v)
    init = DOCKER / mount.split(":")[0]
    sql = " ".join(path.read_text() for path in init.glob("*.sql"))
    feast_db = urlparse(
        compose["services"]["airflow-worker"]["environment"]["MTLREC_FEAST_REGISTRY_URL"]
    )
    assert f"CREATE DATABASE {feast_db.path.lstrip('/')}" in sql


def test_named_volumes_are_declared(compose: dict) -> None:
    declared = set(compose["volumes"])
    for spec in compose["services"].values():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, source


def test_the_ranking_service_runs_beside_airflow_on_the_same_stores(compose: dict) -> None:
    serve = compose["services"]["mtlrec-serve"]
    airflow = compose["services"]["airflow-scheduler"]
    assert serve["entrypoint"] == ["mtlrec"] and serve["command"][0] == "serve"
    assert serve["image"] == airflow["image"] and "..:/opt/mtlrec" in serve["volumes"]
    for key in ("MTLREC_FEAST_PROFILE", "MTLREC_FEAST_PROJECT", "MTLREC_FEAST_REGISTRY_URL",
                "MTLREC_FEAST_REDIS"):  # fmt: skip
        assert serve["environment"][key] == airflow["environment"][key], key
    assert "/readyz" in " ".join(serve["healthcheck"]["test"])
    assert serve["ports"] == ["8000:8000"] and "--host" in serve["command"]
    assert {"postgres", "redis"} <= set(serve["depends_on"])
