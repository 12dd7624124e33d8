"""The `alert-pipeline` command: run the pipeline on a home folder, the demo, and synthetic data."""

import argparse
import datetime as dt
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from alert_pipeline.partitions import affected_partitions, day_ranges, range_tags
from alert_pipeline.resources import DEFAULT_HOME, START_DATE, AlertHome
from alert_pipeline.rules import RULES
from alert_pipeline.warehouse import UNDATED, FileOutcome, Home, days_with_data, ingest_pending

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample_logs.csv"
LOCAL_DAGSTER_YAML = """\
# Local Dagster instance for `alert-pipeline run` and `make ui` (SQLite, few concurrent runs).
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 2
"""


class RunFailed(Exception):
    """The pipeline could not run; the message is the one-line reason shown to the user."""


@dataclass
class RunSummary:
    outcomes: list[FileOutcome]
    partitions: list[str] = field(default_factory=list)
    incidents: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        by_status: dict[str, int] = {}
        for outcome in self.outcomes:
            by_status[outcome.status] = by_status.get(outcome.status, 0) + 1
        files = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or "none new"
        lines = [
            f"files: {files}",
            f"records: {sum(o.read for o in self.outcomes)} read, "
            f"{sum(o.stored for o in self.outcomes)} stored, "
            f"{sum(o.quarantined for o in self.outcomes)} quarantined",
        ]
        lines += [f"rejected file {o.name}: {o.reason}" for o in self.outcomes if o.reason]
        if self.partitions:
            lines.append(f"partitions materialized: {_ranges_text(self.partitions)}")
            lines += [f"incidents {rule}: {n}" for rule, n in self.incidents.items()]
        else:
            lines.append("nothing new to materialize")
        return lines


def _ranges_text(days: list[str]) -> str:
    return ", ".join(a if a == b else f"{a}…{b}" for a, b in day_ranges(days))


def dagster_instance(home: Home):
    """The persistent Dagster instance under the home folder (the one `make ui` opens)."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    home.dagster.mkdir(parents=True, exist_ok=True)
    config = home.dagster / "dagster.yaml"
    if not config.exists():
        config.write_text(LOCAL_DAGSTER_YAML)
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home.dagster)))


def _materialize(home: Home, job_name: str, days: list[str]) -> None:
    from alert_pipeline.definitions import defs

    job = defs.resolve_job_def(job_name)
    run_config = {
        "resources": {"alert_home": {"config": {"path": str(home.root)}}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    with dagster_instance(home) as instance:
        for first, last in day_ranges(days):
            result = job.execute_in_process(
                run_config=run_config,
                instance=instance,
                tags=range_tags(first, last),
                raise_on_error=False,
            )
            if not result.success:
                failure = next((e for e in result.all_events if e.is_failure), None)
                detail = failure.message if failure is not None else "see the run in the UI"
                raise RunFailed(f"{job_name} failed for {first}…{last}: {detail}")


def run_pipeline(home_path: Path) -> RunSummary:
    """Ingest what is new in the landing folder and materialize every partition it can change."""
    home = Home(home_path).create()
    config = AlertHome(path=str(home.root), start_date=START_DATE)
    outcomes = ingest_pending(home, config.time_range())
    summary = RunSummary(outcomes)
    changed = {day for o in outcomes for day in o.changed_days if day != UNDATED}
    if not changed:
        return summary
    summary.partitions = affected_partitions(changed, days_with_data(home))
    _materialize(home, "validated_logs_job", sorted(changed))
    _materialize(home, "alerts_job", summary.partitions)
    summary.incidents = {
        rule.name: sum(
            1
            for day in summary.partitions
            for incident in _report_incidents(home, day)
            if incident["rule"] == rule.name
        )
        for rule in RULES
    }
    return summary


def _report_incidents(home: Home, day: str) -> list[dict]:
    path = home.reports / day / "alert_report.json"
    return json.loads(path.read_text())["incidents"] if path.exists() else []


def print_incidents(home: Home) -> None:
    """Every incident in the home's reports, one line each, then where the reports are."""
    days = (
        sorted(p.name for p in home.reports.iterdir() if p.is_dir())
        if home.reports.is_dir()
        else []
    )
    print(f"incidents in {len(days)} daily reports:")
    for day in days:
        for incident in _report_incidents(home, day):
            group = ", ".join(f"{k}={v}" for k, v in incident["group"].items()) or "all traffic"
            print(
                f"  {incident['start']} → {incident['end']}  {incident['rule']}  [{group}]  "
                f"peak {incident['peak_count']}, {incident['event_count']} events"
            )
    print(f"reports: {home.reports.resolve()}/<day>/alert_report.{{json,md,html}}")


def cmd_run(args: argparse.Namespace) -> int:
    try:
        summary = run_pipeline(Path(args.home))
    except (RunFailed, OSError) as error:
        print(f"alert-pipeline: {error}".splitlines()[0], file=sys.stderr)
        return 1
    print("\n".join(summary.lines()))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    home = Home(Path(args.home)).create()
    if not SAMPLE.exists():
        print(f"alert-pipeline: sample file missing: {SAMPLE}", file=sys.stderr)
        return 1
    shutil.copy2(SAMPLE, home.incoming / SAMPLE.name)
    code = cmd_run(args)
    if code == 0:
        print_incidents(home)
        print(f"open the UI on the same home: make ui  (DAGSTER_HOME={home.dagster.resolve()})")
    return code


def cmd_generate(args: argparse.Namespace) -> int:
    from alert_pipeline.generate import generate_logs

    result = generate_logs(
        Path(args.out),
        rows=args.rows,
        days=args.days,
        seed=args.seed,
        start_day=dt.date.fromisoformat(args.start),
        header=args.header,
        one_file=args.one_file,
        compress=args.gzip,
    )
    print(f"wrote {result.rows} records in {len(result.files)} files to {args.out}")
    for burst in result.planted:
        print(f"  planted {burst.kind} burst: {burst.events} events from {burst.start_epoch:.6f}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from alert_pipeline.bench import run_bench

    return run_bench(
        rows=args.rows,
        days=args.days,
        seed=args.seed,
        repeat=args.repeat,
        work=args.work,
        competitors=args.competitors,
        json_path=args.json,
        keep=args.keep,
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="alert-pipeline", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    for name, function, text in (
        ("run", cmd_run, "ingest new landing files and materialize the partitions they change"),
        ("demo", cmd_demo, "run the whole pipeline on the bundled sample and print incidents"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument(
            "--home", default=DEFAULT_HOME, help="home folder (default: %(default)s)"
        )
        command.set_defaults(function=function)
    generate = commands.add_parser("generate", help="write realistic synthetic log files")
    generate.add_argument("--out", required=True)
    generate.add_argument("--rows", type=int, required=True)
    generate.add_argument("--days", type=int, default=1)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--start", default="2021-09-10", help="first UTC day (YYYY-MM-DD)")
    generate.add_argument("--header", choices=["names", "positional", "none"], default="names")
    generate.add_argument("--one-file", help="write one file of this name instead of one per day")
    generate.add_argument("--gzip", action="store_true", help="write .csv.gz files")
    generate.set_defaults(function=cmd_generate)
    from alert_pipeline.bench import COMPETITORS, DEFAULT_WORK

    bench = commands.add_parser(
        "bench", help="time the pipeline against DuckDB and pandas on one synthetic file"
    )
    bench.add_argument("--rows", type=int, required=True, help="records to generate")
    bench.add_argument("--days", type=int, default=1, help="UTC days they span (default: 1)")
    bench.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    bench.add_argument("--repeat", type=int, default=3, help="runs per competitor (default: 3)")
    bench.add_argument(
        "--work",
        help=f"work folder: cached input, run folders (default: $ALERT_PIPELINE_BENCH_DIR, "
        f"else {DEFAULT_WORK})",
    )
    bench.add_argument("--competitors", nargs="+", choices=COMPETITORS, default=list(COMPETITORS))
    bench.add_argument("--json", help="also write the raw figures to this JSON file")
    bench.add_argument("--keep", action="store_true", help="keep every run's folder")
    bench.set_defaults(function=cmd_bench)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.function(args)


if __name__ == "__main__":
    sys.exit(main())
