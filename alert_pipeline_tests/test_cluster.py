"""Dagster's Celery executor on the real RabbitMQ, with two Celery workers as separate processes,
the Dagster instance (deploy/dagster.cluster.yaml) and the ledger in the real PostgreSQL: both
workers execute steps, and the Parquet, ledger, incidents and reports equal those of a local
one-process run of the same files, with the home a local folder both workers see and with the
home in an object store (a real SeaweedFS), where each worker has only a cache of its own and the
coordinator's local folder of the home is hidden from it. A worker killed mid-ingestion is tested
with the object store only: what the broker does with its step does not depend on the home, and
a killed worker's leftovers in a shared home folder are test_shared_state.py's."""

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from alert_pipeline.executors import EXECUTOR_ENV, distributed, run_executor
from alert_pipeline.generate import generate_logs
from alert_pipeline.home import Home
from alert_pipeline.ledger import STATE_URL_ENV
from alert_pipeline.objects import object_home, synced
from alert_pipeline.runner import run_pipeline
from alert_pipeline_tests.cluster import (
    POSTGRES_URL,
    Cluster,
    celery_cluster,
    postgres_problem,
    rabbitmq_problem,
)
from alert_pipeline_tests.helpers import incidents, need, reports
from alert_pipeline_tests.stack import REPO, poll_until
from alert_pipeline_tests.test_bad_input import contents
from alert_pipeline_tests.test_warehouse import assert_no_temp_files

BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
DAYS = ["2021-09-10", "2021-09-11"]
WORKERS = ("w1", "w2")


@pytest.fixture(params=["local", "object store"])
def cluster(request, tmp_path_factory) -> Iterator[Cluster]:
    for problem in (rabbitmq_problem(), postgres_problem()):
        need(problem is None, problem or "")
    store = request.getfixturevalue("seaweedfs") if request.param == "object store" else None
    with celery_cluster(tmp_path_factory.mktemp("cluster"), WORKERS, store) as deployed:
        yield deployed


def local_copy(cluster: Cluster) -> Home:
    """The cluster's home with every file current in this process's folder of it."""
    synced(cluster.home.root)
    return cluster.home


def staging_folder(cluster: Cluster, worker: str) -> Path:
    """Where a worker writes a file's parts before they are committed."""
    store = object_home(cluster.home.root)
    return cluster.worker_cache(worker) if store else cluster.home.validated


def land(folder: Path, rows: int = 40_000) -> list[Path]:
    for seed in range(4):
        generate_logs(folder, rows=rows, days=2, seed=seed, one_file=f"part-{seed}.csv")
    return sorted(folder.iterdir())


def landed_with_reference(cluster: Cluster, folder: Path, rows: int, monkeypatch) -> Home:
    """The same files in the cluster's landing folder and in a local home run in one process."""
    reference = Home(folder / "reference").create()
    for path in land(folder / "landing", rows):
        cluster.land(path)
        shutil.copy(path, reference.incoming / path.name)
    monkeypatch.delenv(STATE_URL_ENV, raising=False)
    run_pipeline(reference)
    return reference


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
    home = local_copy(cluster)
    assert contents(home) == expected
    assert incidents(home) == incidents(reference)
    assert reports(home.reports) == reports(reference.reports)
    assert reports(reference.reports).keys() == set(DAYS)


@pytest.mark.parametrize("cluster", ["object store"], indirect=True)
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
        # a day part being written: only a file's ingestion step writes one (the step that
        # lists the files writes its outputs through temp files too)
        staging = [p for p in staging_folder(cluster, "w1").rglob(".*.parquet.*.tmp")]
        return busy and bool(staging), (busy, staging)

    # a file's parts take about a second to write on a fast machine: look often
    poll_until("w1 at work on a file", 120, w1_ingesting, cluster.tails, every=0.02)
    os.killpg(cluster.workers["w1"].pid, signal.SIGKILL)
    output = run.communicate(timeout=600)[0]
    assert run.returncode == 0, (output[-3000:], cluster.tails())
    executed = cluster.workers_of_steps()
    ingest_steps = {k: v for k, v in executed.items() if k.startswith("ingest_landing_file[")}
    assert len(ingest_steps) == 4, executed
    assert {"w1", "w2"} in ingest_steps.values(), executed  # begun by w1, done again by w2
    expected = contents(reference)
    monkeypatch.setenv(STATE_URL_ENV, POSTGRES_URL)
    home = local_copy(cluster)
    assert_no_temp_files(home)  # in an object store: every object, fetched
    assert contents(home) == expected


def test_the_executor_is_chosen_by_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    assert run_executor().name == "in_process" and not distributed()
    monkeypatch.setenv(EXECUTOR_ENV, "celery")
    assert run_executor().name == "celery" and distributed()
    monkeypatch.setenv(EXECUTOR_ENV, "k8s")
    assert run_executor().name == "k8s" and distributed()
    monkeypatch.setenv(EXECUTOR_ENV, "nomad")
    with pytest.raises(ValueError, match="ALERT_PIPELINE_EXECUTOR='nomad': expected one of"):
        run_executor()
