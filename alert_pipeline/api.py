"""The Python API: log records as pandas DataFrames, and the rules' incidents in any DataFrame.

`load_logs` reads a CSV file through the pipeline's own loader (same validation, same
quarantine) or a home's warehouse; `detect` runs registered or hand-made rules on the result.
Both give exactly what the pipeline stores and reports for the same records.
"""

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, NamedTuple, overload

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from alert_pipeline.errors import PipelineError
from alert_pipeline.home import Home
from alert_pipeline.ingestion import ingest_pending
from alert_pipeline.objects import SCHEME, object_home, synced
from alert_pipeline.rules import SlidingWindowRule
from alert_pipeline.schema import ARROW_SCHEMA, PANDAS_TYPES
from alert_pipeline.staging import QUARANTINE_SCHEMA

Days = str | tuple[str, str] | Iterable[str] | None


class Logs(NamedTuple):
    """Records that passed validation, and the quarantined ones with column and reason."""

    records: pd.DataFrame
    quarantined: pd.DataFrame


@overload
def load_logs(
    source: str | Path | Iterable[str | Path],
    days: Days = None,
    columns: list[str] | None = None,
    *,
    quarantined: Literal[False] = False,
) -> pd.DataFrame: ...
@overload
def load_logs(
    source: str | Path | Iterable[str | Path],
    days: Days = None,
    columns: list[str] | None = None,
    *,
    quarantined: Literal[True],
) -> Logs: ...
def load_logs(source, days=None, columns=None, *, quarantined=False):
    """Log records as a DataFrame typed by the Pandera model: categoricals for low-cardinality
    text, nullable Int64 / boolean, and `date` as UTC `datetime64[us]`.

    `source`: a CSV / CSV.gz file or a list of them (validated exactly as the pipeline does, as
    one data set), or a home folder or `s3://` home (its warehouse). `days`: one day "YYYY-MM-DD", an inclusive
    (first, last) tuple, or a list of days; None: all. `columns`: read only these. With
    `quarantined=True`, returns `Logs(records, quarantined)`; the quarantined records carry
    file, record number, column, reason and the raw record.
    """
    if isinstance(source, str) and source.startswith(SCHEME):
        logs = _read_home(Home(source), days, columns)
        return logs if quarantined else logs.records
    paths = [Path(source)] if isinstance(source, str | Path) else [Path(s) for s in source]
    for path in paths:
        if not path.exists():
            raise PipelineError(f"{path}: no such file or folder")
    if len(paths) == 1 and paths[0].is_dir():
        logs = _read_home(Home(paths[0]), days, columns)
    else:
        with tempfile.TemporaryDirectory(prefix="alert-pipeline-load-") as scratch:
            home = Home(Path(scratch)).create()
            clash = len({path.name for path in paths}) < len(paths)
            for n, path in enumerate(paths):
                _land(path, home.incoming / (f"{n}/{path.name}" if clash else path.name))
            _ingest(home)
            logs = _read_home(home, days, columns)
    return logs if quarantined else logs.records


def _land(path: Path, landed: Path) -> None:
    """The file in a scratch landing folder: linked where the file system allows (the loader
    does not follow symbolic links out of the landing folder), else copied."""
    landed.parent.mkdir(exist_ok=True)
    try:
        os.link(path, landed)
    except OSError:
        shutil.copyfile(path, landed)


def _ingest(home: Home) -> None:
    from alert_pipeline.resources import AlertHome  # the pipeline's accepted time range

    for outcome in ingest_pending(home, AlertHome(path=str(home.root)).time_range()):
        if outcome.status == "rejected":  # a duplicate adds nothing, as in the pipeline
            raise PipelineError(f"{outcome.name}: file rejected: {outcome.reason}")


def _selected_days(available: list[str], days: Days) -> list[str]:
    if days is None:
        return available
    if isinstance(days, str):
        wanted = [days]
    elif isinstance(days, tuple) and len(days) == 2:
        first, last = (dt.date.fromisoformat(day) for day in days)
        wanted = [str(first + dt.timedelta(n)) for n in range((last - first).days + 1)]
    else:
        wanted = list(days)
    return [day for day in wanted if day in available]


def _days_of(home: Home) -> list[str]:
    """The days a home has records of (from the store's listing, for a home in an object store:
    only the chosen days are fetched)."""
    if store := object_home(home.root):
        folders = {path.parent for path in store.objects(home.validated)}
        folders |= {path.parent for path in store.objects(home.quarantine)}
    else:
        folders = {*home.validated.glob("day=*"), *home.quarantine.glob("day=*")}
    return sorted({f.name.removeprefix("day=") for f in folders if f.name.startswith("day=")})


def _read_home(home: Home, days: Days, columns: list[str] | None) -> Logs:
    chosen = _selected_days(_days_of(home), days)
    for day in chosen:
        synced(home.day_dir(day))
        synced(home.quarantine_dir(day))
    unknown = sorted(set(columns or []) - set(ARROW_SCHEMA.names))
    if unknown:
        raise PipelineError(f"unknown columns: {', '.join(unknown)}")
    parts = [part for day in chosen for part in sorted(home.day_dir(day).glob("*.parquet"))]
    records = ds.dataset(parts, schema=ARROW_SCHEMA, format="parquet").to_table(columns=columns)
    rejected = [
        part for day in chosen for part in sorted(home.quarantine_dir(day).glob("*.parquet"))
    ]
    quarantine = ds.dataset(rejected, schema=QUARANTINE_SCHEMA, format="parquet").to_table()
    quarantine = quarantine.sort_by([("file", "ascending"), ("record_number", "ascending")])
    return Logs(_frame(records), _frame(quarantine))


def _frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=PANDAS_TYPES.get, coerce_temporal_nanoseconds=False)


_WHAT_AND_WHEN = ["rule", "group_by", "group", "start", "end", "peak_count", "event_count"]
INCIDENT_COLUMNS = [*_WHAT_AND_WHEN, "threshold", "window_seconds", "last_breach", "incident_id"]


def detect(records: pd.DataFrame, rules: Iterable[SlidingWindowRule] | None = None) -> pd.DataFrame:
    """The incidents of `rules` (default: the registered ones) in `records`, one row each:
    rule, group_by, group (e.g. the bundle_id; None for an ungrouped rule), start, end and
    last_breach (UTC timestamps), peak_count, event_count, threshold, window_seconds and the
    incident_id the pipeline pages with. `records` needs `date` (UTC datetimes, or epoch
    seconds) and the columns each rule reads; the newest record is taken as the data's edge."""
    from alert_pipeline.registry import RULES

    rules = tuple(RULES if rules is None else rules)
    needed = sorted({c for rule in rules for c in rule.columns} - set(records.columns))
    if needed:
        raise PipelineError(f"detect: the records lack the columns {', '.join(needed)}")
    times = _utc_micros(records["date"])
    table = pa.Table.from_pandas(records[_columns(rules)], preserve_index=False)
    table = table.set_column(table.schema.get_field_index("date"), "date", times)
    edge = pc.max(times.cast(pa.int64())).as_py()  # None without records
    rows = [
        {
            "rule": i.rule,
            "group_by": i.group_by,
            "group": i.group,
            "start": _timestamp(i.start_us),
            "end": _timestamp(i.end_us),
            "peak_count": i.peak_count,
            "event_count": i.event_count,
            "threshold": i.threshold,
            "window_seconds": i.window_us / 1_000_000,
            "last_breach": _timestamp(i.last_breach_us),
            "incident_id": i.incident_id,
        }
        for rule in rules
        for i in rule.detect(rule.events(table.select(rule.columns), edge))
    ]
    return pd.DataFrame(rows, columns=INCIDENT_COLUMNS).astype(
        {"start": _UTC, "end": _UTC, "last_breach": _UTC}
    )


_UTC = pd.DatetimeTZDtype(unit="us", tz="UTC")


def _timestamp(time_us: int) -> pd.Timestamp:
    return pd.Timestamp(time_us, unit="us", tz="UTC")


def _columns(rules: tuple[SlidingWindowRule, ...]) -> list[str]:
    return list(dict.fromkeys(c for rule in rules for c in rule.columns))


def _utc_micros(column: pd.Series) -> pa.Array:
    """`date` as UTC µs timestamps: datetimes (naive ones are taken as UTC) or epoch seconds."""
    if pd.api.types.is_numeric_dtype(column):
        column = pd.to_datetime(column, unit="s", utc=True)
    elif not isinstance(column.dtype, pd.DatetimeTZDtype):
        column = pd.to_datetime(column, utc=True)
    return pa.array(column.dt.tz_convert("UTC").astype(_UTC), pa.timestamp("us", "UTC"))
