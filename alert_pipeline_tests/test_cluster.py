"""Dagster's Celery executor on the real RabbitMQ, with two Celery workers as separate processes,
the Dagster instance (deploy/dagster.cluster.yaml) and the ledger in the real PostgreSQL: both
workers execute steps, and the Parquet, ledger, incidents and reports equal those of a local
one-process run of the same files. (One machine: the home is a local folder both workers see.)"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import psycopg2
import pytest
from dagster import DagsterEventType, DagsterInstance

from alert_pipeline.executors import EXECUTOR_ENV, distributed, run_executor
from alert_pipeline.generate import generate_logs
from alert_pipeline.home import Home
from alert_pipeline.ledger import STATE_URL_ENV
from alert_pipeline.runner import run_pipeline
from alert_pipeline_tests.helpers import need
from alert_pipeline_tests.stack import REPO, poll_until
from alert_pipeline_tests.test_bad_input import contents
from alert_pipeline_tests.test_shared_state import POSTGRES_URL, postgres_problem
from alert_pipeline_tests.test_warehouse import assert_no_temp_files

BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
DAYS = ["2021-09-10", "2021-09-11"]
WORKERS = ("w1", "w2")


def rabbitmq_problem() -> str | None:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=3).close()
    except OSError as error:
        return f"no RabbitMQ at 127.0.0.1:5672: {error}"
    return None


CELERY = [sys.executable, "-m", "celery", "-A", "alert_pipeline.celery_app"]


@dataclass
class Cluster:
    home: Home
    dagster_home: Path
    env: dict[str, str]
    logs: dict[str, Path] = field(default_factory=dict)
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start_worker(self, name: str) -> None:
        """A Celery worker process (in its own process group) taking one step at a time."""
        self.logs[name] = self.dagster_home.parent / f"{name}.log"
        with open(self.logs[name], "a") as log:
            self.workers[name] = subprocess.Popen(
                [*CELERY, "worker", "-n", f"{name}@%h", "--concurrency", "1", "-l", "info"]
                + ["--without-gossip", "--without-mingle", "--without-heartbeat"],
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        poll_until(
            f"Celery worker {name} ready",
            120,
            lambda: ("ready." in self.logs[name].read_text(), None),
            self.tails,
        )

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.send_signal(signal.SIGTERM)
        for worker in self.workers.values():
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)

    def dagster(self, *argv: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "dagster", *argv, "-m", "alert_pipeline.definitions"],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:], self.tails())
        return result.stdout

    def tails(self) -> str:
        return "\n".join(f"--- {n}\n{p.read_text()[-2000:]}" for n, p in self.logs.items())

    def workers_of_steps(self) -> dict[str, set[str]]:
        """Step key → the Celery workers that executed it, from the instance's event log."""
        executed: dict[str, set[str]] = {}
        with mock.patch.dict(os.environ, self.env):  # the instance's settings
            instance = DagsterInstance.from_config(str(self.dagster_home))
        for run in instance.get_runs():
            for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
                event = record.dagster_event
                metadata = event.engine_event_data.metadata if event else {}
                if "Celery worker" in metadata:
                    worker = metadata["Celery worker"].value.split("@")[0]
                    executed.setdefault(event.step_key, set()).add(worker)
        return executed


@pytest.fixture
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    for problem in (rabbitmq_problem(), postgres_problem()):
        need(problem is None, problem or "")
    root = tmp_path_factory.mktemp("cluster")
    database = f"alert_pipeline_cluster_{os.getpid()}"
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {database}")
        cursor.execute(f"CREATE DATABASE {database}")
    dagster_home = root / "dagster"
    dagster_home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.cluster.yaml", dagster_home / "dagster.yaml")
    home = Home(root / "home").create()
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_POSTGRES_HOST": "127.0.0.1",
        "DAGSTER_POSTGRES_PORT": "5432",
        "DAGSTER_POSTGRES_USER": "postgres",
        "DAGSTER_POSTGRES_PASSWORD": "trusted",  # the server trusts 127.0.0.1
        "DAGSTER_POSTGRES_DB": database,
        "ALERT_PIPELINE_HOME": str(home.root),
        STATE_URL_ENV: POSTGRES_URL,
        "ALERT_PIPELINE_EXECUTOR": "celery",
        "ALERT_PIPELINE_SETTLE_SECONDS": "0",  # the files are complete when landed
        "ALERT_PIPELINE_CELERY_BROKER": BROKER,
    }
    subprocess.run([*CELERY, "purge", "-f"], env=env, cwd=REPO, check=True, capture_output=True)
    deployed = Cluster(home, dagster_home, env)
    try:
        for name in WORKERS:
            deployed.start_worker(name)
        yield deployed
    finally:
        deployed.stop()
        with admin.cursor() as cursor:
            cursor.execute("DELETE FROM alert_pipeline_ledger WHERE home = %s", (str(home.root),))
            cursor.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.close()


def land(folder: Path, rows: int = 40_000) -> list[Path]:
    for seed in range(4):
        generate_logs(folder, rows=rows, days=2, seed=seed, one_file=f"part-{seed}.csv")
    return sorted(folder.iterdir())


def landed_with_reference(cluster: Cluster, folder: Path, rows: int, monkeypatch) -> Home:
    """The same files in the cluster's landing folder and in a local home run in one process."""
    reference = Home(folder / "reference").create()
    for path in land(folder / "landing", rows):
        shutil.copy(path, cluster.home.incoming / path.name)
        shutil.copy(path, reference.incoming / path.name)
    monkeypatch.delenv(STATE_URL_ENV, raising=False)
    run_pipeline(reference)
    return reference


def reports(folder: Path) -> dict[str, dict]:
    return {
        path.parent.name: {k: json.loads(path.read_text())[k] for k in ("records", "incidents")}
        for path in sorted(folder.glob("*/alert_report.json"))
    }


def incidents(home: Home) -> dict[str, list]:
    return {
        str(path.relative_to(home.incidents)): json.loads(path.read_text())["incidents"]
        for path in sorted(home.incidents.rglob("*.json"))
    }


def test_two_celery_workers_share_the_steps_and_give_the_one_machine_results(
    cluster: Cluster, tmp_path: Path, monkeypatch
) -> None:
    reference = landed_with_reference(cluster, tmp_path, 40_000, monkeypatch)
    expected = contents(reference)

    cluster.dagster("job", "execute", "-j", "ingest_job")
    range_tags = {
        "dagster/asset_partition_range_start": DAYS[0],
        "dagster/asset_partition_range_end": DAYS[-1],
    }
    cluster.dagster("job", "execute", "-j", "daily_alerts_job", "--tags", json.dumps(range_tags))

    executed = cluster.workers_of_steps()
    ingest_steps = [step for step in executed if step.startswith("ingest_landing_file[")]
    assert len(ingest_steps) == 4, executed
    assert set().union(*executed.values()) == set(WORKERS), executed
    monkeypatch.setenv(STATE_URL_ENV, POSTGRES_URL)
    assert contents(cluster.home) == expected
    assert incidents(cluster.home) == incidents(reference)
    assert reports(cluster.home.reports) == reports(reference.reports)
    assert reports(reference.reports).keys() == set(DAYS)


def test_a_worker_killed_mid_ingestion_leaves_its_step_to_the_other(
    cluster: Cluster, tmp_path: Path, monkeypatch
) -> None:
    """SIGKILL of a worker (its whole process group) while it ingests a file: the broker gives
    the unacknowledged step to the other worker, whose ingestion of the file removes what the
    killed one left, and the run ends as a clean run would."""
    reference = landed_with_reference(cluster, tmp_path, 400_000, monkeypatch)
    run = subprocess.Popen(
        [sys.executable, "-m", "dagster", "job", "execute", "-j", "ingest_job"]
        + ["-m", "alert_pipeline.definitions"],
        env=cluster.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def w1_ingesting() -> tuple[bool, object]:
        log = cluster.logs["w1"].read_text()
        busy = log.count("Task execute_plan") > log.count("succeeded in")
        staging = [p for p in cluster.home.validated.rglob(".*.tmp")]
        return busy and bool(staging), (busy, staging)

    poll_until("w1 at work on a file", 120, w1_ingesting, cluster.tails)
    os.killpg(cluster.workers["w1"].pid, signal.SIGKILL)
    output = run.communicate(timeout=600)[0]
    assert run.returncode == 0, (output[-3000:], cluster.tails())
    executed = cluster.workers_of_steps()
    ingest_steps = {k: v for k, v in executed.items() if k.startswith("ingest_landing_file[")}
    assert len(ingest_steps) == 4, executed
    assert {"w1", "w2"} in ingest_steps.values(), executed  # begun by w1, done again by w2
    expected = contents(reference)
    monkeypatch.setenv(STATE_URL_ENV, POSTGRES_URL)
    assert_no_temp_files(cluster.home)
    assert contents(cluster.home) == expected


def test_the_executor_is_chosen_by_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    assert run_executor().name == "in_process" and not distributed()
    monkeypatch.setenv(EXECUTOR_ENV, "celery")
    assert run_executor().name == "celery" and distributed()
    monkeypatch.setenv(EXECUTOR_ENV, "k8s")
    with pytest.raises(ValueError, match="ALERT_PIPELINE_EXECUTOR='k8s': expected one of"):
        run_executor()
