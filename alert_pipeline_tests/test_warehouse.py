"""`ingest_pending` and the warehouse reads, on a real home folder in `tmp_path`.

- the ledger: records read = stored + quarantined per file and per day, equal to what the Parquet
  parts hold; the quarantine's columns and record numbers; rows routed by their own `date`;
- re-runs: nothing new → no outcomes and nothing rewritten; touched → `unchanged`; same content
  under another name → `duplicate`; corrected → replaces its previous contribution, days included;
- files rejected whole are moved to quarantine/files with a reason and the others go on;
- Parquet readable with hive partitioning, categoricals dictionary-encoded, no temp files left;
- `read_events`, `fatal_per_minute`, `severity_counts`.
"""

import csv
import datetime as dt
import gzip
import io
import os
import shutil
from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from alert_pipeline import warehouse
from alert_pipeline.batch_typing import TimeRange
from alert_pipeline.home import Home
from alert_pipeline.ingestion import ingest_pending
from alert_pipeline.ledger import day_counts, read_ledger
from alert_pipeline.rules import DEFAULT_SEVERITIES, SlidingWindowRule
from alert_pipeline.schema import ARROW_SCHEMA, BOOLEAN_COLUMNS, CATEGORY_COLUMNS, COLUMNS
from alert_pipeline.warehouse import (
    fatal_per_minute,
    read_events,
    row_groups,
    severity_counts,
    stored_rows,
)
from alert_pipeline_tests import helpers
from alert_pipeline_tests.helpers import csv_text

US = 1_000_000
TR = TimeRange(0, 4102444800 * US)
DAY0 = dt.date(2021, 9, 11)
DAY0_EPOCH = 1631318400  # 2021-09-11T00:00:00Z
QUARANTINE_COLUMNS = ["file", "record_number", "column", "reason", "raw"]


# ---------------------------------------------------------------------------------------------
# Helpers


def day(n: int) -> str:
    return str(DAY0 + dt.timedelta(days=n))


def at(n: int, seconds: float = 0.0) -> str:
    """Epoch seconds text for `seconds` after midnight UTC of DAY0 + n days, 6 decimals."""
    return f"{DAY0_EPOCH + n * 86_400 + seconds:.6f}"


def record(**overrides: str) -> list[str]:
    return helpers.record(**({"date": at(0, 36_000)} | overrides))


def land(home: Home, name: str, records: list[list[str]], header=None) -> Path:
    path = home.incoming / name
    path.parent.mkdir(parents=True, exist_ok=True)
    data = csv_text(records, header).encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def statuses(outcomes) -> dict[str, str]:
    return {o.name: o.status for o in outcomes}


def snapshot(*folders: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under the folders with (inode, mtime, size): a rewrite changes one of them."""
    result = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                stat = path.stat()
                result[str(path)] = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return result


def data_folders(home: Home) -> tuple[Path, Path]:
    return home.validated, home.quarantine


def assert_no_temp_files(home: Home) -> None:
    leftovers = [
        p for p in home.root.rglob("*") if p.name.endswith((".tmp", ".part")) and p.is_file()
    ]
    assert leftovers == []


def rows_of(home: Home, name_day: str) -> pa.Table:
    parts = sorted(home.day_dir(name_day).glob("*.parquet"))
    if not parts:
        return ARROW_SCHEMA.empty_table()
    return pa.concat_tables([pq.read_table(p) for p in parts]).unify_dictionaries()


def quarantine_of(home: Home) -> pa.Table:
    parts = sorted(home.quarantine.glob("*=*/*.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in parts]) if parts else None


def ledger_days(home: Home, name: str) -> dict[str, dict[str, int]]:
    return read_ledger(home)[name]["days"]


def day_folders_with_parts(home: Home) -> set[str]:
    return {
        d.name.split("=", 1)[1]
        for d in home.validated.glob("*=*")
        if d.is_dir() and any(d.glob("*.parquet"))
    }


@pytest.fixture
def home(tmp_path) -> Home:
    return Home(tmp_path / "home").create()


MULTILINE = record(error_message='HTTP/1.1 400 Bad Request\n{"a": "b, c"}\n""done""')


def three_day_file() -> tuple[list[list[str]], dict[str, dict[str, int]]]:
    """A file over three days with multi-line records, two invalid records with a valid date
    and one with 23 fields, and its expected per-day ledger counts."""
    records = [
        record(date=at(0, 100)),  # 1
        MULTILINE,  # 2 (day 0)
        record(date=at(0, 200), severity="FATAL"),  # 3
        record(date=at(1, 5), test_mode="maybe"),  # 4 rejected, day 1
        MULTILINE,  # 5 (day 0)
        record(date=at(1, 10)),  # 6
        record(date=at(2, 86_399.999999)),  # 7: last µs of day 2
        record(date=at(2, 50), error_code="4o4"),  # 8 rejected, day 2
        record(date=at(1, 0)),  # 9: first µs of day 1
        MULTILINE[:23],  # 10: 23 fields, no date of its own
        record(date=at(2, 0.000001)),  # 11
    ]
    expected = {
        day(0): {"stored": 4},
        day(1): {"stored": 2, "quarantined": 1},
        day(2): {"stored": 2, "quarantined": 1},
    }
    return records, expected


# ---------------------------------------------------------------------------------------------
# Counts, routing, quarantine


def test_ledger_counts_match_parquet_and_quarantine(home):
    records, expected = three_day_file()
    land(home, "app/logs.csv", records, list(COLUMNS))

    [outcome] = ingest_pending(home, TR)
    assert (outcome.name, outcome.status) == ("app/logs.csv", "ingested")
    days = ledger_days(home, "app/logs.csv")
    assert set(days) == set(expected)
    for d, counts in days.items():
        assert counts["read"] == counts["stored"] + counts["quarantined"], d
        assert counts["stored"] == expected[d]["stored"], d
        assert counts["stored"] == stored_rows(home, d) == rows_of(home, d).num_rows, d
        assert day_counts(home, d).as_dict() == counts
    assert sum(c["read"] for c in days.values()) == len(records)
    assert sum(c["quarantined"] for c in days.values()) == 3
    assert outcome.read == len(records) and outcome.stored == 8 and outcome.quarantined == 3
    # the two invalid records with a valid date are counted on their own day
    assert days[day(1)]["quarantined"] >= 1 and days[day(2)]["quarantined"] >= 1

    quarantine = quarantine_of(home)
    assert quarantine.column_names == QUARANTINE_COLUMNS
    assert quarantine.schema.field("record_number").type == pa.int64()
    rejected = sorted(
        zip(
            quarantine.column("record_number").to_pylist(),
            quarantine.column("column").to_pylist(),
            strict=True,
        ),
        key=lambda pair: pair[0],
    )
    assert rejected == [(4, "test_mode"), (8, "error_code"), (10, None)]
    assert set(quarantine.column("file").to_pylist()) == {"app/logs.csv"}
    by_number = {row["record_number"]: row for row in quarantine.to_pylist()}
    reasons = {number: row["reason"] for number, row in by_number.items()}
    assert "boolean" in reasons[4] and "maybe" in reasons[4]
    assert "integer" in reasons[8] and "4o4" in reasons[8]
    assert "24" in reasons[10] and "23" in reasons[10]
    assert next(csv.reader(io.StringIO(by_number[4]["raw"]))) == records[3]
    assert_no_temp_files(home)


def test_rows_are_routed_to_the_folder_of_their_own_day(home):
    records, expected = three_day_file()
    land(home, "logs.csv", records)
    ingest_pending(home, TR)
    assert day_folders_with_parts(home) == set(expected)
    for d in expected:
        assert home.day_dir(d).name.endswith(d)
        dates = rows_of(home, d).column("date").to_pylist()
        assert dates and {t.date().isoformat() for t in dates} == {d}
    last = rows_of(home, day(2)).column("date").cast(pa.int64()).to_pylist()
    assert (DAY0_EPOCH + 3 * 86_400) * US - 1 in last
    first = rows_of(home, day(1)).column("date").cast(pa.int64()).to_pylist()
    assert (DAY0_EPOCH + 86_400) * US in first


def test_parquet_is_readable_as_a_hive_partitioned_dataset(home):
    records, expected = three_day_file()
    land(home, "a.csv", records)
    land(home, "b.csv.gz", [record(date=at(0, 1)), record(date=at(3, 1))])
    ingest_pending(home, TR)

    table = pads.dataset(home.validated, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 8 + 2
    for field in ARROW_SCHEMA:
        assert table.schema.field(field.name).type.equals(field.type) or (
            pa.types.is_dictionary(field.type)
        ), field.name
    assert table.schema.field("date").type == pa.timestamp("us", tz="UTC")
    partition_columns = [n for n in table.column_names if n not in COLUMNS]
    assert len(partition_columns) == 1
    key = partition_columns[0]
    for row in table.select(["date", key]).to_pylist():
        assert str(row[key]) == row["date"].date().isoformat()


def test_parquet_types_and_dictionary_encoding(home):
    land(home, "logs.csv", [record(date=at(0, s), test_mode="1", gdpr="true") for s in range(5)])
    ingest_pending(home, TR)
    [part] = home.day_dir(day(0)).glob("*.parquet")
    schema = pq.read_schema(part)
    for name in CATEGORY_COLUMNS:
        assert pa.types.is_dictionary(schema.field(name).type), name
    for name in BOOLEAN_COLUMNS:
        assert schema.field(name).type == pa.bool_()
    assert schema.field("error_code").type == pa.int64()
    assert schema.field("sdk_date").type == pa.string()
    assert schema.field("date").type == pa.timestamp("us", tz="UTC")
    metadata = pq.ParquetFile(part).metadata
    for i, name in enumerate(metadata.schema.names):
        if name in CATEGORY_COLUMNS:
            encodings = metadata.row_group(0).column(i).encodings
            assert any("DICTIONARY" in e for e in encodings), (name, encodings)
    table = pq.read_table(part)
    assert table.column("test_mode").to_pylist() == [True] * 5
    assert table.column("sdk_date").to_pylist() == ["09/12/2021 10:31:17"] * 5


def test_real_samples_land_on_their_days(home, real_samples):
    for name in ("all_logs_no_header.csv", "example_positional_header.csv"):
        shutil.copy(real_samples / name, home.incoming / name)
    outcomes = ingest_pending(home, TR)
    assert statuses(outcomes) == {
        "all_logs_no_header.csv": "ingested",
        "example_positional_header.csv": "ingested",
    }
    assert {
        d: day_counts(home, d).as_dict() for d in ("2021-09-11", "2021-09-12", "2021-09-14")
    } == {
        "2021-09-11": {"read": 85, "stored": 85, "quarantined": 0},
        "2021-09-12": {"read": 4, "stored": 4, "quarantined": 0},
        "2021-09-14": {"read": 279, "stored": 279, "quarantined": 0},
    }
    assert day_folders_with_parts(home) == {"2021-09-11", "2021-09-12", "2021-09-14"}
    first = rows_of(home, "2021-09-12").column("date")[0].as_py()
    assert first == dt.datetime(2021, 9, 12, 10, 31, 19, 384516, tzinfo=dt.UTC)
    assert_no_temp_files(home)


def test_time_range_rejections_are_counted(home):
    start, end = (DAY0_EPOCH + 86_400) * US, (DAY0_EPOCH + 2 * 86_400) * US
    land(home, "r.csv", [record(date=at(0, 5)), record(date=at(1, 5)), record(date=at(2, 0))])
    [outcome] = ingest_pending(home, TimeRange(start, end))
    assert (outcome.read, outcome.stored, outcome.quarantined) == (3, 1, 2)
    assert stored_rows(home, day(1)) == 1
    quarantine = quarantine_of(home)
    assert sorted(quarantine.column("record_number").to_pylist()) == [1, 3]
    assert set(quarantine.column("column").to_pylist()) == {"date"}
    assert all("range" in r for r in quarantine.column("reason").to_pylist())
    days = ledger_days(home, "r.csv")
    assert sum(c["read"] for c in days.values()) == 3
    assert day_folders_with_parts(home) == {day(1)}


# ---------------------------------------------------------------------------------------------
# Re-runs, unchanged, duplicates, corrections


def test_second_run_with_nothing_new_does_nothing(home):
    records, _ = three_day_file()
    land(home, "logs.csv", records)
    assert statuses(ingest_pending(home, TR)) == {"logs.csv": "ingested"}
    before = snapshot(*data_folders(home), home.ledger)
    assert ingest_pending(home, TR) == []
    assert ingest_pending(home, TR) == []
    assert snapshot(*data_folders(home), home.ledger) == before


def test_touched_file_is_unchanged_and_nothing_is_rewritten(home):
    records, _ = three_day_file()
    path = land(home, "logs.csv", records)
    ingest_pending(home, TR)
    days_before = ledger_days(home, "logs.csv")
    before = snapshot(*data_folders(home))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))

    outcomes = ingest_pending(home, TR)
    assert [(o.name, o.status, o.read) for o in outcomes] == [("logs.csv", "unchanged", 0)]
    assert snapshot(*data_folders(home)) == before
    assert ledger_days(home, "logs.csv") == days_before
    assert ingest_pending(home, TR) == []


@pytest.mark.parametrize("claims", ["kept", "absent"])  # absent: a ledger from before claims
def test_same_content_under_another_name_is_a_duplicate(home, claims):
    records, expected = three_day_file()
    land(home, "first.csv", records)
    ingest_pending(home, TR)
    if claims == "absent":
        shutil.rmtree(home.ledger / "content")
    before = snapshot(*data_folders(home))
    land(home, "sub/second copy.csv", records)

    [outcome] = ingest_pending(home, TR)
    assert (outcome.name, outcome.status) == ("sub/second copy.csv", "duplicate")
    assert "first.csv" in outcome.reason
    assert outcome.read == outcome.stored == 0
    assert snapshot(*data_folders(home)) == before
    for d, counts in expected.items():
        assert stored_rows(home, d) == counts["stored"] == day_counts(home, d).stored
    assert ledger_days(home, "sub/second copy.csv") == {}
    assert ingest_pending(home, TR) == []


def test_content_whose_original_changed_since_is_new_again(home):
    records, _ = three_day_file()
    path = land(home, "first.csv", records)
    ingest_pending(home, TR)
    land(home, "first.csv.part", records[:2]).replace(path)  # corrected: other content
    assert statuses(ingest_pending(home, TR)) == {"first.csv": "ingested"}
    land(home, "second.csv", records)  # the first version's content: no longer stored
    assert statuses(ingest_pending(home, TR)) == {"second.csv": "ingested"}
    assert sum(stored_rows(home, day(n)) for n in range(3)) == 2 + 8


def test_same_content_twice_in_one_run_is_ingested_once(home):
    records, _ = three_day_file()
    land(home, "a.csv", records)
    land(home, "b.csv", records)
    assert sorted(statuses(ingest_pending(home, TR)).values()) == ["duplicate", "ingested"]
    assert sum(stored_rows(home, day(n)) for n in range(3)) == 8


def test_corrected_file_replaces_its_previous_contribution(home):
    v1 = [
        record(date=at(0, 1)),
        record(date=at(0, 2), gdpr="perhaps"),  # quarantined on day 0
        record(date=at(1, 1)),
        record(date=at(1, 2)),
    ]
    v2 = [
        record(date=at(1, 3), severity="FATAL"),
        record(date=at(2, 1)),
        record(date=at(2, 2)),
        record(date=at(2, 3)),
    ]
    path = land(home, "logs.csv", v1)
    land(home, "other.csv", [record(date=at(0, 9)), record(date=at(1, 9))])
    ingest_pending(home, TR)
    assert (stored_rows(home, day(0)), stored_rows(home, day(1))) == (2, 3)

    path.write_text(csv_text(v2))
    [outcome] = ingest_pending(home, TR)
    assert (outcome.name, outcome.status) == ("logs.csv", "ingested")
    assert day(0) in outcome.changed_days
    assert ledger_days(home, "logs.csv") == {
        day(1): {"read": 1, "stored": 1, "quarantined": 0},
        day(2): {"read": 3, "stored": 3, "quarantined": 0},
    }
    # day 0 keeps only the other file's row; the old version's quarantined record is gone too
    assert stored_rows(home, day(0)) == 1 == day_counts(home, day(0)).stored
    assert rows_of(home, day(0)).column("date").cast(pa.int64()).to_pylist() == [
        int(Decimal(at(0, 9)) * US)
    ]
    assert quarantine_of(home) is None
    assert stored_rows(home, day(1)) == 2 == day_counts(home, day(1)).stored
    assert sorted(rows_of(home, day(1)).column("severity").to_pylist()) == ["Error", "FATAL"]
    assert stored_rows(home, day(2)) == 3
    assert_no_temp_files(home)


def test_corrected_file_with_same_size_and_preserved_mtime_is_reingested(home):
    """`cp -p`, `rsync -t`, `tar x` and unzip keep the mtime; a fix of one digit keeps the size."""
    path = land(home, "logs.csv", [record(date=at(0, 1)), record(date=at(1, 1))])
    ingest_pending(home, TR)
    stat = path.stat()
    path.write_text(csv_text([record(date=at(0, 1)), record(date=at(2, 1))]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size

    assert statuses(ingest_pending(home, TR)) == {"logs.csv": "ingested"}
    assert set(ledger_days(home, "logs.csv")) == {day(0), day(2)}
    assert (stored_rows(home, day(1)), stored_rows(home, day(2))) == (0, 1)


def test_corrected_file_whose_new_content_equals_another_file_drops_its_old_rows(home):
    a = land(home, "a.csv", [record(date=at(0, s)) for s in (1, 2, 3)])
    b = land(home, "b.csv", [record(date=at(1, s)) for s in (1, 2)])
    ingest_pending(home, TR)
    a.write_bytes(b.read_bytes())  # a.csv corrected: it now holds exactly b.csv's records

    outcomes = ingest_pending(home, TR)
    assert set(statuses(outcomes)) == {"a.csv"}
    # whatever a.csv's status, its previous version's rows must not stay behind unaccounted
    for d in (day(0), day(1)):
        assert stored_rows(home, d) == day_counts(home, d).stored, d
    assert stored_rows(home, day(0)) == 0


def test_rejected_file_is_moved_with_its_reason_and_others_are_ingested(home):
    good = land(home, "good.csv", [record()])
    header = [n for n in COLUMNS if n != "bundle_id"] + ["bundle"]
    land(home, "bad/header.csv", [record()], header)
    broken = home.incoming / "broken.csv.gz"
    broken.write_bytes(b"this is not gzip")
    later = land(home, "zz.csv", [record(date=at(1, 1))])

    outcomes = ingest_pending(home, TR)
    assert statuses(outcomes) == {
        "bad/header.csv": "rejected",
        "broken.csv.gz": "rejected",
        "good.csv": "ingested",
        "zz.csv": "ingested",
    }
    moved = home.rejected_files / "bad" / "header.csv"
    assert moved.is_file() and not (home.incoming / "bad" / "header.csv").exists()
    reason = (home.rejected_files / "bad" / "header.csv.reason.txt").read_text()
    assert "bundle_id" in reason and "bundle" in reason.replace("bundle_id", "")
    assert "missing" in reason and "unexpected" in reason
    assert (home.rejected_files / "broken.csv.gz").is_file()
    assert (home.rejected_files / "broken.csv.gz.reason.txt").read_text().strip()
    ledger = read_ledger(home)
    assert {n for n, e in ledger.items() if not e.get("rejected")} == {"good.csv", "zz.csv"}
    assert "unexpected" in ledger["bad/header.csv"]["rejected"]  # remembered: not retried
    assert ledger["broken.csv.gz"]["days"] == {}
    assert good.exists() and later.exists()
    assert stored_rows(home, day(0)) == 1 and stored_rows(home, day(1)) == 1
    assert ingest_pending(home, TR) == []
    assert_no_temp_files(home)


def test_a_huge_field_does_not_stop_the_other_files_or_leave_temp_files(home):
    huge = "z" * 200_000
    land(home, "a_huge.csv", [record(), record(error_message=huge), record()[:23]])
    land(home, "b_fine.csv", [record(date=at(1, 1))])
    outcomes = ingest_pending(home, TR)  # must not raise
    assert statuses(outcomes)["b_fine.csv"] == "ingested"
    assert statuses(outcomes)["a_huge.csv"] in {"ingested", "rejected"}
    assert_no_temp_files(home)


def test_files_in_progress_and_other_names_are_ignored(home):
    land(home, "ready.csv", [record()])
    for name in ("writing.csv.tmp", "writing.csv.part", ".hidden.csv", "notes.txt", "x.csv.zip"):
        (home.incoming / name).write_text(csv_text([record()]))
    assert statuses(ingest_pending(home, TR)) == {"ready.csv": "ingested"}


# ---------------------------------------------------------------------------------------------
# Reads for the rules and the report


def severity_file() -> list[list[str]]:
    cat = "com.mytalkingcatemma.ballerinagames"
    pet = "com.pregnantcatemma.virtualpet"
    return [
        record(date=at(0, 60.5), severity="Error", bundle_id=cat),
        record(date=at(0, 61), severity="FATAL", bundle_id=pet),
        record(date=at(0, 119.999999), severity=" fatal ", bundle_id=cat),
        record(date=at(0, 120), severity="error", bundle_id=pet),
        record(date=at(0, 130), severity="Warning", bundle_id=cat),
        record(date=at(0, 140), severity="Info", bundle_id=pet),
        record(date=at(0, 150), severity="fatal error", bundle_id=cat),
        record(date=at(0, 86_399.5), severity="ERROR", bundle_id=pet),
        record(date=at(1, 30), severity="Fatal", bundle_id=cat),
        record(date=at(1, 31), severity="Debug", bundle_id=cat),
    ]


def test_read_events_returns_only_fatal_events_with_group_labels(home):
    records = severity_file()
    land(home, "one.csv", records[:5])
    land(home, "two.csv.gz", records[5:])
    ingest_pending(home, TR)
    fatal = [
        (int(Decimal(r[COLUMNS.index("date")]) * US), r[COLUMNS.index("bundle_id")])
        for r in records
        if r[COLUMNS.index("severity")].strip().lower() in {"error", "fatal"}
    ]
    assert len(fatal) == 6

    grouped = SlidingWindowRule("g", threshold=10, window_seconds=3600, group_by="bundle_id")
    events = read_events(home, grouped, [day(0), day(1)])
    labels = [events.labels[code] for code in events.groups.tolist()]  # dictionary codes
    assert sorted(zip(events.times_us.tolist(), labels, strict=True)) == sorted(fatal)

    plain = SlidingWindowRule("p", threshold=10, window_seconds=60)
    events = read_events(home, plain, [day(0)])
    assert events.groups is None
    assert sorted(events.times_us.tolist()) == sorted(t for t, _ in fatal[:5])

    assert len(read_events(home, plain, [day(5)]).times_us) == 0

    # A new version of a file: the days are read again, not taken from what was kept.
    land(home, "one.csv", [record(date=at(0, 7), severity="Fatal", bundle_id="com.new")])
    ingest_pending(home, TR)
    events = read_events(home, grouped, [day(0)])
    labels = [events.labels[code] for code in events.groups.tolist()]
    two_on_day0 = [
        (int(Decimal(r[COLUMNS.index("date")]) * US), r[COLUMNS.index("bundle_id")])
        for r in records[5:]
        if r[COLUMNS.index("severity")].strip().lower() in {"error", "fatal"}
        and Decimal(r[COLUMNS.index("date")]) < DAY0_EPOCH + 86_400
    ]
    assert sorted(zip(events.times_us.tolist(), labels, strict=True)) == sorted(
        [((DAY0_EPOCH + 7) * US, "com.new"), *two_on_day0]
    )


def test_a_day_read_beside_an_ingestion_reads_the_parts_it_listed_and_keeps_only_those(
    home, monkeypatch
):
    """Rules and reports read a day outside its lock, so an ingestion may add or drop a part
    between the listing and the read: a read takes the listed parts that are still there (no
    error), and the events kept for the next reads are exactly those of the listed parts, so a
    later read of the same parts never returns the events of a part that has gone since."""
    rule = SlidingWindowRule("g", threshold=10, window_seconds=3600, group_by="bundle_id")

    def land_on(name: str, n: int) -> None:
        land(home, name, [record(date=at(n, 60), severity="Fatal", bundle_id=name)])
        ingest_pending(home, TR)

    def bundles() -> set[str]:
        events = read_events(home, rule, [day(0)])
        return {events.labels[code] for code in events.groups.tolist()}

    land_on("a.csv", 0)
    land_on("b.csv", 0)
    real_parts, during_read = warehouse._parts, []

    def listed_then_changed(folder):
        listed = real_parts(folder)
        if during_read:
            during_read.pop()()
        return listed

    monkeypatch.setattr(warehouse, "_parts", listed_then_changed)
    during_read.append(lambda: land_on("c.csv", 0))  # a part added after the listing
    assert bundles() == {"a.csv", "b.csv"}
    assert bundles() == {"a.csv", "b.csv", "c.csv"}
    land_on("c.csv", 1)  # its part of day 0 is dropped: the day has its first parts again
    assert bundles() == {"a.csv", "b.csv"}
    during_read.append(lambda: land_on("b.csv", 1))  # a listed part dropped before it is read
    assert severity_counts(home, day(0)) == {"Fatal": 1}  # a.csv's record, and no error
    assert during_read == []


def test_fatal_per_minute_counts(home):
    records = severity_file()
    land(home, "one.csv", records[:4])
    land(home, "two.csv", records[4:])
    ingest_pending(home, TR)
    counts = fatal_per_minute(home, day(0), DEFAULT_SEVERITIES)
    assert len(counts) == 1440
    expected = np.zeros(1440, dtype=np.int64)
    expected[1] = 3  # 00:01:00.5, 00:01:01, 00:01:59.999999
    expected[2] = 1  # 00:02:00 (exactly on the minute)
    expected[1439] = 1  # 23:59:59.5
    assert counts.tolist() == expected.tolist()
    assert fatal_per_minute(home, day(1), {"fatal"}).tolist() == [
        1 if m == 0 else 0 for m in range(1440)
    ]
    assert fatal_per_minute(home, day(7), DEFAULT_SEVERITIES).tolist() == [0] * 1440


def test_severity_counts(home):
    records = severity_file()
    land(home, "one.csv", records[:4])
    land(home, "two.csv", records[4:])
    ingest_pending(home, TR)
    assert severity_counts(home, day(0)) == dict(
        Counter(r[COLUMNS.index("severity")] for r in records[:8])
    )
    assert severity_counts(home, day(1)) == {"Debug": 1, "Fatal": 1}
    assert severity_counts(home, day(9)) == {}


def test_a_day_is_read_holding_one_row_group_at_a_time(tmp_path):
    """The rules and the report read a day a row group at a time; the reader must not keep the
    row groups it has passed (it did: 0.4 GB for one column of a 100 M-record day)."""
    path = tmp_path / "groups.parquet"
    values = np.random.default_rng(5).integers(0, 2**62, 200 * 10_000)  # incompressible
    pq.write_table(pa.table({"date": values}), path, row_group_size=10_000, compression="zstd")
    group_bytes = 10_000 * 8
    rows, peak, base = 0, 0, pa.total_allocated_bytes()
    for batch in row_groups(path, ["date"]):
        rows += batch.num_rows
        peak = max(peak, pa.total_allocated_bytes() - base)
    assert rows == len(values)
    assert peak < 10 * group_bytes, f"{peak} bytes held: more than a few row groups"
