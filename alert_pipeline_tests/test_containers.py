"""The deployment for real: the project's Dockerfile built and its docker-compose.yml run, unchanged
(a copy of the clone and a generated .env), by docker-compose v1 against podman's Docker API.

The stack (postgres, user_code, webserver, daemon) must come up healthy; files dropped into the
data volume are ingested by the sensor and reported as the CLI reports them; a backfill runs
under the queue's limits; a restart keeps run history, sensor cursor and data; a user_code
container killed in the middle of a run heals without a manual step; processes run as UID 10001,
the image holds no secret, the UI is bound to 127.0.0.1; the UI screenshots of docs/img are
taken from this stack (UPDATE_DOCS_SCREENSHOTS=1 replaces them).

The base images python:3.11-slim-bookworm and postgres:16 are STAND-INS built from Debian
bookworm here (deploy/podman/), as no image registry is reachable: what is proven is our
Dockerfile and Compose file on podman 4.3 + docker-compose 1.29, not Docker Engine or Compose v2.
"""

import datetime as dt
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alert_pipeline.generate import generate_logs
from alert_pipeline.home import source_id
from alert_pipeline_tests.browser import CHROMEDRIVER, CHROMIUM, browse_asset_graph_and_report
from alert_pipeline_tests.containers import (
    DATA,
    PodmanStack,
    podman_problem,
    reference_reports,
    runs,
    stack_reports,
    summary,
    wait_runs,
)
from alert_pipeline_tests.helpers import need
from alert_pipeline_tests.stack import REPO, poll_until, run_days, run_tags

SECRET = "a-secret-that-only-.env-holds"
JOB = "daily_alerts_job"
LOCATION, REPOSITORY = "alert_pipeline", "__repository__"
DAYS = [str(dt.date(2021, 9, 10) + dt.timedelta(days=n)) for n in range(7)]
LATE_DAY = "2021-09-17"
REPORT_DAY = "2021-09-12"
BACKFILL_MUTATION = """
mutation Backfill($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on Error { message } } }"""
LAUNCH_RUN_MUTATION = """
mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on Error { message } } }"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanStack]:
    problem = podman_problem()
    need(problem is None, problem or "")
    root = tmp_path_factory.mktemp("containers")
    deployed = PodmanStack.prepare(
        root,
        {
            "ALERT_PIPELINE_SENSOR_INTERVAL_SECONDS": "2",
            "ALERT_PIPELINE_SETTLE_SECONDS": "0",
            "ALERT_PIPELINE_TEST_SECRET": SECRET,
        },
    )
    with deployed.running():
        size = deployed.podman("image", "inspect", "--format", "{{.Size}}", "alert-pipeline:latest")
        print(f"image {size} bytes")
        yield deployed


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """A week of day files, and a bigger late file (a run long enough to be killed in)."""
    folder = tmp_path_factory.mktemp("files")
    week = generate_logs(folder, rows=3000, days=len(DAYS), seed=11).files
    late = generate_logs(
        folder / "late", rows=400_000, days=1, seed=12, start_day=dt.date.fromisoformat(LATE_DAY)
    ).files[0]
    return week, late


HOLDER = """
import os, time
from alert_pipeline.home import Home
from alert_pipeline.ledger import lock
from alert_pipeline.schema import COLUMNS
home, landing = Home("{data}"), {landing!r}
with lock(home, *{keys!r}):
    if landing:
        (home.incoming / (landing + ".part")).write_text(",".join(COLUMNS) + "\\n")
        os.rename(home.incoming / (landing + ".part"), home.incoming / landing)
    open("/tmp/holder", "w").write(str(os.getpid()))
    time.sleep(600)
"""


def hold_locks(stack: PodmanStack, keys: list[str], landing: str = "") -> None:
    """A process in user_code holds these locks of the home (until killed), after landing an
    empty log file (a header only) named `landing` if given."""
    holder = HOLDER.format(data=DATA, keys=keys, landing=landing)
    stack.exec("user_code", "rm", "-f", "/tmp/holder")
    stack.podman("exec", "-d", stack.container("user_code"), "python", "-c", holder)
    poll_until(
        "the lock held",
        30,
        lambda: (bool(stack.exec("user_code", "cat", "/tmp/holder", check=False).strip()), None),
        stack.logs,
    )


def hold_the_ingestion_lock(stack: PodmanStack) -> None:
    """Land an empty log file while holding its ingestion lock: every ingestion run that starts
    then waits at that file's step. The name sorts first, so it is the first step it runs."""
    stack.holders = getattr(stack, "holders", 0) + 1
    name = f"0000-hold-{stack.holders}.csv"
    hold_locks(stack, [f"source:{source_id(name)}"], landing=name)


def test_the_stack_runs_unprivileged_with_secrets_only_from_env(stack: PodmanStack) -> None:
    for service in ("user_code", "webserver", "daemon"):
        users = stack.podman("top", stack.container(service), "user").split()[1:]
        assert users and set(users) == {"dagster"}, (service, users)
        assert stack.exec(service, "id", "-u").strip() == "10001"
    assert stack.exec("user_code", "printenv", "ALERT_PIPELINE_TEST_SECRET").strip() == SECRET
    image = stack.podman("image", "inspect", "alert-pipeline:latest")
    history = stack.podman("history", "--no-trunc", "alert-pipeline:latest")
    for text in (image, history):
        assert SECRET not in text and "containers-test-password" not in text
    published = stack.podman("port", stack.container("webserver")).strip()
    assert published == f"3000/tcp -> 127.0.0.1:{stack.port}", published
    instance = stack.graphql(
        "{ instance { runQueuingSupported runLauncher { name } "
        "runQueueConfig { maxConcurrentRuns } } }"
    )["instance"]
    assert (
        instance["runQueuingSupported"] and instance["runLauncher"]["name"] == "DefaultRunLauncher"
    )
    assert instance["runQueueConfig"]["maxConcurrentRuns"] == 4


def test_the_sensor_ingests_dropped_files_as_the_cli_does_and_backfills_queue(
    stack: PodmanStack, files, tmp_path: Path
) -> None:
    week, _ = files
    for path in week:
        stack.drop(path)

    def covered(current: list[dict]) -> bool:
        done = [r for r in current if r["jobName"] == JOB and r["status"] == "SUCCESS"]
        return {d for r in done for d in run_days(r)} >= set(DAYS)

    wait_runs(stack, "the sensor's runs", covered)
    expected = reference_reports(tmp_path / "reference", week)
    assert stack_reports(stack, tmp_path) == expected
    assert expected[REPORT_DAY]["incidents"], "the generator plants bursts"

    # A backfill of the week, two one-day backfills and a single run, while the test holds the
    # week's day locks inside user_code: every run waits at its first step (validated_logs
    # reconciles its days under their locks), so what the queue starts shows its limits (4 runs,
    # 2 of them of backfills).
    hold_locks(stack, [f"day:{day}" for day in DAYS])
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}

    def backfill(days: list[str], synchronous: bool) -> str:
        params = {
            "selector": {
                "partitionSetName": f"{JOB}_partition_set",
                "repositorySelector": selector,
            },
            "partitionNames": days,
        }
        if synchronous:
            params["forceSynchronousSubmission"] = True
        launched = stack.graphql(BACKFILL_MUTATION, {"params": params})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        return launched["backfillId"]

    week = backfill(DAYS, synchronous=False)  # the daemon submits it: one run (single_run policy)
    poll_until(
        "the week's backfill run",
        120,
        lambda: (any(run_tags(r).get("dagster/backfill") == week for r in runs(stack)), None),
        stack.logs,
    )
    backfills = [week, backfill([DAYS[1]], True), backfill([DAYS[5]], True)]
    single = stack.graphql(
        LAUNCH_RUN_MUTATION,
        {
            "params": {
                "selector": selector | {"jobName": JOB},
                "runConfigData": {},
                "executionMetadata": {"tags": [{"key": "dagster/partition", "value": DAYS[3]}]},
            }
        },
    )["launchRun"]["run"]["runId"]

    def saturated() -> tuple[bool, object]:
        current = runs(stack)
        mine = [r for r in current if run_tags(r).get("dagster/backfill") in backfills]
        started = [r for r in mine if r["status"] == "STARTED"]
        queued = [r for r in mine if r["status"] == "QUEUED"]
        single_started = any(r["runId"] == single and r["status"] == "STARTED" for r in current)
        return len(started) == 2 and len(queued) == 1 and single_started, summary(current)

    poll_until("two backfill runs started, one queued", 120, saturated, stack.logs)
    stack.exec("user_code", "sh", "-c", "kill $(cat /tmp/holder)")

    def finished(current: list[dict]) -> bool:
        ids = {run_tags(r).get("dagster/backfill") for r in current}
        return set(backfills) <= ids and any(r["runId"] == single for r in current)

    current = wait_runs(stack, "the backfills", finished)
    phase = [r for r in current if run_tags(r).get("dagster/backfill") in backfills]
    assert len(phase) == 3 and all(r["status"] == "SUCCESS" for r in phase), summary(phase)
    (week_run,) = [r for r in phase if run_tags(r).get("dagster/backfill") == week]
    assert run_days(week_run) == DAYS, "single_run backfill policy: one run for the whole week"
    assert stack_reports(stack, tmp_path / "again") == expected
    rows = stack.exec(
        "postgres", "psql", "-U", "dagster", "-d", "dagster", "-tAc", "SELECT count(*) FROM runs"
    )
    assert int(rows) == len(current), "run history is in Postgres"


def test_a_restart_keeps_history_cursor_and_data(stack: PodmanStack, tmp_path: Path) -> None:
    before = runs(stack)
    reports_before = stack_reports(stack, tmp_path / "before")
    stack.compose("down")  # no -v: the volumes stay
    stack.compose("up", "-d", "--no-build")
    stack.wait_healthy()
    time.sleep(15)  # several sensor ticks: nothing is ingested again
    after = runs(stack)
    assert {r["runId"] for r in after} == {r["runId"] for r in before}, summary(after)
    assert stack_reports(stack, tmp_path / "after") == reports_before


def _kill_code_server(stack: PodmanStack) -> None:
    """SIGKILL the code server (the container's init then exits, taking the run with it); the
    restart policy starts the container again, as after an out-of-memory kill."""
    init = int(stack.podman("inspect", "--format", "{{.State.Pid}}", stack.container("user_code")))
    children = Path(f"/proc/{init}/task/{init}/children").read_text().split()
    os.kill(int(children[0]), signal.SIGKILL)


def test_user_code_killed_mid_run_heals_with_the_same_reports(
    stack: PodmanStack, files, tmp_path: Path
) -> None:
    week, late = files
    before = {r["runId"] for r in runs(stack)}
    hold_the_ingestion_lock(stack)  # the run for the late file will be at work when killed
    stack.drop(late)

    def started() -> tuple[bool, object]:
        current = [r for r in runs(stack) if r["runId"] not in before]
        return any(r["status"] == "STARTED" for r in current), summary(current)

    poll_until("a run for the late file", 60, started, stack.logs)
    killed = {r["runId"] for r in runs(stack) if r["status"] == "STARTED"}
    _kill_code_server(stack)  # the run's process (and the lock holder) die with the container
    time.sleep(5)
    stack.wait_healthy()
    stack.killed_runs = killed

    def healed(current: list[dict]) -> bool:
        dead = {r["runId"]: r["status"] for r in current if r["runId"] in killed}
        done = [r for r in current if r["jobName"] == JOB and LATE_DAY in run_days(r)]
        return set(dead.values()) == {"FAILURE"} and any(r["status"] == "SUCCESS" for r in done)

    wait_runs(stack, "the killed run failed and its work done", healed)
    temps = stack.exec("user_code", "find", DATA, "-name", ".*.tmp", "-type", "f").split()
    assert temps == [], "half-written files stayed"
    expected = reference_reports(tmp_path / "reference", [*week, late])
    assert stack_reports(stack, tmp_path) == expected


def test_the_ui_shows_the_graph_and_a_report(stack: PodmanStack, tmp_path: Path) -> None:
    need(CHROMIUM.exists() and CHROMEDRIVER.exists(), "needs Debian's chromium and chromium-driver")
    report = stack_reports(stack, tmp_path)[REPORT_DAY]
    starts = [incident["start"] for incident in report["incidents"]]
    shots = tmp_path / "screenshots"
    shots.mkdir()
    browse_asset_graph_and_report(stack.url, REPORT_DAY, starts, shots, tmp_path)
    for name in ("asset-graph.png", "alert-report.png"):
        assert (shots / name).stat().st_size > 20_000, f"{name} looks empty"
        if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
            shutil.copyfile(shots / name, REPO / "docs" / "img" / name)
