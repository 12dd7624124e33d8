"""The `alert-pipeline` command: run the pipeline on a home folder, the demo, and synthetic data.

Exit codes: 0 done; 1 could not run, or notifications.yaml cannot be used (one line on stderr
says why; `--verbose` adds the traceback); 2 bad command line; 3 done, but a file added no records
(rejected whole, or every record quarantined): someone should look. Only the standard library is imported up front, so
that a bad setting is reported like any other failure.
"""

import argparse
import datetime as dt
import os
import shutil
import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path

from alert_pipeline.bench import COMPETITORS, DEFAULT_WORK
from alert_pipeline.errors import PipelineError

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample_logs.csv"
EXIT_FAILED = 1
EXIT_FILES_WITHOUT_RECORDS = 3


def say(lines: Iterable[str], stream=None) -> None:
    """Print lines; when the reader has gone away (`… | head`), stop printing quietly."""
    stream = stream or sys.stdout
    try:
        for line in lines:
            print(line, file=stream)
        stream.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def home_folder(text: str | None, create: bool):
    """The home of `--home` (default $ALERT_PIPELINE_HOME, else data), which must exist unless
    `create`: a typo must not start an empty home that reports "nothing new"."""
    from alert_pipeline.home import Home
    from alert_pipeline.objects import SCHEME
    from alert_pipeline.registry import use_home
    from alert_pipeline.resources import DEFAULT_HOME

    text = DEFAULT_HOME if text is None else text
    if not text.strip():
        raise PipelineError("the home folder is empty: give --home DIR or set ALERT_PIPELINE_HOME")
    if text.startswith(SCHEME):  # a home in an object store (objects.py)
        home = Home(text).create()
        use_home(home.root)
        return home
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise PipelineError(f"the home folder {path.absolute()} is not a folder")
    if not path.exists() and not create:
        raise PipelineError(
            f"the home folder {path.absolute()} does not exist (check the path, or add --create)"
        )
    use_home(path.absolute())  # its rules.yaml, before the pipeline's modules load the rules
    return Home(path).create()


def print_incidents(home) -> None:
    """Every incident in the home's reports, one line each, then where the reports are."""
    from alert_pipeline.objects import synced
    from alert_pipeline.runner import report_incidents

    days = (
        sorted(p.name for p in home.reports.iterdir() if p.is_dir())
        if synced(home.reports).is_dir()
        else []
    )
    lines = [f"incidents in {len(days)} daily reports:"]
    for day in days:
        for incident in report_incidents(home, day):
            group = ", ".join(f"{k}={v}" for k, v in incident["group"].items()) or "all traffic"
            lines.append(
                f"  {incident['start']} → {incident['end']}  {incident['rule']}  [{group}]  "
                f"peak {incident['peak_count']}, {incident['event_count']} events"
            )
    lines.append(f"reports: {home.reports}/<day>/alert_report.{{json,md,html}}")
    say(lines)


def _run(home) -> int:
    from alert_pipeline.progress import Progress
    from alert_pipeline.runner import run_pipeline

    summary = run_pipeline(home, Progress.for_stream("ingesting"))
    say(summary.lines())
    say((f"alert-pipeline: warning: {w}" for w in summary.warnings()), sys.stderr)
    if summary.notifications_held:
        say([f"alert-pipeline: notifications held: {summary.notifications_held}"], sys.stderr)
        return EXIT_FAILED
    return EXIT_FILES_WITHOUT_RECORDS if summary.files_without_records else 0


def cmd_run(args: argparse.Namespace) -> int:
    return _run(home_folder(args.home, create=args.create))


def cmd_demo(args: argparse.Namespace) -> int:
    home = home_folder(args.home, create=True)
    if not SAMPLE.exists():
        raise PipelineError(f"the sample file is missing: {SAMPLE}")
    shutil.copy2(SAMPLE, home.incoming / SAMPLE.name)
    code = _run(home)
    print_incidents(home)
    say([f"open the UI on the same home: make ui  (DAGSTER_HOME={home.dagster})"])
    return code


NOTIFY_DELIVERY_SECONDS = 60.0


def cmd_notify(args: argparse.Namespace) -> int:
    """Deliver due notifications (for cron), or --status, --check, --test CHANNEL, or deal with
    the dead letters."""
    import time

    from alert_pipeline.notifications.config import load_notifications
    from alert_pipeline.notifications.outbox import open_outbox
    from alert_pipeline.notifications.transports import send
    from alert_pipeline.pipeline import RULE_NAMES
    from alert_pipeline.runner import deliver_notifications

    home = home_folder(args.home, create=False)
    if args.status:
        with open_outbox(home) as outbox:
            counts, dead, upcoming = (
                outbox.counts(),
                outbox.dead_letters(),
                outbox.next_attempt_us(),
            )
        lines = [f"outbox: {home.root / 'notifications' / 'outbox.db'}"]
        lines += [
            f"channel {name}: " + ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
            for name, states in sorted(counts.items())
        ] or ["no messages"]
        if upcoming:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(upcoming / 1e6))
            lines.append(f"next attempt: {when}")
        lines.append(f"dead letters: {len(dead)}")
        lines += [
            f"  {d['channel']}  {d['incident']}  {d['status']}  {d['partition']}  "
            f"after {d['attempts']} attempts: {d['error']}"
            for d in dead[-20:]
        ]
        say(lines)
        return 1 if dead else 0
    if args.drop_dead:
        with open_outbox(home) as outbox:
            say([f"dead letters dropped: {outbox.drop_dead()}"])
        return 0
    config = load_notifications(home, RULE_NAMES)
    if args.check:
        channels = ", ".join(f"{c.name} ({c.type})" for c in config.channels)
        say(
            [
                f"{config.source}: ok, {len(config.channels)} channels: {channels}"
                if config.source
                else "no notifications.yaml: nothing is paged"
            ]
        )
        return 0
    if args.test:
        channel = config.channel(args.test)
        body = {"kind": "test", "channel": channel.name}
        action = "resolve" if channel.type == "pagerduty" else "send"
        test_key = f"alert-pipeline-test-{time.time_ns()}"
        if channel.type == "pagerduty":  # a trigger would open a real incident; resolve is inert
            body |= {"incident_id": test_key}
        outcome = send(channel, body, action, test_key, None)
        if not outcome.delivered:
            raise PipelineError(f"test message to {channel.name} not delivered: {outcome.error}")
        say([f"test message delivered to {channel.name} ({channel.type})"])
        return 0
    if args.retry_dead:
        with open_outbox(home) as outbox:
            say([f"dead letters queued again: {outbox.requeue_dead(time.time_ns() // 1000)}"])
    say([deliver_notifications(home, NOTIFY_DELIVERY_SECONDS) or "no channels configured"])
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from alert_pipeline.generate import generate_logs
    from alert_pipeline.progress import Progress

    progress = Progress.for_stream("generating")
    result = generate_logs(
        Path(args.out),
        rows=args.rows,
        days=args.days,
        seed=args.seed,
        start_day=dt.date.fromisoformat(args.start),
        header=args.header,
        one_file=args.one_file,
        compress=args.gzip,
        progress=progress,
    )
    progress.close()
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
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", help="on failure, show the whole traceback"
    )
    home = argparse.ArgumentParser(add_help=False)
    home.add_argument(
        "--home",
        help="home folder, or s3://bucket/prefix (default: $ALERT_PIPELINE_HOME, else data)",
    )
    run = commands.add_parser(
        "run",
        parents=[common, home],
        help="ingest new landing files and bring every stale day up to date",
    )
    run.add_argument("--create", action="store_true", help="create the home folder if missing")
    run.set_defaults(function=cmd_run)
    demo = commands.add_parser(
        "demo",
        parents=[common, home],
        help="run the whole pipeline on the bundled sample and print incidents",
    )
    demo.set_defaults(function=cmd_demo)
    notify = commands.add_parser(
        "notify",
        parents=[common, home],
        help="deliver due notifications (cron), or show the outbox, check the config, test",
    )
    what = notify.add_mutually_exclusive_group()
    what.add_argument("--status", action="store_true", help="show the outbox and dead letters")
    what.add_argument("--check", action="store_true", help="check notifications.yaml")
    what.add_argument("--test", metavar="CHANNEL", help="send a test message to CHANNEL")
    what.add_argument(
        "--retry-dead", action="store_true", help="queue the dead letters again, then deliver"
    )
    what.add_argument(
        "--drop-dead", action="store_true", help="drop the dead letters (dealt with by hand)"
    )
    notify.set_defaults(function=cmd_notify)
    generate = commands.add_parser(
        "generate", parents=[common], help="write realistic synthetic log files"
    )
    generate.add_argument("--out", required=True)
    generate.add_argument("--rows", type=int, required=True)
    generate.add_argument("--days", type=int, default=1)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--start", default="2021-09-10", help="first UTC day (YYYY-MM-DD)")
    generate.add_argument("--header", choices=["names", "positional", "none"], default="names")
    generate.add_argument("--one-file", help="write one file of this name instead of one per day")
    generate.add_argument("--gzip", action="store_true", help="write .csv.gz files")
    generate.set_defaults(function=cmd_generate)
    bench = commands.add_parser(
        "bench",
        parents=[common],
        help="time the pipeline against DuckDB and pandas on one synthetic file",
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


def failure_reason(error: BaseException) -> str | None:
    """The one-line reason of a known failure (None for anything else: a bug, shown whole)."""
    if isinstance(error, PipelineError):
        return str(error)
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror or error}{where}"
    cause = getattr(error, "orig", None)  # SQLAlchemy wraps the database's own error
    if isinstance(error, sqlite3.Error) or isinstance(cause, sqlite3.Error):
        reason = str(cause or error)
        hint = " (is its disk full or read-only?)" if "I/O" in reason else ""
        return f"the Dagster instance's database: {reason}{hint}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.function(args)
    except Exception as error:
        reason = failure_reason(error)
        if reason is None or args.verbose:
            raise
        say([f"alert-pipeline: {reason}".splitlines()[0]], sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
