"""The loader against its contract, on real files written to `tmp_path`.

- headers: names in any order and case, positional `0,1,…,23`, none; missing / unexpected /
  duplicated columns rejected with a message naming them; empty and header-only files;
- encodings and framing: `.csv.gz` (also multi-member), UTF-8 BOM, CRLF, RFC 4180 quoting
  (commas, doubled quotes, newlines inside quoted fields), fields larger than 128 KiB;
- types: epoch seconds → timestamp[us, UTC] exact to the microsecond (checked against `Decimal`),
  booleans, int64, verbatim text, dictionary-encoded categoricals;
- invalid records: each kind rejected with its 1-based record number (header excluded), column
  and a reason naming the problem, also after quoted multi-line records and across blocks;
- the two real sample files.
"""

import csv
import datetime as dt
import gc
import gzip
import io
import random
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandera import Check

from alert_pipeline import batch_typing, loader
from alert_pipeline.batch_typing import TimeRange
from alert_pipeline.header import FileRejected, read_header
from alert_pipeline.loader import read_batches, renumber
from alert_pipeline.schema import (
    ARROW_SCHEMA,
    BOOLEAN_COLUMNS,
    CATEGORY_COLUMNS,
    COLUMNS,
    INTEGER_COLUMNS,
)
from alert_pipeline_tests.helpers import csv_text, record

US = 1_000_000
TR = TimeRange(0, 4102444800 * US)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
JSON_MESSAGE = (
    'We are running "Programmatic Flow", you need to active gCom.\n'
    " HTTP/1.1 400 Bad Request\n"
    '{"product": null, "session": {"status": "Error: CODE_INVALID_FLOW_ID", "error_code": 110}}'
)


# ---------------------------------------------------------------------------------------------
# Helpers


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    data = content.encode("utf-8") if isinstance(content, str) else content
    if name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


@dataclass(frozen=True)
class Rejected:
    number: int | None
    column: str | None
    reason: str
    raw: str


@dataclass(frozen=True)
class Loaded:
    table: pa.Table
    rejected: list[Rejected]

    @property
    def numbers(self) -> list[tuple[int | None, str | None]]:
        return sorted(((r.number, r.column) for r in self.rejected), key=str)


def load(path: Path, time_range: TimeRange = TR) -> Loaded:
    """All batches of a file, with record numbers made final as the `Batch` docstring says
    (`skipped_records` of the last batch shift the numbers of earlier rejections)."""
    tables, numbers, columns, reasons, raws = [], [], [], [], []
    for batch in read_batches(path, time_range):
        tables.append(batch.valid)
        if batch.skipped_records:
            numbers = renumber(numbers, batch.skipped_records).tolist()
        numbers += batch.rejections.record_numbers
        columns += batch.rejections.columns
        reasons += batch.rejections.reasons
        raws += batch.rejections.raws
    table = pa.concat_tables(tables) if tables else ARROW_SCHEMA.empty_table()
    assert table.schema == ARROW_SCHEMA
    rejected = [Rejected(*fields) for fields in zip(numbers, columns, reasons, raws, strict=True)]
    return Loaded(table, rejected)


def epoch_us(text: str) -> int:
    return int((Decimal(text.strip()) * US).to_integral_value(ROUND_HALF_EVEN))


def expected_row(fields: list[str]) -> dict:
    """What the loader must make of one valid record, computed independently with Decimal."""
    row = {}
    for name, text in zip(COLUMNS, fields, strict=True):
        if text == "":
            row[name] = None
        elif name == "date":
            row[name] = EPOCH + dt.timedelta(microseconds=epoch_us(text))
        elif name in BOOLEAN_COLUMNS:
            row[name] = {"true": True, "1": True, "false": False, "0": False}[text.lower()]
        elif name in INTEGER_COLUMNS:
            row[name] = int(text)
        else:
            row[name] = text
    return row


def varied_records() -> list[list[str]]:
    """Records that differ in every typed column, so a column mix-up cannot go unnoticed."""
    return [
        record(
            error_code="110",
            error_message='a "quoted", message',
            test_mode="True",
            gdpr="False",
            ccpa="1",
            country_code="GE",
            date="1631357703.124878",
        ),
        record(error_code="-3", test_mode="false", gdpr="true", ccpa="0", date="1631442679.4346"),
        record(severity="FATAL", sdk_date="11.09.2021 10:55:00", date="1631600000"),
    ]


# ---------------------------------------------------------------------------------------------
# Headers


def _shuffled() -> list[str]:
    names = list(COLUMNS)
    random.Random(24).shuffle(names)
    assert names != list(COLUMNS)
    return names


@pytest.mark.parametrize(
    ("kind", "header"),
    [
        ("names", list(COLUMNS)),
        ("names", _shuffled()),
        ("names", [name.upper() for name in _shuffled()]),
        ("names", [f" {name.title()} " for name in COLUMNS]),
        ("positional", [str(i) for i in range(24)]),
        ("none", None),
    ],
    ids=["names", "shuffled", "upper-shuffled", "title-padded", "positional", "none"],
)
def test_header_variants_give_the_same_typed_records(tmp_path, kind, header):
    records = varied_records()
    if header is None:
        rows = records
    else:
        order = [
            COLUMNS.index(name.strip().lower()) if kind == "names" else i
            for i, name in enumerate(header)
        ]
        rows = [[fields[i] for i in order] for fields in records]
    path = write(tmp_path, "logs.csv", csv_text(rows, header))

    assert read_header(path).kind == kind
    loaded = load(path)
    assert loaded.rejected == []
    assert loaded.table.to_pylist() == [expected_row(fields) for fields in records]


@pytest.mark.parametrize("missing", ["bundle_id", "date", "error_code"])
def test_header_with_a_missing_column_is_rejected_naming_it(tmp_path, missing):
    header = [name for name in COLUMNS if name != missing]
    path = write(tmp_path, "logs.csv", csv_text([record()[:23]], header))
    with pytest.raises(FileRejected) as caught:
        read_header(path)
    message = str(caught.value)
    assert "missing" in message and missing in message
    assert "logs.csv" not in message  # the file is named where the reason is shown


def test_header_with_an_unexpected_column_is_rejected_naming_it(tmp_path):
    path = write(tmp_path, "logs.csv", csv_text([record() + ["x"]], [*COLUMNS, "user_agent"]))
    with pytest.raises(FileRejected) as caught:
        list(read_batches(path, TR))
    message = str(caught.value)
    assert "unexpected" in message and "user_agent" in message


def test_header_with_a_renamed_column_names_both_the_missing_and_the_unexpected(tmp_path):
    header = ["timestamp" if name == "date" else name for name in COLUMNS]
    path = write(tmp_path, "logs.csv", csv_text([record()], header))
    with pytest.raises(FileRejected) as caught:
        read_header(path)
    message = str(caught.value)
    assert "missing: date" in message
    assert "unexpected: timestamp" in message


def test_header_with_a_duplicated_column_is_rejected_naming_it(tmp_path):
    header = [*COLUMNS[:-1], "severity"]  # `date` replaced by a second `severity`
    path = write(tmp_path, "logs.csv", csv_text([record()], header))
    with pytest.raises(FileRejected) as caught:
        read_header(path)
    message = str(caught.value)
    assert "duplicated" in message and "severity" in message
    assert "missing: date" in message


def test_header_with_an_extra_unnamed_column_does_not_claim_nothing_is_unexpected(tmp_path):
    """A trailing comma after the last name adds a 25th, empty column name."""
    path = write(tmp_path, "logs.csv", csv_text([record() + [""]], [*COLUMNS, ""]))
    with pytest.raises(FileRejected) as caught:
        read_header(path)
    message = str(caught.value)
    assert "unexpected: none" not in message, message
    assert "missing: none" in message


def test_empty_file_is_rejected(tmp_path):
    path = write(tmp_path, "empty.csv", "")
    with pytest.raises(FileRejected, match="empty"):
        list(read_batches(path, TR))


@pytest.mark.parametrize(
    "header", [list(COLUMNS), [str(i) for i in range(24)]], ids=["names", "positional"]
)
@pytest.mark.parametrize("final_newline", [True, False])
def test_header_only_file_has_no_records_and_no_rejections(tmp_path, header, final_newline):
    text = csv_text([], header)
    path = write(tmp_path, "header.csv", text if final_newline else text.rstrip("\n"))
    loaded = load(path)
    assert loaded.table.num_rows == 0
    assert loaded.rejected == []


# ---------------------------------------------------------------------------------------------
# Encodings and CSV framing


def test_gzip_file_reads_like_the_plain_file(tmp_path):
    records = [*varied_records(), record(error_message=JSON_MESSAGE)]
    text = csv_text(records, [name.upper() for name in COLUMNS])
    plain = load(write(tmp_path, "logs.csv", text))
    packed = load(write(tmp_path, "logs.csv.gz", text))
    assert packed.rejected == []
    assert packed.table.to_pylist() == [expected_row(fields) for fields in records]
    assert packed.table.equals(plain.table)


def test_gzip_with_several_members_reads_all_of_them(tmp_path):
    """`cat a.gz b.gz > c.gz` (and log rotation appending) makes one gzip file of many members."""
    path = tmp_path / "joined.csv.gz"
    path.write_bytes(
        gzip.compress(csv_text([record()]).encode())
        + gzip.compress(csv_text([record()] * 2).encode())
    )
    assert load(path).table.num_rows == 3


@pytest.mark.parametrize("content", [b"not gzip at all\n", b"\x1f\x8b\x08\x00broken"])
def test_corrupt_gzip_is_rejected_as_a_file(tmp_path, content):
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(content)
    with pytest.raises(FileRejected):
        list(read_batches(path, TR))


def test_truncated_gzip_is_rejected_as_a_file(tmp_path):
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress(csv_text([record()] * 200).encode())[:-40])
    with pytest.raises(FileRejected):
        list(read_batches(path, TR))


@pytest.mark.parametrize(
    "header",
    [None, list(COLUMNS), [str(i) for i in range(24)]],
    ids=["none", "names", "positional"],
)
@pytest.mark.parametrize("name", ["bom.csv", "bom.csv.gz"])
def test_utf8_bom_is_not_part_of_the_first_field(tmp_path, header, name):
    records = varied_records()
    path = write(tmp_path, name, "\ufeff" + csv_text(records, header))
    loaded = load(path)
    assert loaded.rejected == []
    assert loaded.table.to_pylist() == [expected_row(fields) for fields in records]


def test_crlf_line_endings(tmp_path):
    records = [*varied_records(), record(error_message="two\nlines, one comma")]
    path = write(tmp_path, "crlf.csv", csv_text(records, list(COLUMNS), newline="\r\n"))
    loaded = load(path)
    assert loaded.rejected == []
    assert loaded.table.to_pylist() == [expected_row(fields) for fields in records]


def test_rfc4180_quoting_commas_doubled_quotes_and_newlines(tmp_path):
    messages = [
        "one, two, three",
        'he said ""hi"" twice',
        'a "quoted" word',
        "first line\nsecond line\n\nfourth line",
        "carriage\r\nreturn",
        JSON_MESSAGE,
        ",",
        '"',
        "trailing newline\n",
    ]
    records = [
        record(error_message=m, sdk_date=f"11/09/2021 10:55:0{i}") for i, m in enumerate(messages)
    ]
    path = write(tmp_path, "quoted.csv", csv_text(records))
    loaded = load(path)
    assert loaded.rejected == []
    assert loaded.table.column("error_message").to_pylist() == messages
    assert loaded.table.to_pylist() == [expected_row(fields) for fields in records]


def test_file_without_a_final_newline(tmp_path):
    path = write(tmp_path, "nonl.csv", csv_text([record(), record(gdpr="0")]).rstrip("\n"))
    loaded = load(path)
    assert loaded.rejected == []
    assert loaded.table.column("gdpr").to_pylist() == [True, False]


def test_field_larger_than_128_kib_in_the_first_record(tmp_path):
    """Python's csv module refuses fields over 131072 characters by default; the loader must
    not (Arrow reads them fine), or at worst reject the file, never crash with `_csv.Error`."""
    huge = "x" * 200_000
    path = write(tmp_path, "huge.csv", csv_text([record(error_message=huge), record()]))
    loaded = load(path)
    assert loaded.table.num_rows == 2
    assert loaded.table.column("error_message")[0].as_py() == huge


def test_field_larger_than_128_kib_before_a_record_with_wrong_field_count(tmp_path):
    huge = "y" * 200_000
    records = [record(), record(error_message=huge), record()[:23], record()]
    path = write(tmp_path, "huge.csv", csv_text(records))
    loaded = load(path)
    assert loaded.table.num_rows == 3
    assert loaded.numbers == [(3, None)]


# ---------------------------------------------------------------------------------------------
# Types


def test_documented_timestamp_example_is_exact():
    assert EPOCH + dt.timedelta(microseconds=epoch_us("1631442679.384516")) == dt.datetime(
        2021, 9, 12, 10, 31, 19, 384516, tzinfo=dt.UTC
    )


def test_epoch_seconds_become_utc_microseconds(tmp_path):
    path = write(tmp_path, "t.csv", csv_text([record(date="1631442679.384516")]))
    table = load(path).table
    assert table.schema.field("date").type == pa.timestamp("us", tz="UTC")
    assert table.column("date")[0].as_py() == dt.datetime(
        2021, 9, 12, 10, 31, 19, 384516, tzinfo=dt.UTC
    )


EDGE_TIMES = [
    "0.000001",
    "1.5",
    "1631442679",
    "1631442679.1",
    "1631442679.3845",
    "1631442679.38451",
    "1631442679.999999",
    "1631442680.000001",
    "2147483647.999999",
    "4102444799.999999",
    "4102444799.000001",
]


def test_edge_epoch_values_are_exact(tmp_path):
    path = write(tmp_path, "edges.csv", csv_text([record(date=t) for t in EDGE_TIMES]))
    loaded = load(path)
    assert loaded.rejected == []
    assert loaded.table.column("date").cast(pa.int64()).to_pylist() == [
        epoch_us(t) for t in EDGE_TIMES
    ]


@st.composite
def epoch_texts(draw) -> str:
    micros = draw(st.integers(min_value=0, max_value=4102444800 * US - 1))
    decimals = draw(st.sampled_from([4, 5, 6]))
    seconds, fraction = divmod(micros, US)
    return f"{seconds}.{fraction:06d}"[: len(str(seconds)) + 1 + decimals]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(epoch_texts(), min_size=1, max_size=25))
def test_epoch_seconds_match_decimal_exactly(tmp_path, texts):
    path = write(tmp_path, "times.csv", csv_text([record(date=t) for t in texts]))
    loaded = load(path)
    assert loaded.rejected == []
    assert loaded.table.column("date").cast(pa.int64()).to_pylist() == [epoch_us(t) for t in texts]


@pytest.mark.parametrize(
    ("text", "value"),
    [("True", True), ("False", False), ("true", True), ("false", False), ("1", True), ("0", False)],
)
@pytest.mark.parametrize("column", BOOLEAN_COLUMNS)
def test_boolean_spellings(tmp_path, column, text, value):
    other = "0" if value else "1"
    fields = {name: other for name in BOOLEAN_COLUMNS} | {column: text}
    path = write(tmp_path, "b.csv", csv_text([record(**fields)]))
    loaded = load(path)
    assert loaded.rejected == []
    row = loaded.table.to_pylist()[0]
    assert row[column] is value
    assert [row[name] for name in BOOLEAN_COLUMNS if name != column] == [not value] * 2


def test_integer_error_code(tmp_path):
    codes = ["0", "110", "-3", "400", "999999999999"]
    path = write(tmp_path, "i.csv", csv_text([record(error_code=c) for c in codes]))
    loaded = load(path)
    assert loaded.rejected == []
    assert loaded.table.schema.field("error_code").type == pa.int64()
    assert loaded.table.column("error_code").to_pylist() == [int(c) for c in codes]


def test_explicitly_signed_error_code_does_not_reject_the_whole_file(tmp_path):
    """`+5` passes the loader's integer pattern; whatever it becomes, it concerns one record."""
    path = write(
        tmp_path, "plus.csv", csv_text([record(), record(error_code="+5"), record(error_code="7")])
    )
    loaded = load(path)  # must not raise FileRejected
    codes = loaded.table.column("error_code").to_pylist()
    assert 7 in codes and 0 in codes
    if loaded.table.num_rows == 3:
        assert codes == [0, 5, 7]
    else:
        assert loaded.numbers == [(2, "error_code")]


def test_text_columns_are_verbatim_and_categoricals_dictionary_encoded(tmp_path):
    sdk_dates = [
        "09/12/2021 10:31:17",
        "11.09.2021 10:55:00",
        "9/14/2021 10:28:22 AM",
        " 01/02/2021 ",
    ]
    path = write(tmp_path, "v.csv", csv_text([record(sdk_date=d) for d in sdk_dates]))
    table = load(path).table
    assert table.column("sdk_date").to_pylist() == sdk_dates
    assert table.schema.field("sdk_date").type == pa.string()
    for name in CATEGORY_COLUMNS:
        assert pa.types.is_dictionary(table.schema.field(name).type), name
    assert table.column("bundle_id").to_pylist() == [record()[COLUMNS.index("bundle_id")]] * 4


@pytest.mark.parametrize(
    ("column", "text"),
    [
        ("country_code", "NA"),  # Namibia
        ("error_message", "None"),
        ("error_message", "N/A"),
        ("error_message", "null"),
        ("sdk_date", "NULL"),
    ],
)
def test_words_that_look_like_null_are_kept_verbatim(tmp_path, column, text):
    path = write(tmp_path, "na.csv", csv_text([record(**{column: text})]))
    loaded = load(path)
    assert loaded.rejected == []
    assert loaded.table.column(column).to_pylist() == [text]


# ---------------------------------------------------------------------------------------------
# Invalid records


@pytest.mark.parametrize(
    ("fields", "column", "words"),
    [
        ({"date": "yesterday"}, "date", ["date", "not a number", "yesterday"]),
        ({"date": "1631442679,38"}, None, ["24", "25"]),  # an unquoted comma: one field too many
        ({"date": ""}, "date", ["date", "missing"]),
        ({"error_code": "12x"}, "error_code", ["error_code", "integer", "12x"]),
        ({"error_code": "1.5"}, "error_code", ["error_code", "integer"]),
        ({"test_mode": "maybe"}, "test_mode", ["test_mode", "boolean", "maybe"]),
        ({"gdpr": "yes"}, "gdpr", ["gdpr", "boolean"]),
        ({"ccpa": "2"}, "ccpa", ["ccpa", "boolean"]),
        ({"bundle_id": ""}, "bundle_id", ["bundle_id", "missing"]),
        ({"bundle_id": "   "}, "bundle_id", ["bundle_id", "missing"]),
        ({"severity": ""}, "severity", ["severity", "missing"]),
    ],
    ids=lambda v: "-".join(f"{k}={x!r}" for k, x in v.items()) if isinstance(v, dict) else None,
)
def test_invalid_record_is_rejected_with_number_column_and_reason(tmp_path, fields, column, words):
    # column None: the date "1631442679,38" written unquoted, so the record has 25 fields
    bad = record(**fields) if column else record()[:-1] + fields["date"].split(",")
    path = write(tmp_path, "bad.csv", csv_text([record(), bad, record(gdpr="0")], list(COLUMNS)))
    loaded = load(path)
    assert loaded.table.num_rows == 2
    assert loaded.table.column("gdpr").to_pylist() == [True, False]
    [rejected] = loaded.rejected
    assert (rejected.number, rejected.column) == (2, column)
    for word in words:
        assert word in rejected.reason, (word, rejected.reason)


@pytest.mark.parametrize(("count"), [23, 25, 1])
def test_wrong_field_count_is_rejected(tmp_path, count):
    fields = (record() + ["extra"])[:count]
    path = write(tmp_path, "n.csv", csv_text([record(), record(), fields, record()]))
    loaded = load(path)
    assert loaded.table.num_rows == 3
    [rejected] = loaded.rejected
    assert (rejected.number, rejected.column) == (3, None)
    assert "24" in rejected.reason and str(count) in rejected.reason


def test_dates_outside_the_time_range_are_rejected(tmp_path):
    start, end = 1631318400, 1631404800  # [2021-09-11, 2021-09-12)
    times = [
        str(start),  # 1: first accepted µs
        f"{end - 1}.999999",  # 2: last accepted µs
        str(end),  # 3: end is exclusive
        f"{start - 1}.999999",  # 4: just before
        "-5",  # 5
        "1631357703124.878",  # 6: milliseconds, not seconds
    ]
    path = write(tmp_path, "r.csv", csv_text([record(date=t) for t in times]))
    loaded = load(path, TimeRange(start * US, end * US))
    assert loaded.table.column("date").cast(pa.int64()).to_pylist() == [
        start * US,
        end * US - 1,
    ]
    assert loaded.numbers == [(3, "date"), (4, "date"), (5, "date"), (6, "date")]
    for rejected in loaded.rejected:
        assert "range" in rejected.reason


MULTILINE = record(error_message='line one\nline two, with "quotes" and, commas\nline three')


def _mixed_records() -> tuple[list[list[str]], list[tuple[int, str | None]]]:
    """Valid multi-line records between invalid ones: record numbers are not line numbers."""
    records = [
        record(),  # 1
        MULTILINE,  # 2
        record(test_mode="maybe"),  # 3
        MULTILINE,  # 4
        record()[:23],  # 5: 23 fields
        MULTILINE,  # 6
        record() + ["surplus"],  # 7: 25 fields
        record(error_code="x"),  # 8
        MULTILINE,  # 9
        record(bundle_id=""),  # 10
        record(date="abc"),  # 11
        MULTILINE,  # 12
        record(severity=""),  # 13
        record(),  # 14
    ]
    expected = [
        (3, "test_mode"),
        (5, None),
        (7, None),
        (8, "error_code"),
        (10, "bundle_id"),
        (11, "date"),
        (13, "severity"),
    ]
    return records, expected


@pytest.mark.parametrize("header", [None, list(COLUMNS)], ids=["no-header", "names"])
@pytest.mark.parametrize("name", ["mixed.csv", "mixed.csv.gz"])
def test_record_numbers_after_multiline_records_and_wrong_field_counts(tmp_path, header, name):
    records, expected = _mixed_records()
    text = csv_text(records, header)
    assert text.count("\n") > len(records) + (header is not None)  # lines ≠ records
    loaded = load(write(tmp_path, name, text))
    assert loaded.numbers == sorted(expected, key=str)
    assert loaded.table.num_rows == len(records) - len(expected)
    by_number = {r.number: r for r in loaded.rejected}
    assert "23" in by_number[5].reason and "25" in by_number[7].reason


def test_record_numbers_stay_right_across_many_small_blocks(tmp_path, monkeypatch):
    """Arrow parses in blocks; numbering must be continuous over blocks and skipped records."""
    monkeypatch.setattr(loader, "BLOCK_SIZE", 2048)
    records, expected = _mixed_records()
    repeats = 12
    path = write(tmp_path, "blocks.csv", csv_text(records * repeats, list(COLUMNS)))
    loaded = load(path)
    want = [(n + k * len(records), c) for k in range(repeats) for n, c in expected]
    assert loaded.numbers == sorted(want, key=str)
    assert loaded.table.num_rows == (len(records) - len(expected)) * repeats


def test_raw_of_a_rejected_multiline_record_round_trips(tmp_path):
    bad = record(error_message='x, "y"\nz', test_mode="maybe")
    path = write(tmp_path, "raw.csv", csv_text([MULTILINE, bad]))
    [rejected] = load(path).rejected
    assert rejected.number == 2
    assert next(csv.reader(io.StringIO(rejected.raw))) == bad


def test_a_record_the_pandera_model_rejects_gets_its_own_reason(tmp_path, monkeypatch):
    """The Pandera model is the source of truth: a check added there must reject exactly the
    failing record, with a reason naming the column (here: a stricter country_code)."""

    model = batch_typing.record_schema

    def stricter(start_us: int, end_us: int) -> pandera.DataFrameSchema:
        return model(start_us, end_us).update_column("country_code", checks=[Check.isin(["KZ"])])

    monkeypatch.setattr(batch_typing, "record_schema", stricter)
    records = [record(), record(country_code="GE"), record(gdpr="x"), record()]
    path = write(tmp_path, "p.csv", csv_text(records))
    loaded = load(path)
    assert loaded.table.num_rows == 2
    assert loaded.numbers == [(2, "country_code"), (3, "gdpr")]
    by_number = {r.number: r for r in loaded.rejected}
    assert "country_code" in by_number[2].reason


def test_validating_a_batch_leaves_no_pandas_objects_behind(tmp_path):
    """pandas' cached accessors put a validated frame's Series in reference cycles, which only the
    cyclic collector frees: with it disabled (as it effectively is while Arrow, not Python,
    allocates), each batch would otherwise stay in memory — 1.5 GB at 100 M records."""
    path = write(tmp_path, "v.csv", csv_text([record(), record(gdpr="x"), record()]))
    [batch] = read_batches(path, TR)  # warm up: the schema and pandas' own caches
    assert batch.valid.num_rows == 2
    gc.collect()
    gc.disable()
    try:
        before = sum(isinstance(o, pd.Series) for o in gc.get_objects())
        for _ in range(5):
            [batch] = read_batches(path, TR)
        after = sum(isinstance(o, pd.Series) for o in gc.get_objects())
    finally:
        gc.enable()
    assert after == before


# ---------------------------------------------------------------------------------------------
# The real samples


def _real_records(path: Path, has_header: bool) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[1:] if has_header else rows


@pytest.mark.parametrize(
    ("name", "kind", "count"),
    [("all_logs_no_header.csv", "none", 364), ("example_positional_header.csv", "positional", 4)],
)
def test_real_sample(real_samples, name, kind, count):
    path = real_samples / name
    assert read_header(path).kind == kind
    loaded = load(path)
    assert loaded.rejected == []
    assert loaded.table.num_rows == count
    records = _real_records(path, has_header=kind != "none")
    assert len(records) == count
    table = loaded.table
    assert table.column("date").cast(pa.int64()).to_pylist() == [epoch_us(r[23]) for r in records]
    assert table.column("sdk_date").to_pylist() == [r[12] for r in records]
    assert table.column("error_message").to_pylist() == [r[1] for r in records]
    for column in BOOLEAN_COLUMNS:
        i = COLUMNS.index(column)
        assert table.column(column).to_pylist() == [r[i] == "True" for r in records]
    assert table.to_pylist() == [expected_row(r) for r in records]


def test_real_sample_first_record_of_positional_file(real_samples):
    table = load(real_samples / "example_positional_header.csv").table
    first = table.to_pylist()[0]
    assert first["date"] == dt.datetime(2021, 9, 12, 10, 31, 19, 384516, tzinfo=dt.UTC)
    assert first["error_message"].count("\n") == 2
    assert '"Programmatic Flow"' in first["error_message"]
    assert first["sdk_date"] == "09/12/2021 10:31:17"
    assert (first["test_mode"], first["gdpr"], first["ccpa"]) == (False, True, False)
    assert first["error_code"] == 0


def test_real_samples_gzipped_with_crlf_and_bom(real_samples, tmp_path):
    """The same records survive the other framings the contract allows."""
    source = real_samples / "all_logs_no_header.csv"
    records = _real_records(source, has_header=False)
    text = "\ufeff" + csv_text(records, [n.upper() for n in COLUMNS], newline="\r\n")
    loaded = load(write(tmp_path, "real.csv.gz", text))
    assert loaded.rejected == []
    assert loaded.table.equals(load(source).table)
