"""The competitors of `alert-pipeline bench`: what each one runs inside its own worker process.

`python -m alert_pipeline.bench_competitors COMPETITOR CSV SCRATCH` runs one of `WORKERS`
on the input and writes its figures and breach events to `result.json` in SCRATCH, for `bench.py`
to read. They live apart from the driver so that a worker loads only what its competitor needs:
only the standard library is imported at module level, and each competitor imports its library
inside its function, before its RSS after imports is taken.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

CSV_NAME = "bench.csv"
RESULT_NAME = "result.json"

# The 24 columns' types for the copies (DuckDB's names): what the project stores, minus
# dictionary encoding.
DUCKDB_TYPES = {"date": "DOUBLE", "error_code": "BIGINT"} | {
    name: "BOOLEAN" for name in ("test_mode", "gdpr", "ccpa")
}


def _self_maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_project(csv: Path, scratch: Path) -> dict:
    """The project's own code in this process, as the assets run it, without Dagster."""
    from alert_pipeline.home import Home
    from alert_pipeline.ingestion import ingest_pending
    from alert_pipeline.ledger import days_with_data
    from alert_pipeline.pipeline import detect_and_store, report_day
    from alert_pipeline.registry import RULES
    from alert_pipeline.resources import AlertHome

    home = Home(scratch / "home").create()
    place_input(csv, home.incoming / CSV_NAME)
    rss_after_imports = _self_maxrss_kb()
    start, cpu_start = time.perf_counter(), time.process_time()
    outcomes = ingest_pending(home, AlertHome(path=str(home.root)).time_range())
    ingested = time.perf_counter()
    days = sorted(days_with_data(home))
    for rule in RULES:  # as the rule assets: one per rule, each over the days of the run
        for day in days:
            detect_and_store(home, rule, day)
    detected = time.perf_counter()
    for day in days:  # as the alert_report asset
        report_day(home, day)
    end = time.perf_counter()
    return {
        "wall_s": end - start,
        "cpu_s": time.process_time() - cpu_start,
        "phases": {
            "ingest_s": ingested - start,
            "rules_s": detected - ingested,
            "report_s": end - detected,
        },
        "rows": sum(o.read for o in outcomes),
        "rss_after_imports_kb": rss_after_imports,
    }


def _sql_text(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def duckdb_columns() -> str:
    """The `columns={...}` struct of read_csv: the 24 columns with explicit types."""
    from alert_pipeline.schema import COLUMNS

    return "{" + ", ".join(f"'{c}': '{DUCKDB_TYPES.get(c, 'VARCHAR')}'" for c in COLUMNS) + "}"


def duckdb_rule_sql(parquet: Path, rule) -> str:
    """Breach events of one rule: the time of the row `threshold` rows earlier in the group is
    within W. Not `RANGE BETWEEN INTERVAL … PRECEDING`, whose frame includes both ends."""
    severities = ", ".join(_sql_text(s) for s in sorted(rule.severities))
    group = rule.group_by or "NULL::VARCHAR"
    partition = "PARTITION BY g " if rule.group_by else ""
    return f"""
        WITH events AS (
            SELECT {group} AS g, CAST(round(date * 1000000) AS BIGINT) AS t
            FROM read_parquet({_sql_text(parquet)})
            WHERE lower(trim(severity)) IN ({severities})
        ), lagged AS (
            SELECT g, t, LAG(t, {rule.threshold}) OVER ({partition}ORDER BY t) AS t_k FROM events
        )
        SELECT DISTINCT g, t FROM lagged WHERE t_k > t - {rule.window_us}
    """


def run_duckdb(csv: Path, scratch: Path) -> dict:
    import duckdb

    from alert_pipeline.registry import RULES

    parquet = scratch / "logs.parquet"
    connection = None

    def copy() -> None:
        nonlocal connection
        connection = duckdb.connect()  # part of the timed copy
        connection.execute(
            f"COPY (SELECT * FROM read_csv({_sql_text(csv)}, header = true, delim = ',', "
            f"quote = '\"', escape = '\"', columns = {duckdb_columns()})) "
            f"TO {_sql_text(parquet)} (FORMAT parquet, COMPRESSION zstd)"
        )

    figures = _copy_then_rules(
        copy,
        lambda: {
            rule.name: connection.execute(duckdb_rule_sql(parquet, rule)).fetchall()
            for rule in RULES
        },
        lambda: connection.execute(
            f"SELECT count(*) FROM read_parquet({_sql_text(parquet)})"
        ).fetchone()[0],
    )
    connection.close()
    return figures


def polars_schema() -> dict:
    """The 24 columns with explicit Polars types (those of the DuckDB copy)."""
    import polars as pl

    from alert_pipeline.schema import COLUMNS

    types = {"DOUBLE": pl.Float64, "BIGINT": pl.Int64, "BOOLEAN": pl.Boolean}
    return {c: types.get(DUCKDB_TYPES.get(c, ""), pl.String) for c in COLUMNS}


def polars_rule(parquet: Path, rule):
    """Breach events of one rule as a lazy Polars query: the time of the event `threshold`
    events earlier in the group is within W (as `duckdb_rule_sql`)."""
    import polars as pl

    group = pl.col(rule.group_by) if rule.group_by else pl.lit(None, pl.String)
    micros = (pl.col("date") * 1_000_000).round().cast(pl.Int64)
    severity = pl.col("severity").str.strip_chars().str.to_lowercase()
    earlier = pl.col("t").shift(rule.threshold)
    return (
        pl.scan_parquet(parquet)
        .filter(severity.is_in(sorted(rule.severities)))
        .select(g=group, t=micros)
        .sort("g", "t")
        .with_columns(t_k=earlier.over("g") if rule.group_by else earlier)
        .filter(pl.col("t_k") > pl.col("t") - rule.window_us)
        .select("g", "t")
        .unique()
    )


def run_polars(csv: Path, scratch: Path) -> dict:
    import polars as pl

    from alert_pipeline.registry import RULES

    parquet = scratch / "logs.parquet"
    return _copy_then_rules(
        lambda: pl.scan_csv(csv, schema=polars_schema()).sink_parquet(parquet, compression="zstd"),
        lambda: {rule.name: polars_rule(parquet, rule).collect().rows() for rule in RULES},
        lambda: pl.scan_parquet(parquet).select(pl.len()).collect().item(),
    )


def _copy_then_rules(
    copy: Callable[[], object],
    find_breaches: Callable[[], dict[str, list]],
    count_rows: Callable[[], int],
) -> dict:
    """The figures of a competitor that copies the CSV to Parquet, then runs every rule on the
    Parquet: wall and CPU time of both phases, the memory after each, rows and breaches."""
    rss_after_imports = _self_maxrss_kb()
    start, cpu_start = time.perf_counter(), time.process_time()
    copy()
    copied, copy_cpu = time.perf_counter(), time.process_time() - cpu_start
    rss_after_copy = _self_maxrss_kb()
    found = find_breaches()
    end, cpu = time.perf_counter(), time.process_time() - cpu_start
    return {
        "wall_s": end - start,
        "cpu_s": cpu,
        "copy_s": copied - start,
        "copy_cpu_s": copy_cpu,
        "phases": {"copy_s": copied - start, "rules_s": end - copied},
        "rows": int(count_rows()),
        "breaches": {name: [(g, int(t)) for g, t in rows] for name, rows in found.items()},
        "rss_after_imports_kb": rss_after_imports,
        "rss_after_copy_kb": rss_after_copy,
    }


def run_pandas_seed(csv: Path, scratch: Path) -> dict:
    """What users start from: the whole file in a DataFrame and `rolling(...).count()`."""
    import pandas as pd

    from alert_pipeline.registry import RULES

    rss_after_imports = _self_maxrss_kb()
    start, cpu_start = time.perf_counter(), time.process_time()
    frame = pd.read_csv(
        csv, dtype={"severity": "category", "os": "category", "bundle_id": "category"}
    )
    # Float seconds → datetime, rounded to whole µs as the project does: `unit="s"` on the floats
    # is off by some ns, which could flip events exactly W apart.
    frame["date"] = pd.to_datetime((frame["date"] * 1e6).round().astype("int64"), unit="us")
    loaded = time.perf_counter()
    results = {}
    for rule in RULES:
        fatal = frame[frame["severity"].str.strip().str.lower().isin(rule.severities)]
        fatal = fatal.assign(n=1).set_index("date").sort_index()
        window = f"{rule.window_us}us"
        if rule.group_by is None:
            counts = fatal["n"].rolling(window).count()
        else:
            counts = fatal.groupby(rule.group_by, observed=True)["n"].rolling(window).count()
        results[rule] = counts[counts > rule.threshold]
    end, cpu = time.perf_counter(), time.process_time() - cpu_start
    breaches = {}
    for rule, hits in results.items():
        if rule.group_by is None:
            pairs = [(None, t) for t in hits.index.as_unit("us").asi8]
        else:
            times = hits.index.get_level_values("date").as_unit("us").asi8
            groups = hits.index.get_level_values(rule.group_by).astype(str)
            pairs = list(zip(groups, times.tolist(), strict=True))
        breaches[rule.name] = sorted(
            {(g, int(t)) for g, t in pairs}, key=lambda e: (e[0] or "", e[1])
        )
    return {
        "wall_s": end - start,
        "cpu_s": cpu,
        "phases": {"read_s": loaded - start, "rules_s": end - loaded},
        "rows": len(frame),
        "breaches": breaches,
        "rss_after_imports_kb": rss_after_imports,
    }


WORKERS = {
    "project": run_project,
    "polars": run_polars,
    "duckdb": run_duckdb,
    "pandas_seed": run_pandas_seed,
}


def place_input(source: Path, target: Path) -> None:
    """The input file in a competitor's folder: a hard link when possible, else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def worker_main(argv: Sequence[str]) -> int:
    """`python -m alert_pipeline.bench_competitors COMPETITOR CSV SCRATCH`: run the
    competitor, write its result.json."""
    competitor, csv, scratch = argv
    result = WORKERS[competitor](Path(csv), Path(scratch))
    result["maxrss_self_kb"] = _self_maxrss_kb()
    (Path(scratch) / RESULT_NAME).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
