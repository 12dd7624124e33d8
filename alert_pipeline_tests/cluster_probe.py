"""Measures the Celery executor on this machine for docs/scaling.md: the same landing files
ingested (`ingest_job`) and their days materialized (`daily_alerts_job`) in one process, and by
1, 2 … Celery workers (one step at a time each).

    python -m alert_pipeline_tests.cluster_probe --files 8 --rows 1000000 --workers 1 2

Needs RabbitMQ and PostgreSQL on 127.0.0.1 (as the tests do). Prints one line per setting.
`--object-store`: the home in a SeaweedFS started for the probe, as in the tests.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from alert_pipeline.generate import generate_logs
from alert_pipeline_tests.cluster import Cluster, celery_cluster
from alert_pipeline_tests.object_store import SeaweedFS


def timed(cluster: Cluster, *argv: str) -> float:
    started = time.perf_counter()
    cluster.dagster(*argv)
    return time.perf_counter() - started


def measure(cluster: Cluster, landing: Path, days: list[str]) -> tuple[float, float]:
    for path in sorted(landing.iterdir()):
        cluster.land(path)
    ingest = timed(cluster, "job", "execute", "-j", "ingest_job")
    tags = {
        "dagster/asset_partition_range_start": days[0],
        "dagster/asset_partition_range_end": days[-1],
    }
    alerts = timed(cluster, "job", "execute", "-j", "daily_alerts_job", "--tags", json.dumps(tags))
    return ingest, alerts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--rows", type=int, default=1_000_000, help="records per file")
    parser.add_argument("--days", type=int, default=2, help="UTC days each file spans")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--object-store", action="store_true", help="the home in SeaweedFS")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="alert-pipeline-cluster-probe-"))
    store = SeaweedFS(root / "seaweedfs").start() if args.object_store else None
    try:
        landing = root / "landing"
        for seed in range(args.files):
            name = f"part-{seed}.csv"
            generate_logs(landing, rows=args.rows, days=args.days, seed=seed, one_file=name)
        days = [f"2021-09-{10 + n}" for n in range(args.days)]
        records = args.files * args.rows
        print(f"{args.files} files × {args.rows:,} records over {args.days} days ({records:,})")
        for workers in [0, *args.workers]:
            names = tuple(f"probe{n}" for n in range(1, workers + 1))
            with celery_cluster(root / f"run-{workers}", names, store) as cluster:
                if not workers:  # the default: every step of a run in its one process
                    cluster.env.pop("ALERT_PIPELINE_EXECUTOR")
                ingest, alerts = measure(cluster, landing, days)
            setting = f"{workers} Celery workers" if workers else "one process (in_process)"
            print(
                f"{setting}: ingest_job {ingest:.1f} s ({records / ingest:,.0f} records/s), "
                f"daily_alerts_job {alerts:.1f} s",
                flush=True,
            )
    finally:
        if store:
            store.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
