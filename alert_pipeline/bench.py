"""`alert-pipeline bench`: this pipeline side by side with Polars, DuckDB and a plain pandas script.

The same synthetic file (`generate.generate_logs`, cached in the work folder by rows / days / seed)
is processed by every competitor, each in its own child process, `repeat` times; medians are shown:

- `project`: the project's own code in one process, without Dagster: `ingest_pending` into a fresh
  home, then the steps of `pipeline.py` the assets run: `detect_and_store` for every rule and day
  with data, then `report_day` for every day.
- `project_dagster`: `alert-pipeline run --home H` on a fresh home (the whole command: interpreter
  start, Dagster import and instance, runs), to show the orchestration overhead.
- `duckdb_copy` / `duckdb`: DuckDB's typed CSV → zstd Parquet copy alone, and that copy plus the
  rules as window SQL on the Parquet.
- `polars_copy` / `polars`: Polars' streaming `scan_csv` with the 24 explicit types →
  `sink_parquet(compression="zstd")` alone (the reference of the ratios: the fastest bare copy), and
  that copy plus the rules as Polars expressions on the Parquet.
- `pandas_seed`: `pd.read_csv` of the whole file and `rolling(...).count()` per rule.

Wall time is measured inside the child around the work only (after the imports) for `project`,
`duckdb` and `pandas_seed`; for `project_dagster` it is the whole command. Peak RSS is the child's
`ru_maxrss` from `wait4`. The child is started by a tiny launcher process (`python -S`, ~10 MB),
not by this process directly: Linux carries the hiwater RSS of the process that forks / vforks
across `exec` into the child's `ru_maxrss`, so a child spawned straight from a bench process that
has generated data or read results would report at least that process's peak.

Fairness: every competitor reports its set of breaching events per rule, (group, event time µs)
of events whose window (t − W, t] holds more than `threshold` events of the group; the sets must be
equal across competitors and repeats, and every competitor must have loaded all the records. For the
project the set is computed from the warehouse it wrote (outside the timed part), and its stored
incidents are checked against the breach events too. A disagreement fails the command.

This module is the driver: the input, the launches, the summary and the table. What each
competitor runs in its child is in `bench_competitors.py`, the breach events they must agree on and
the check in `bench_fairness.py`. Only the standard library is imported at module level in all
three, so the CLI and the launcher stay light.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from alert_pipeline.bench_competitors import CSV_NAME, RESULT_NAME, place_input
from alert_pipeline.bench_fairness import (
    breaches_from_json,
    check_agreement,
    home_figures,
    incidents_from_breaches,
)

COMPETITORS: tuple[str, ...] = ("project", "project_dagster", "polars", "duckdb", "pandas_seed")
COPIES = ("polars", "duckdb")  # their runs also give the bare copy's figures (`<name>_copy`)
REFERENCE = "polars_copy"
DEFAULT_WORK = "/tmp/alert-pipeline-bench"
DEFAULT_START = dt.date(2021, 9, 10)
LAUNCH_NAME = "launch.json"
LOG_NAME = "output.log"

# The child's parent: spawns the command, waits for it with wait4 and writes its figures as JSON.
# Run with `python -S` so that its own peak RSS (which the command's ru_maxrss cannot go below)
# stays around 10 MB.
_LAUNCHER = """\
import json, os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(out, "w") as handle:
    json.dump({"exit_code": os.waitstatus_to_exitcode(status), "process_s": wall,
               "maxrss_kb": usage.ru_maxrss, "user_s": usage.ru_utime,
               "sys_s": usage.ru_stime}, handle)
"""


def default_work_dir() -> str:
    return os.environ.get("ALERT_PIPELINE_BENCH_DIR", DEFAULT_WORK)


class BenchFailed(Exception):
    """A competitor failed to run; the message says which and where its output is."""


def bench_input(work: Path, rows: int, days: int, seed: int) -> Path:
    """The generated file for (rows, days, seed), made once and reused."""
    from alert_pipeline.generate import generate_logs

    folder = work / "data" / f"rows-{rows}_days-{days}_seed-{seed}"
    csv, meta = folder / CSV_NAME, folder / "generated.json"
    key = {"rows": rows, "days": days, "seed": seed, "start": str(DEFAULT_START)}
    if csv.is_file() and meta.is_file():
        recorded = json.loads(meta.read_text())
        if recorded.get("key") == key and recorded.get("bytes") == csv.stat().st_size:
            return csv
    meta.unlink(missing_ok=True)
    print(f"generating {rows} records over {days} day(s) into {csv} …", file=sys.stderr)
    generate_logs(
        folder, rows=rows, days=days, seed=seed, start_day=DEFAULT_START, one_file=CSV_NAME
    )
    meta.write_text(json.dumps({"key": key, "bytes": csv.stat().st_size}) + "\n")
    return csv


def _cli_argv(home: Path) -> list[str]:
    script = Path(sys.executable).with_name("alert-pipeline")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "run", "--home", str(home)]
    return [sys.executable, "-m", "alert_pipeline.cli", "run", "--home", str(home)]


def _launch(argv: list[str], scratch: Path) -> dict:
    """Run `argv` under the launcher; its exit code, process wall time and peak RSS."""
    with open(scratch / LOG_NAME, "wb") as log:
        subprocess.run(
            [sys.executable, "-S", "-c", _LAUNCHER, str(scratch / LAUNCH_NAME), *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    return json.loads((scratch / LAUNCH_NAME).read_text())


def _output_tail(scratch: Path, lines: int = 15) -> str:
    path = scratch / LOG_NAME
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def run_once(competitor: str, csv: Path, scratch: Path) -> dict:
    """One run of one competitor in its own process, with the figures and breach events."""
    scratch.mkdir(parents=True)
    if competitor == "project_dagster":
        home = scratch / "home"
        (home / "incoming").mkdir(parents=True)
        place_input(csv, home / "incoming" / CSV_NAME)
        launch = _launch(_cli_argv(home), scratch)
        result: dict = {
            "wall_s": launch["process_s"],
            "cpu_s": launch["user_s"] + launch["sys_s"],
        }
    else:
        argv = [sys.executable, "-m", "alert_pipeline.bench_competitors", competitor]
        launch = _launch([*argv, str(csv), str(scratch)], scratch)
        result = {}
        if launch["exit_code"] == 0:
            result = json.loads((scratch / RESULT_NAME).read_text())
    if launch["exit_code"] != 0:
        raise BenchFailed(
            f"{competitor} exited with {launch['exit_code']}; its output ends with:\n"
            + _output_tail(scratch)
        )
    result.update(
        process_s=launch["process_s"],
        maxrss_kb=launch["maxrss_kb"],
        user_s=launch["user_s"],
        sys_s=launch["sys_s"],
    )
    if competitor in ("project", "project_dagster"):
        figures = home_figures(scratch / "home")
        result.update(
            rows=figures["rows"], breaches=figures["breaches"], problems=figures["problems"]
        )
    else:
        result["breaches"] = breaches_from_json(result["breaches"])
    return result


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or "unknown"
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nproc": usable,
        "memory_gib": round(memory / 2**30, 1),
        "cpu": model,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    found = {}
    for package in ("alert_pipeline", "dagster", "polars", "duckdb", "pandas", "pyarrow", "numpy"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "absent"
    return found


def summarize(runs: dict[str, list[dict]], rows: int) -> dict[str, dict]:
    """Medians per competitor (and `polars_copy` / `duckdb_copy` from those runs), in table
    order, with each one's ratio to `polars_copy` (the fastest bare copy)."""
    figures: dict[str, dict] = {}
    for competitor, results in runs.items():
        rows_of = [(competitor, "wall_s", "cpu_s", "maxrss_kb")]
        if competitor in COPIES:
            rows_of.insert(0, (f"{competitor}_copy", "copy_s", "copy_cpu_s", "rss_after_copy_kb"))
        for name, wall_key, cpu_key, rss_key in rows_of:
            walls = [r[wall_key] for r in results]
            rss = [r[rss_key] for r in results]
            wall = statistics.median(walls)
            figures[name] = {
                "median_wall_s": wall,
                "median_cpu_s": statistics.median(r[cpu_key] for r in results),
                "records_per_s": rows / wall if wall > 0 else float("inf"),
                "peak_rss_mb": statistics.median(rss) / 1024,
                "median_process_s": statistics.median(r["process_s"] for r in results),
                "wall_s": walls,
                "peak_rss_kb": rss,
            }
    reference = figures.get(REFERENCE, {}).get("median_wall_s")
    for values in figures.values():
        values["x_polars_copy"] = values["median_wall_s"] / reference if reference else None
    return figures


def markdown_table(figures: dict[str, dict]) -> str:
    lines = [
        "| competitor | median wall s | records/s | peak RSS MB | × polars copy | CPU s | process s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, values in figures.items():
        ratio = values["x_polars_copy"]
        lines.append(
            f"| {name} | {values['median_wall_s']:.2f} | {values['records_per_s']:,.0f} | "
            f"{values['peak_rss_mb']:,.0f} | {'—' if ratio is None else f'{ratio:.2f}'} | "
            f"{values['median_cpu_s']:.2f} | {values['median_process_s']:.2f} |"
        )
    return "\n".join(lines)


def canonical_command(
    rows: int,
    days: int,
    seed: int,
    repeat: int,
    work: Path,
    competitors: Sequence[str],
    json_path: Path | None,
) -> str:
    argv = ["alert-pipeline", "bench", "--rows", str(rows), "--days", str(days)]
    argv += ["--seed", str(seed), "--repeat", str(repeat), "--work", str(work)]
    argv += ["--competitors", *competitors]
    if json_path is not None:
        argv += ["--json", str(json_path)]
    return shlex.join(argv)


def run_bench(
    rows: int,
    days: int = 1,
    seed: int = 0,
    repeat: int = 3,
    work: Path | str | None = None,
    competitors: Sequence[str] = COMPETITORS,
    json_path: Path | str | None = None,
    keep: bool = False,
) -> int:
    """Run the benchmark, print the table; 0 when every competitor agrees, 1 otherwise."""
    if rows < 1 or days < 1 or repeat < 1:
        print("alert-pipeline: --rows, --days and --repeat must be at least 1", file=sys.stderr)
        return 1
    unknown = sorted(set(competitors) - set(COMPETITORS))
    if unknown:
        print(f"alert-pipeline: unknown competitors: {', '.join(unknown)}", file=sys.stderr)
        return 1
    competitors = [c for c in COMPETITORS if c in competitors]
    work = Path(work if work is not None else default_work_dir()).resolve()
    json_path = Path(json_path).resolve() if json_path is not None else None
    command = canonical_command(rows, days, seed, repeat, work, competitors, json_path)
    csv = bench_input(work, rows, days, seed)
    load_before = os.getloadavg()
    (work / "runs").mkdir(parents=True, exist_ok=True)
    runs_dir = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%dT%H%M%S-"), dir=work / "runs"))
    runs: dict[str, list[dict]] = {c: [] for c in competitors}
    try:
        for number in range(1, repeat + 1):  # round-robin, so drifts hit every competitor alike
            for competitor in competitors:
                scratch = runs_dir / f"{competitor}-{number}"
                result = run_once(competitor, csv, scratch)
                runs[competitor].append(result)
                print(
                    f"{competitor} run {number}/{repeat}: {result['wall_s']:.2f} s, "
                    f"{result['maxrss_kb'] / 1024:,.0f} MB peak RSS",
                    file=sys.stderr,
                )
                if not keep:
                    shutil.rmtree(scratch, ignore_errors=True)
    except BenchFailed as failure:
        print(f"alert-pipeline: bench failed: {failure}", file=sys.stderr)
        print(f"(run folders kept in {runs_dir})", file=sys.stderr)
        return 1
    if not keep:
        shutil.rmtree(runs_dir, ignore_errors=True)

    problems = check_agreement(runs, rows)
    figures = summarize(runs, rows)
    first = next(iter(runs.values()))[0]["breaches"]
    box = machine()
    box["load_average_before"] = [round(x, 2) for x in load_before]
    box["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(f"## alert-pipeline bench: {rows:,} records, {days} day(s), seed {seed}\n")
    print(markdown_table(figures))
    print()
    print(
        "wall: the timed work inside the child process (after its imports); for project_dagster "
        "the whole `alert-pipeline run`. CPU s: CPU time of all the child's threads over the "
        "same span (user + system). process s: the child process from start to exit. "
        "Peak RSS: the child's ru_maxrss (wait4); a copy's is its child's peak when the copy "
        "ended. Medians of "
        f"{repeat} run(s)."
    )
    print()
    print(
        f"machine: {box['nproc']} CPUs ({box['cpu']}), {box['memory_gib']} GiB, {box['system']}, "
        f"Python {box['python']}; " + ", ".join(f"{k} {v}" for k, v in versions().items())
    )
    print(
        f"load average (1, 5, 15 min) before: {box['load_average_before']}, "
        f"after: {box['load_average_after']} (other work on the machine skews the figures)"
    )
    print(f"input: {csv} ({csv.stat().st_size / 2**20:,.0f} MiB)")
    print(f"command: {command}")
    if problems:
        banner = "!" * 78
        print(f"\n{banner}\nFAIRNESS CHECK FAILED: the competitors do not agree\n{banner}")
        for problem in problems:
            print(f"  - {problem}")
        print(banner)
        print("alert-pipeline: bench: the competitors disagree (see above)", file=sys.stderr)
    else:
        counts = ", ".join(f"{rule} {len(found)}" for rule, found in first.items())
        incidents = ", ".join(
            f"{rule} {len(incidents_from_breaches(found, _window_us(rule)))}"
            for rule, found in first.items()
        )
        print(
            f"fairness: all {len(competitors)} competitors, every run, loaded {rows:,} records "
            f"and report the same breaching events ({counts}; incidents: {incidents})"
        )
    if json_path is not None:
        document = {
            "command": command,
            "rows": rows,
            "days": days,
            "seed": seed,
            "repeat": repeat,
            "input": {"path": str(csv), "bytes": csv.stat().st_size},
            "machine": box,
            "versions": versions(),
            "figures": figures,
            "runs": {
                competitor: [
                    {k: v for k, v in result.items() if k != "breaches"} for result in results
                ]
                for competitor, results in runs.items()
            },
            "breach_events": {rule: len(found) for rule, found in first.items()},
            "agree": not problems,
            "problems": problems,
        }
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if problems else 0


def _window_us(rule_name: str) -> int:
    from alert_pipeline.registry import RULES

    return next(rule.window_us for rule in RULES if rule.name == rule_name)
