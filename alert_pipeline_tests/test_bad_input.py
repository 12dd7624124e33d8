"""Bad input, crashes and hostile log content: nothing lost, nothing half-written, every error
explained. Real files in `tmp_path`, ingested by `ingest_pending` (or materialized by Dagster).

- one test per case of the input contract's bad inputs: the outcome (file rejected with its reason
  in quarantine/files, or records quarantined with file, record number, column, reason and raw),
  a good file beside each bad one that is still ingested, and the reconciliation of every file
  and day (ledger read = stored + quarantined = the rows the Parquet parts hold);
- a Hypothesis fuzz test: random bytes and mutated valid CSV never make `ingest_pending` raise,
  and every file ends rejected with a reason or ingested and reconciled, its records all counted;
- crash tests: an ingestion in a subprocess SIGKILLed at random times, and before each of its
  renames, then run again, ends with exactly the contents of a clean run; two at once, too;
- injection: a burst whose `bundle_id` is HTML and a Markdown table breaker is reported with every
  markup output escaped and the JSON faithful; hostile file names stay inside the home folder.
"""

import builtins
import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance, materialize
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from alert_pipeline import loader, staging
from alert_pipeline.assets import alert_report, rule_assets, validated_logs
from alert_pipeline.batch_typing import TimeRange
from alert_pipeline.generate import generate_logs
from alert_pipeline.home import UNDATED, Home, source_id
from alert_pipeline.ingestion import ingest_pending
from alert_pipeline.ledger import day_counts, read_ledger
from alert_pipeline.resources import AlertHome
from alert_pipeline.rules import DEFAULT_SEVERITIES, day_start_us
from alert_pipeline.schema import COLUMNS
from alert_pipeline.warehouse import (
    fatal_per_minute,
    quarantined_rows,
    severity_counts,
    stored_rows,
)
from alert_pipeline_tests.helpers import csv_text, epoch, record, run_ingest_job

REPO = Path(__file__).resolve().parents[1]
DAY = "2021-09-12"  # the day of helpers.record()'s date, 1631442679.384516
TOMORROW = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
TR = TimeRange(day_start_us(dt.date(2021, 1, 1)), day_start_us(TOMORROW))  # as AlertHome does
HEADER = list(COLUMNS)
QUARANTINE_FIELDS = ["file", "record_number", "column", "reason", "raw"]


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def home(tmp_path) -> Home:
    return Home(tmp_path / "home").create()


def land(home: Home, name: str, data: bytes | str) -> Path:
    path = home.incoming / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def land_good(home: Home, name: str = "good.csv") -> Path:
    """The good file beside every bad one: two records of DAY."""
    records = [record(), record(date=epoch(DAY, 3600), severity="Fatal")]
    return land(home, name, csv_text(records, HEADER))


def ingest(home: Home) -> dict:
    """One ingestion pass, by name; the good file must always come through whole."""
    outcomes = {o.name: o for o in ingest_pending(home, TR)}
    if "good.csv" in outcomes:
        good = outcomes["good.csv"]
        assert (good.status, good.read, good.stored) == ("ingested", 2, 2), good
    reconcile(home)
    assert_no_temp_files(home)
    return outcomes


def part_rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows if path.exists() else 0


def reconcile(home: Home) -> dict[str, dict]:
    """For every file and day: ledger read = stored + quarantined, and the Parquet parts hold
    exactly those rows, no more (no part the ledger does not account for); quarantine rows
    carry file, record number, column, reason and raw. Returns the ledger."""
    ledger = read_ledger(home)
    expected_parts = {}
    days = set()
    for name, entry in ledger.items():
        source = entry["source"]
        assert source == source_id(name)
        for day, counts in entry["days"].items():
            days.add(day)
            assert counts["read"] == counts["stored"] + counts["quarantined"], (name, day)
            stored = home.day_dir(day) / f"{source}.parquet"
            quarantined = home.quarantine_dir(day) / f"{source}.parquet"
            assert part_rows(stored) == counts["stored"], (name, day)
            assert part_rows(quarantined) == counts["quarantined"], (name, day)
            expected_parts[stored] = counts["stored"]
            expected_parts[quarantined] = counts["quarantined"]
            if counts["quarantined"]:
                rows = pq.read_table(quarantined).to_pylist()
                assert list(rows[0]) == QUARANTINE_FIELDS
                for row in rows:
                    assert row["file"] == name
                    assert row["record_number"] is not None and row["record_number"] >= 1, row
                    assert row["reason"] and row["raw"] is not None, row
                    if row["column"] is not None:
                        assert row["reason"].startswith(f"{row['column']}: "), row
                    else:
                        assert row["reason"].startswith("expected 24 fields, found "), row
    for day in days:
        counts = day_counts(home, day)
        assert counts.read == counts.stored + counts.quarantined
        assert (stored_rows(home, day), quarantined_rows(home, day)) == (
            counts.stored,
            counts.quarantined,
        ), day
    parts = set(home.validated.glob("day=*/*.parquet")) | set(
        home.quarantine.glob("day=*/*.parquet")
    )
    orphans = {p for p in parts if expected_parts.get(p, 0) == 0}
    assert not orphans, f"parts the ledger does not account for: {orphans}"
    return ledger


def assert_no_temp_files(home: Home) -> None:
    leftovers = [
        p
        for p in home.root.rglob("*")
        if p.name.endswith((".tmp", ".part")) or "spool" in p.name
        if p.is_file() and not p.is_relative_to(home.incoming)
    ]
    assert leftovers == []


def assert_rejected(home: Home, outcomes: dict, name: str, *words: str) -> str:
    """The file was rejected whole: moved (not copied) to quarantine/files with a reason naming
    the problem, remembered in the ledger so that it is not retried."""
    outcome = outcomes[name]
    assert outcome.status == "rejected", outcome
    assert (outcome.read, outcome.stored, outcome.quarantined) == (0, 0, 0)
    moved = home.rejected_files / name
    assert (moved.is_file() or moved.is_symlink()) and not (home.incoming / name).exists()
    reason = (home.rejected_files / f"{name}.reason.txt").read_text()
    for word in words:
        assert word in reason, (word, reason)
    assert Path(name).name not in reason, "the reason repeats the file name"
    entry = read_ledger(home)[name]
    assert entry["rejected"] == reason.strip() == outcome.reason
    assert entry["days"] == {}
    assert name not in ingest(home)  # not retried until it changes
    return reason


def assert_ingested(outcomes: dict, name: str, stored: int, quarantined: int):
    outcome = outcomes[name]
    assert outcome.status == "ingested", outcome
    assert (outcome.read, outcome.stored, outcome.quarantined) == (
        stored + quarantined,
        stored,
        quarantined,
    )
    return outcome


def quarantine_of(home: Home, name: str) -> list[dict]:
    rows = [
        row
        for part in sorted(home.quarantine.glob(f"day=*/{source_id(name)}.parquet"))
        for row in pq.read_table(part).to_pylist()
    ]
    return sorted(rows, key=lambda r: r["record_number"])


def stored_of(home: Home, name: str) -> pa.Table:
    parts = sorted(home.validated.glob(f"day=*/{source_id(name)}.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in parts]) if parts else None


def line(fields: list[str]) -> str:
    return csv_text([fields]).rstrip("\n")


# ---------------------------------------------------------------------------------------------
# Files rejected whole


def test_empty_file_is_rejected_whole(home):
    land(home, "empty.csv", b"")
    land_good(home)
    outcomes = ingest(home)
    assert_rejected(home, outcomes, "empty.csv", "empty")


@pytest.mark.parametrize("final_newline", [True, False], ids=["newline", "no-newline"])
@pytest.mark.parametrize("header", [HEADER, [str(i) for i in range(24)]], ids=["names", "0-23"])
def test_header_only_file_is_accepted_with_no_records(home, header, final_newline):
    text = csv_text([], header)
    land(home, "header.csv", text if final_newline else text.rstrip("\n"))
    land_good(home)
    outcomes = ingest(home)
    assert_ingested(outcomes, "header.csv", 0, 0)
    entry = read_ledger(home)["header.csv"]
    assert entry["days"] == {} and entry["header"] in ("names", "positional")
    assert not (home.rejected_files / "header.csv").exists()


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ([c for c in COLUMNS if c != "bundle_id"], ["missing: bundle_id"]),
        ([*COLUMNS, "user_agent"], ["unexpected: user_agent"]),
        ([*COLUMNS[:-1], "severity"], ["duplicated: severity", "missing: date"]),
        (["Severity" if c == "date" else c for c in COLUMNS], ["duplicated: severity"]),
        # Arrow skips a header by lines: a quoted line break in it would shift every record.
        (["\r\nerror_code", *COLUMNS[1:]], ["the header spans several lines"]),
        ([str(i) + "\n" * (i == 5) for i in range(24)], ["the header spans several lines"]),
    ],
    ids=["missing", "extra", "duplicated", "duplicated-other-case", "newline", "cr-positional"],
)
def test_header_with_missing_extra_or_duplicated_columns_is_rejected_naming_them(
    home, header, words
):
    land(home, "columns.csv", csv_text([record()[: len(header)]], header))
    land_good(home)
    outcomes = ingest(home)
    assert_rejected(home, outcomes, "columns.csv", "header", *words)


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("utf16.csv", csv_text([record()], HEADER).encode("utf-16"), ["UTF-16", "UTF-8"]),
        ("utf16be.csv", b"\xfe\xff" + csv_text([record()], HEADER).encode("utf-16-be"), ["UTF-16"]),
        ("utf16le.csv", b"\xff\xfe" + csv_text([record()], HEADER).encode("utf-16-le"), ["UTF-16"]),
    ],
)
def test_utf16_file_is_rejected(home, name, data, words):
    land(home, name, data)
    land_good(home)
    outcomes = ingest(home)
    assert_rejected(home, outcomes, name, *words)


def test_truncated_gzip_and_not_gzip_are_rejected(home):
    full = gzip.compress(csv_text([record()] * 200, HEADER).encode())
    land(home, "truncated.csv.gz", full[: len(full) // 2])
    land(home, "plain.csv.gz", csv_text([record()], HEADER))
    land(home, "random.csv.gz", random.Random(1).randbytes(5000))
    land_good(home)
    outcomes = ingest(home)
    assert_rejected(home, outcomes, "truncated.csv.gz", "Compressed file ended")
    assert_rejected(home, outcomes, "plain.csv.gz", "gzip")
    assert_rejected(home, outcomes, "random.csv.gz", "Not a gzipped file")


def test_unreadable_file_is_rejected(home, monkeypatch):
    """We run as root, so permissions cannot make a file unreadable: every Python-level open of
    it fails as it would (Arrow never gets there: the header is read first)."""
    land(home, "secret.csv", csv_text([record()], HEADER))
    land_good(home)
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, str | os.PathLike) and Path(file).name == "secret.csv":
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    outcomes = ingest(home)
    monkeypatch.undo()
    assert_rejected(home, outcomes, "secret.csv", "cannot read", "Permission denied")


def test_a_directory_named_like_a_log_file_is_a_folder_not_a_file(home):
    folder = home.incoming / "x.csv"
    folder.mkdir()
    land(home, "x.csv/inner.csv", csv_text([record(), record()], HEADER))
    land(home, "x.csv/deeper/more.csv.gz", gzip.compress(csv_text([record()], HEADER).encode()))
    land_good(home)
    outcomes = ingest(home)
    assert set(outcomes) == {"good.csv", "x.csv/inner.csv", "x.csv/deeper/more.csv.gz"}
    assert_ingested(outcomes, "x.csv/inner.csv", 2, 0)
    assert_ingested(outcomes, "x.csv/deeper/more.csv.gz", 1, 0)
    assert folder.is_dir() and not (home.rejected_files / "x.csv").exists()
    assert "x.csv" not in read_ledger(home)


def test_a_link_outside_the_landing_folder_is_rejected_and_its_target_untouched(home, tmp_path):
    target = tmp_path / "outside" / "secret.csv"
    target.parent.mkdir()
    target.write_text(csv_text([record()], HEADER))
    before = target.read_bytes()
    (home.incoming / "link.csv").symlink_to(target)
    (home.incoming / "dirlink.csv").symlink_to(target.parent)
    (home.incoming / "loop.csv").symlink_to("loop.csv")  # a loop of links: resolve() raises
    inside = land(home, "real.csv", csv_text([record(), record()], HEADER))
    (home.incoming / "alias.csv").symlink_to(inside)  # inside the landing folder: fine
    land_good(home)
    outcomes = ingest(home)

    assert_rejected(home, outcomes, "link.csv", "link", "outside the landing folder")
    assert_rejected(home, outcomes, "dirlink.csv", "outside the landing folder")
    assert_rejected(home, outcomes, "loop.csv", "cannot read")
    moved = home.rejected_files / "link.csv"
    assert moved.is_symlink() and moved.readlink() == target  # the link itself was moved
    assert target.read_bytes() == before and list(target.parent.iterdir()) == [target]
    assert_ingested(outcomes, "alias.csv", 2, 0)  # a link inside the landing folder is read
    assert outcomes["real.csv"].status == "duplicate"
    assert stored_rows(home, DAY) == 4


# ---------------------------------------------------------------------------------------------
# Records quarantined, the others stored


def test_records_with_23_or_25_fields_are_quarantined_with_their_numbers(home):
    multiline = record(error_message='HTTP/1.1 400 Bad Request\n{"a": "b, c"}\n""x""')
    records = [
        multiline,  # 1
        record()[:23],  # 2
        record(),  # 3
        [*record(), "extra"],  # 4
        multiline,  # 5
        record()[:23],  # 6
        record(),  # 7
    ]
    land(home, "fields.csv", csv_text(records, HEADER))
    land(home, "fields-none.csv.gz", gzip.compress(csv_text(records).encode()))  # no header
    land_good(home)
    outcomes = ingest(home)
    for name in ("fields.csv", "fields-none.csv.gz"):
        assert_ingested(outcomes, name, 4, 3)
        rows = quarantine_of(home, name)
        assert [(r["record_number"], r["column"], r["reason"]) for r in rows] == [
            (2, None, "expected 24 fields, found 23"),
            (4, None, "expected 24 fields, found 25"),
            (6, None, "expected 24 fields, found 23"),
        ]
        assert rows[1]["raw"].endswith(",extra")
        assert read_ledger(home)[name]["days"] == {DAY: {"read": 7, "stored": 4, "quarantined": 3}}


def test_a_file_of_records_with_no_valid_date_counts_them_undated(home):
    land(home, "undated.csv", csv_text([record()[:23], record()[:5]], HEADER))
    land_good(home)
    outcomes = ingest(home)
    assert_ingested(outcomes, "undated.csv", 0, 2)
    assert read_ledger(home)["undated.csv"]["days"] == {
        UNDATED: {"read": 2, "stored": 0, "quarantined": 2}
    }


def test_unterminated_quote_in_the_last_record_quarantines_it(home):
    before = csv_text([record(), record(severity="Fatal")], HEADER)
    # The quote opens in error_message: the rest of the file is one field.
    middle = line(record()).replace("could not receive", '"could not receive', 1)
    land(home, "middle.csv", before + middle + "\n")
    land(home, "middle.csv.gz", gzip.compress((before + middle).encode()))
    # The quote opens in the last field: the record has 24 fields, Arrow takes it as complete.
    cut_date = line(record()[:-1]) + ',"1631442679.38'
    land(home, "last.csv", before + cut_date)
    land(home, "last-newline.csv", before + cut_date + "\n")
    reordered = [c for c in COLUMNS if c != "error_message"] + ["error_message"]
    fields = dict(zip(COLUMNS, record(error_message="HTTP/1.1 400 Bad Request"), strict=True))
    cut_message = line([fields[c] for c in reordered]).replace("HTTP", '"HTTP')
    cut_message = cut_message[: -len(" Request")]
    rows = [[dict(zip(COLUMNS, r, strict=True))[c] for c in reordered] for r in [record()] * 2]
    land(home, "message-last.csv", csv_text(rows, reordered) + cut_message)
    # Closed quotes at the very end are fine, whatever the last value holds.
    closed = before + line(record()[:-1]) + ',"1631442679.25"'
    land(home, "closed.csv", closed)
    land(home, "closed-crlf.csv", closed + "\r\n")
    # `"1631442679.5"""`: closed, its value ends with a quote: not a number, rejected by value.
    land(home, "quotes.csv", csv_text([record(), record(date='1631442679.5"')], HEADER)[:-1])
    land_good(home)
    outcomes = ingest(home)

    for name in ("middle.csv", "middle.csv.gz"):
        assert_ingested(outcomes, name, 2, 1)
        [row] = quarantine_of(home, name)
        assert (row["record_number"], row["column"]) == (3, None)
        assert row["reason"] == "expected 24 fields, found 2"
    for name, column in [
        ("last.csv", "date"),
        ("last-newline.csv", "date"),
        ("message-last.csv", "error_message"),
    ]:
        assert_ingested(outcomes, name, 2, 1)
        [row] = quarantine_of(home, name)
        assert (row["record_number"], row["column"]) == (3, column), row
        assert "quoted value not closed at the end of the file" in row["reason"]
        assert read_ledger(home)[name]["days"][DAY]["quarantined"] == 1  # on its own day
    assert_ingested(outcomes, "closed.csv", 3, 0)
    assert_ingested(outcomes, "closed-crlf.csv", 3, 0)
    assert_ingested(outcomes, "quotes.csv", 1, 1)
    [row] = quarantine_of(home, "quotes.csv")
    assert row["reason"].startswith("date: not a number"), row


def test_quoted_field_of_10_mb_is_stored(home):
    message = ('line, with "quotes"\n' * (10 * 2**20 // 20))[: 10 * 2**20]
    records = [record(), record(error_message=message), record()[:23], record()]
    land(home, "big.csv", csv_text(records, HEADER))
    land_good(home)
    outcomes = ingest(home)
    assert_ingested(outcomes, "big.csv", 3, 1)
    assert stored_of(home, "big.csv").column("error_message")[1].as_py() == message
    assert quarantine_of(home, "big.csv")[0]["record_number"] == 3


def test_record_larger_than_the_large_parse_block_rejects_the_file(home, monkeypatch):
    """The parse blocks scaled down 1024×: 1 KiB, then the retry with 64 KiB. A record of 20 KiB
    needs the retry and is stored; one of 200 KiB spans three large blocks: the file is
    rejected with a reason (at full scale, a record of over 128 MB always is; one between 64
    and 128 MB is read or not depending on where it starts)."""
    monkeypatch.setattr(loader, "BLOCK_SIZE", 1024)
    monkeypatch.setattr(staging, "LARGE_BLOCK_SIZE", 64 * 1024)
    land(home, "medium.csv", csv_text([record(), record(error_message="m" * 20_000)], HEADER))
    land(home, "huge.csv", csv_text([record(), record(error_message="h" * 200_000)], HEADER))
    land_good(home)
    outcomes = ingest(home)
    assert_ingested(outcomes, "medium.csv", 2, 0)
    assert_rejected(home, outcomes, "huge.csv", "record is larger than")


def test_nul_bytes_inside_a_field_are_stored_as_text(home):
    records = [record(error_message="before\x00after", model="\x00"), record()]
    land(home, "nul.csv", csv_text(records, HEADER))
    land_good(home)
    outcomes = ingest(home)
    assert_ingested(outcomes, "nul.csv", 2, 0)
    table = stored_of(home, "nul.csv")
    assert table.column("error_message")[0].as_py() == "before\x00after"
    assert table.column("model").cast(pa.string())[0].as_py() == "\x00"


def test_invalid_utf8_quarantines_only_its_record(home):
    text = csv_text([record(), record(), record()[:23], record()], HEADER).encode()
    lines = text.split(b"\n")
    lines[2] = lines[2].replace(b"ipfy", b"ip\xff\xfey")  # record 2, error_message
    lines[3] = lines[3].replace(b"realme", b"real\xc3")  # record 3: 23 fields and not UTF-8
    land(home, "latin.csv", b"\n".join(lines))
    land(home, "latin.csv.gz", gzip.compress(b"\n".join(lines)))
    land(
        home,
        "category.csv",
        csv_text([record(), record(os="Andr\udcffoid")], HEADER).encode("utf-8", "surrogateescape"),
    )  # in a dictionary-encoded column
    land_good(home)
    outcomes = ingest(home)
    for name in ("latin.csv", "latin.csv.gz"):
        assert_ingested(outcomes, name, 2, 2)
        first, second = quarantine_of(home, name)
        assert (first["record_number"], first["column"]) == (2, "error_message")
        assert "not valid UTF-8 text" in first["reason"]
        assert (second["record_number"], second["column"]) == (3, None)
        assert second["reason"] == "expected 24 fields, found 23"
        assert "real\ufffd" in second["raw"]
    assert_ingested(outcomes, "category.csv", 1, 1)
    [row] = quarantine_of(home, "category.csv")
    assert (row["record_number"], row["column"]) == (2, "os")


def test_crlf_line_endings_and_utf8_bom_are_accepted(home):
    records = [record(), record(error_message="two\r\nlines"), record(severity="Fatal")]
    land(home, "crlf.csv", csv_text(records, HEADER, newline="\r\n"))
    land(home, "cr.csv", csv_text(records, HEADER, newline="\r"))  # classic Mac OS
    land(home, "bom.csv", b"\xef\xbb\xbf" + csv_text(records, HEADER).encode())
    land(home, "bom-none.csv", b"\xef\xbb\xbf" + csv_text(records).encode())
    land(
        home,
        "both.csv.gz",
        gzip.compress(b"\xef\xbb\xbf" + csv_text(records, HEADER, "\r\n").encode()),
    )
    land_good(home)
    outcomes = ingest(home)
    for name in ("crlf.csv", "cr.csv", "bom.csv", "bom-none.csv", "both.csv.gz"):
        assert_ingested(outcomes, name, 3, 0)
        table = stored_of(home, name)
        assert table.column("error_message")[1].as_py() == "two\r\nlines"
        assert table.column("error_code").to_pylist() == [0, 0, 0]  # the BOM is not in a value
        assert table.column("severity").cast(pa.string()).to_pylist() == ["Error", "Error", "Fatal"]


# ---------------------------------------------------------------------------------------------
# Values


NOW = dt.datetime.now(dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "date: missing"),
        ("   ", "date: missing"),
        ("yesterday", "date: not a number"),
        ("1631442679,5", "date: not a number"),
        ("NaN", "date: not a number"),
        ("nan", "date: not a number"),
        ("inf", "date: not a number"),
        ("-Infinity", "date: not a number"),
        ("-1631442679", "date: outside the accepted time range"),
        ("1631442679384", "date: outside the accepted time range"),  # milliseconds
        ("1631442679384516", "date: outside the accepted time range"),  # microseconds
        (f"{NOW + 400 * 86_400:.6f}", "date: outside the accepted time range"),  # next year
        ("4102444800", "date: outside the accepted time range"),  # 2100
        ("1e300", "date: outside the accepted time range"),
        ("1577836800", "date: outside the accepted time range"),  # 2020: before the start date
    ],
)
def test_bad_dates_are_quarantined_on_the_files_first_day(home, value, reason):
    records = [record(), record(date=value), record()]
    land(home, "dates.csv", csv_text(records, HEADER))
    land_good(home)
    outcomes = ingest(home)
    assert_ingested(outcomes, "dates.csv", 2, 1)
    [row] = quarantine_of(home, "dates.csv")
    assert (row["record_number"], row["column"]) == (2, "date")
    assert row["reason"].startswith(reason), row["reason"]
    assert read_ledger(home)["dates.csv"]["days"] == {
        DAY: {"read": 3, "stored": 2, "quarantined": 1}
    }


@pytest.mark.parametrize("value", ["", " ", "\t"], ids=["empty", "blank", "tab"])
def test_missing_or_blank_severity_is_quarantined(home, value):
    records = [record(severity=value), record(), record(severity="Fatal")]
    land(home, "severity.csv", csv_text(records, HEADER))
    land_good(home)
    outcomes = ingest(home)
    assert_ingested(outcomes, "severity.csv", 2, 1)
    [row] = quarantine_of(home, "severity.csv")
    assert (row["record_number"], row["column"]) == (1, "severity")
    assert row["reason"].startswith("severity: missing")


def test_unknown_severity_is_stored_counted_and_not_fatal(home):
    records = [
        record(severity="Verbose"),
        record(severity="Verbose", date=epoch(DAY, 60)),
        record(severity="Fatal", date=epoch(DAY, 61)),
    ]
    land(home, "verbose.csv", csv_text(records, HEADER))
    outcomes = ingest(home)
    assert_ingested(outcomes, "verbose.csv", 3, 0)
    assert severity_counts(home, DAY) == {"Fatal": 1, "Verbose": 2}
    per_minute = fatal_per_minute(home, DAY, DEFAULT_SEVERITIES)
    assert per_minute.sum() == 1 and per_minute[1] == 1


def test_the_same_record_twice_is_stored_twice_a_redelivered_file_once(home):
    records = [record(), record(), record(severity="Fatal")]
    land(home, "twice.csv", csv_text(records, HEADER))
    land(home, "again/twice-copy.csv", csv_text(records, HEADER))
    land_good(home)
    outcomes = ingest(home)
    assert_ingested(outcomes, "again/twice-copy.csv", 3, 0)
    assert outcomes["twice.csv"].status == "duplicate"
    assert outcomes["twice.csv"].reason == "duplicate of again/twice-copy.csv"
    table = stored_of(home, "again/twice-copy.csv")
    assert table.slice(0, 1).equals(table.slice(1, 1))
    assert stored_rows(home, DAY) == 5
    (home.incoming / "twice.csv").touch()
    assert ingest(home)["twice.csv"].status == "unchanged"
    assert stored_rows(home, DAY) == 5


# ---------------------------------------------------------------------------------------------
# Hostile file names


def test_hostile_file_names_stay_inside_the_home_folder(tmp_path):
    home = Home(tmp_path / "home").create()

    def records(name: str) -> str:
        return csv_text([record(error_message=name), record()[:23]], HEADER)

    names = ["<b>x</b>.csv", "..evil/bad.csv", "-rf .csv", "a\nb.csv", "$(touch pwned).csv"]
    for name in names:
        land(home, name, records(name))
    raw_name = os.fsdecode(b"caf\xe9-\xff.csv")  # not UTF-8: the file system allows it
    land(home, raw_name, records("latin-1"))
    land(home, os.fsdecode(b"rej\xff.csv"), b"")
    land(home, ".x.tmp/inside.csv", b"not,a,header\n")  # a landing folder named like a temp
    land(home, "..evil.csv", records("hidden"))  # a hidden file, like `.name.csv.XXXX` of rsync
    land_good(home)
    outcomes = ingest(home)
    assert "..evil.csv" not in outcomes and "..evil.csv" not in read_ledger(home)
    assert (home.incoming / "..evil.csv").is_file()  # ignored, as every dot file, and left
    for name in names:
        assert_ingested(outcomes, name, 1, 1)
        assert quarantine_of(home, name)[0]["file"] == name
    escaped = "caf\\xe9-\\xff.csv"
    assert_ingested(outcomes, escaped, 1, 1)
    assert quarantine_of(home, escaped)[0]["file"] == escaped
    assert_rejected(home, outcomes, "rej\\xff.csv", "empty")
    assert_rejected(home, outcomes, ".x.tmp/inside.csv", "not a header")
    assert (home.rejected_files / ".x.tmp" / "inside.csv").is_file()
    land(home, "later.csv", csv_text([record()], HEADER))
    assert_ingested(ingest(home), "later.csv", 1, 0)  # the next pass is not stopped by them
    assert (home.rejected_files / ".x.tmp" / "inside.csv").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["home"]
    assert not any(p.name == "pwned" for p in tmp_path.rglob("*"))


# ---------------------------------------------------------------------------------------------
# Fuzz


FUZZ_RECORDS = [
    record(
        date=epoch(f"2021-09-1{n % 3}", 3000 * n + 0.5),
        error_message='multi\nline, "quoted"' if n % 4 == 0 else "plain",
        severity=["Error", "Fatal", "Info"][n % 3],
        gdpr=["True", "0"][n % 2],
    )
    for n in range(10)
]
FUZZ_BASES = {
    "names": csv_text(FUZZ_RECORDS, HEADER).encode(),
    "positional": csv_text(FUZZ_RECORDS, [str(i) for i in range(24)]).encode(),
    "none": csv_text(FUZZ_RECORDS, newline="\r\n").encode(),
}
TOKENS = [
    b'"',
    b",",
    b"\n",
    b"\r",
    b"\r\n",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b'""',
    b"\xef\xbb\xbf",
    b",,,,,,,,,,",
]


@st.composite
def hostile_bytes(draw) -> tuple[bytes, bool]:
    """Random bytes (alone, or after a valid header), or a valid file with random insertions
    of CSV-significant bytes, deletions and a truncation; gzipped a quarter of the time."""
    kind = draw(st.sampled_from(["bytes", "header+bytes", "mutated", "mutated", "mutated"]))
    if kind == "bytes":
        data = draw(st.binary(max_size=400))
    elif kind == "header+bytes":
        data = FUZZ_BASES["names"].split(b"\n", 1)[0] + b"\n" + draw(st.binary(max_size=400))
    else:
        data = bytearray(FUZZ_BASES[draw(st.sampled_from(sorted(FUZZ_BASES)))])
        header_end = data.index(b"\n") + 1
        for _ in range(draw(st.integers(1, 6))):
            op = draw(st.sampled_from(["insert", "insert", "delete", "truncate"]))
            # Mostly after the first line: a broken header rejects the file before any record.
            low = min(draw(st.sampled_from([0, header_end, header_end])), len(data))
            at = draw(st.integers(low, len(data)))
            if op == "insert":
                data[at:at] = draw(st.sampled_from(TOKENS))
            elif op == "delete":
                del data[at : at + draw(st.integers(1, 4))]
            else:
                del data[at:]
        data = bytes(data)
    return data, draw(st.integers(0, 3)) == 0


def independent_record_count(data: bytes, header_kind: str) -> int:
    """Records in the file by Python's csv module (blank lines are not records)."""
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace")
    records = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    return len(records) - (header_kind != "none")


FUZZ_EXAMPLES = 200


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(hostile_bytes())
def test_fuzz_never_raises_and_every_file_is_rejected_or_reconciled(tmp_path, case):
    data, compressed = case
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        home = Home(Path(folder) / "home").create()
        name = "fuzz.csv.gz" if compressed else "fuzz.csv"
        land(home, name, gzip.compress(data, mtime=0) if compressed else data)
        land_good(home)
        outcomes = ingest(home)  # must not raise; reconciles every file and day
        outcome = outcomes[name]
        assert outcome.status in ("ingested", "rejected"), outcome
        event(f"{outcome.status}, {'some' if outcome.quarantined else 'no'} records quarantined")
        if outcome.status == "rejected":
            assert outcome.reason and not (home.incoming / name).exists()
            assert (home.rejected_files / name).is_file()
            assert (home.rejected_files / f"{name}.reason.txt").read_text().strip()
            assert read_ledger(home)[name]["rejected"] == outcome.reason
            return
        entry = read_ledger(home)[name]
        # Nothing lost: every record is counted, stored or quarantined.
        assert outcome.read == independent_record_count(data, entry["header"])
        numbers = [r["record_number"] for r in quarantine_of(home, name)]
        assert len(numbers) == len(set(numbers)) == outcome.quarantined
        assert all(1 <= n <= outcome.read for n in numbers)


# ---------------------------------------------------------------------------------------------
# Crashes


def mixed_file() -> str:
    """Records over two days, some bad in every way, some with no readable date."""
    day1, day2 = "2021-09-10", "2021-09-11"
    records = [
        record(date=epoch(day1, 100)),
        record(date=epoch(day1, 200))[:23],
        record(date="1631442679384"),
        record(date=epoch(day2, 5), severity=" "),
        record(date=epoch(day2, 6), error_message="multi\nline"),
        record(date=epoch(day2, 7), test_mode="maybe"),
        [*record(date=epoch(day2, 8)), "x"],
        record(date=epoch(day2, 9), severity="Fatal"),
    ]
    return csv_text(records, HEADER)


def crash_landing(folder: Path, rows_per_file: int, generated: int = 3) -> Path:
    """Generated files over three days (the last one gzipped), a file with bad records, a copy
    of it under another name (a duplicate) and a file with a bad header (rejected)."""
    folder.mkdir(parents=True)
    for n in range(generated):
        gz = n == generated - 1
        generate_logs(
            folder,
            rows=rows_per_file,
            days=3,
            seed=1000 + n,
            one_file=f"part-{n}.csv" + (".gz" if gz else ""),
            compress=gz,
        )
    (folder / "mixed.csv").write_text(mixed_file())
    (folder / "mixed-copy.csv").write_text(mixed_file())
    (folder / "rejected.csv").write_text(csv_text([record()], ["when", *COLUMNS[1:]]))
    return folder


def landed_home(root: Path, landing: Path) -> Home:
    """A fresh home whose landing folder holds hard links to the prepared files."""
    home = Home(root).create()
    for path in landing.iterdir():
        os.link(path, home.incoming / path.name)
    return home


def worker(home: Home, **env: str) -> subprocess.Popen:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    environment = os.environ | {"PYTHONPATH": path} | env
    return subprocess.Popen(
        [sys.executable, "-m", "alert_pipeline_tests.crash_worker", "ingest", str(home.root)]
        + [str(TR.start_us), str(TR.end_us)],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )


def table_digest(path: Path) -> str:
    """A digest of a Parquet part's rows, whatever their order, chunking or dictionaries."""
    table = pq.read_table(path)
    table = pa.table(
        {
            name: column.cast(column.type.value_type)
            if pa.types.is_dictionary(column.type)
            else column
            for name, column in zip(table.column_names, table.columns, strict=True)
        }
    )
    table = table.sort_by([(name, "ascending") for name in table.column_names]).combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


LEDGER_KEYS = ("source", "sha256", "header", "days", "changed_days", "duplicate_of")


def contents(home: Home) -> dict:
    """Everything an ingestion leaves, except times and file versions: every Parquet part's
    rows, the ledger's counts, the files rejected whole with their reasons."""
    parts = {
        str(p.relative_to(home.root)): table_digest(p)
        for folder in (home.validated, home.quarantine)
        for p in sorted(folder.glob("day=*/*.parquet"))
    }
    ledger = {
        name: {key: entry.get(key) for key in LEDGER_KEYS}
        for name, entry in read_ledger(home).items()
        # A kill between moving a rejected file and recording it leaves no entry; the file is
        # in quarantine/files with its reason (compared below) and no longer in the landing.
        if not entry.get("rejected")
    }
    rejected = {
        str(p.relative_to(home.rejected_files)): p.read_bytes()
        for p in sorted(home.rejected_files.rglob("*"))
        if p.is_file()
    }
    return {"parts": parts, "ledger": ledger, "rejected": rejected}


def assert_same_as_reference(home: Home, landing: Path, reference: dict) -> None:
    assert_no_temp_files(home)
    reconcile(home)
    assert contents(home) == reference
    left = sorted(p.name for p in home.incoming.iterdir())
    assert left == sorted(p.name for p in landing.iterdir() if p.name != "rejected.csv")


@pytest.fixture(scope="module")
def crash_setup(tmp_path_factory):
    """Big landing files (about 1–2 s of ingestion), and a clean reference run of them in a
    subprocess, timed from the start of the ingestion."""
    root = tmp_path_factory.mktemp("crash")
    landing = crash_landing(root / "landing", rows_per_file=100_000)
    home = landed_home(root / "reference", landing)
    process = worker(home)
    assert process.stdout.readline().strip() == "ready"
    started = time.monotonic()
    done = process.stdout.readline()
    duration = time.monotonic() - started
    assert process.wait() == 0 and done.startswith("done")
    reference = contents(home)
    assert len(reference["parts"]) == 3 * 3 + 2 + 2  # parts × days, mixed.csv's, its quarantine
    assert set(reference["rejected"]) == {"rejected.csv", "rejected.csv.reason.txt"}
    assert read_ledger(home)["mixed.csv"]["duplicate_of"] == "mixed-copy.csv"
    return root, landing, reference, duration


# Fractions of the reference run's duration: very early, spread over it, near the end.
KILL_SLOTS = [(0.0, 0.03), (0.15, 0.3), (0.4, 0.55), (0.65, 0.8), (0.88, 0.98)]


@pytest.mark.parametrize("seed", range(len(KILL_SLOTS)))
def test_ingestion_killed_at_a_random_time_then_rerun_ends_as_a_clean_run(crash_setup, seed):
    root, landing, reference, duration = crash_setup
    home = landed_home(root / f"killed-{seed}", landing)
    low, high = KILL_SLOTS[seed]
    delay = duration * random.Random(seed).uniform(low, high)
    process = worker(home)
    assert process.stdout.readline().strip() == "ready"
    time.sleep(delay)
    process.kill()  # SIGKILL, to this process only
    code = process.wait()
    print(f"seed {seed}: killed {delay:.3f} s into a {duration:.3f} s ingestion, exit {code}")
    if high <= 0.55:  # later ones may see a faster run end first: still a valid test
        assert code == -signal.SIGKILL, "the ingestion ended before it could be killed"
    ingest_pending(home, TR)
    assert_same_as_reference(home, landing, reference)
    assert ingest_pending(home, TR) == []


def test_two_ingestions_of_one_home_at_once_end_as_a_clean_run(crash_setup):
    root, landing, reference, _ = crash_setup
    home = landed_home(root / "concurrent", landing)
    first, second = worker(home), worker(home)
    outputs = [p.communicate()[0] for p in (first, second)]
    assert (first.returncode, second.returncode) == (0, 0), outputs
    assert all(o.startswith("ready\ndone") for o in outputs)
    # One waited for the other's lock and found everything ingested.
    handled = Counter(part.split("=")[0] for o in outputs for part in o.split()[2:])
    assert handled == Counter(
        ["part-0.csv", "part-1.csv", "part-2.csv.gz", "mixed.csv", "mixed-copy.csv", "rejected.csv"]
    )
    assert_same_as_reference(home, landing, reference)


@pytest.fixture(scope="module")
def small_crash_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash-small")
    landing = crash_landing(root / "landing", rows_per_file=3_000, generated=1)
    home = landed_home(root / "reference", landing)
    ingest_pending(home, TR)
    return root, landing, contents(home)


def replaces_in_a_clean_run(root: Path, landing: Path) -> int:
    home = landed_home(root / "count", landing)
    count = 0
    real = os.replace

    def counting(*args, **kwargs):
        nonlocal count
        count += 1
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "replace", counting)
        ingest_pending(home, TR)
    return count


def test_ingestion_killed_before_each_rename_then_rerun_ends_as_a_clean_run(small_crash_setup):
    """Every write is a temp file renamed into place: killing the ingestion just before each
    of its renames in turn (a day part, a quarantine part, a ledger entry, a reason file) hits
    every state between them, deterministically."""
    root, landing, reference = small_crash_setup
    renames = replaces_in_a_clean_run(root, landing)
    # part-0: 3 day parts + content claim + ledger; mixed-copy: 2 + 2 quarantine parts + claim +
    # ledger; mixed (its duplicate): ledger; rejected: reason + ledger.
    assert renames == 5 + 6 + 1 + 2
    print(f"killed before each of {renames} renames")
    for first in range(1, renames + 1, 4):  # four at a time: the interpreter's start dominates
        trials = {
            n: landed_home(root / f"rename-{n}", landing)
            for n in range(first, min(first + 4, renames + 1))
        }
        workers = {
            n: worker(home, ALERT_PIPELINE_TEST_KILL_BEFORE_REPLACE=str(n))
            for n, home in trials.items()
        }
        for n, process in workers.items():
            process.communicate()
            assert process.returncode == -signal.SIGKILL, n
        for home in trials.values():
            ingest_pending(home, TR)
            assert_same_as_reference(home, landing, reference)


# ---------------------------------------------------------------------------------------------
# Injection


HOSTILE_BUNDLE = "<script>alert(1)</script>|x"
HOSTILE_MESSAGE = 'boom | a | b |\n=HYPERLINK("http://x")'
ALL_ASSETS = [validated_logs, *rule_assets, alert_report]


def assert_tables_keep_their_columns(markdown: str) -> None:
    """Every row of every table has as many cells as its header: no value added a cell."""
    tables: list[list[str]] = [[]]
    for row in markdown.splitlines():
        if row.startswith("|"):
            tables[-1].append(row)
        elif tables[-1]:
            tables.append([])
    tables = [rows for rows in tables if rows]
    assert tables
    for rows in tables:
        assert len(rows) >= 3 and len({row.count("|") for row in rows}) == 1, rows


def test_hostile_values_are_escaped_in_every_markup_and_faithful_in_json(tmp_path):
    home = tmp_path / "home"
    burst = [
        record(
            date=epoch("2021-09-10", 3600 + n * 0.25),
            severity="Fatal",
            bundle_id=HOSTILE_BUNDLE,
            error_message=HOSTILE_MESSAGE,
        )
        for n in range(12)
    ]
    quiet = [record(date=epoch("2021-09-10", 7200), severity="Info", error_message="<i>ok</i>")]
    bad = [record(date=epoch("2021-09-10", 7300), error_code=HOSTILE_BUNDLE)]
    land(Home(home), "<b>x</b>.csv", csv_text(burst + quiet, HEADER))
    land(Home(home), "..evil/bad.csv", csv_text(bad, HEADER))
    land(Home(home), "..evil.csv", csv_text(bad, HEADER))  # a hidden file: ignored
    land(Home(home), "<i>no</i>.csv", csv_text([record()], ["<script>", *COLUMNS[1:]]))
    with DagsterInstance.ephemeral() as instance:
        run_ingest_job(home, instance)
        result = materialize(
            ALL_ASSETS,
            partition_key="2021-09-10",
            instance=instance,
            resources={"alert_home": AlertHome(path=str(home), settle_seconds=0)},
            raise_on_error=False,
        )
    assert result.success
    reports = home / "reports" / "2021-09-10"
    document = json.loads((reports / "alert_report.json").read_text())
    markdown = (reports / "alert_report.md").read_text()
    page = (reports / "alert_report.html").read_text()
    metadata = {
        m.asset_key.to_user_string(): m.materialization.metadata
        for m in result.get_asset_materialization_events()
    }
    incidents = metadata["fatal_errors_per_bundle_per_hour"]["incidents"].value
    shown = metadata["alert_report"]["report"].value

    # The JSON report is data: the value as it was.
    groups = [i["group"] for i in document["incidents"]]
    assert {"bundle_id": HOSTILE_BUNDLE} in groups and {} in groups
    assert document["records"] == {"stored": 13, "quarantined": 1}
    # Markup: no raw tag anywhere, the value shown escaped, tables intact.
    for text in (markdown, page, incidents, shown):
        assert "<script" not in text.lower()
        assert "&lt;script&gt;" in text
        assert "HYPERLINK" not in text and "<i>" not in text
    for text in (markdown, incidents, shown):
        assert_tables_keep_their_columns(text)
        assert "&#124;x" in text
    for entries in metadata.values():
        for value in entries.values():
            if isinstance(value.value, str):
                assert "<script" not in value.value.lower()
    # Stored faithfully, whatever its content.
    table = pq.read_table(next((home / "warehouse" / "validated_logs").rglob("*.parquet")))
    messages = table.column("error_message").to_pylist()
    assert messages.count(HOSTILE_MESSAGE) == 12
    assert set(table.column("bundle_id").cast(pa.string()).to_pylist()) >= {HOSTILE_BUNDLE}
    # Hostile file names: handled like any other, and nothing written outside the home folder.
    [row] = quarantine_of(Home(home), "..evil/bad.csv")
    assert row["column"] == "error_code" and HOSTILE_BUNDLE in row["raw"]
    assert (home / "quarantine" / "files" / "<i>no<" / "i>.csv").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["home"]
