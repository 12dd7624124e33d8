"""The fast path (Polars' reader) reads every file it accepts exactly as the careful path (Arrow's
reader) does, and hands every other file over to it: differential tests on hostile and odd files."""

import gzip
import os
import random
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_pipeline.fast_parse import NeedsCarefulReading
from alert_pipeline.loader import FileRejected, TimeRange, read_batches, read_header
from alert_pipeline.schema import ARROW_SCHEMA, COLUMNS
from alert_pipeline_tests.helpers import csv_text, record
from alert_pipeline_tests.test_bad_input import hostile_bytes
from alert_pipeline_tests.test_schema import ODD_VALUES

TR = TimeRange(1_600_000_000 * 1_000_000, 1_700_000_000 * 1_000_000)
DIFFERENTIAL = settings(
    max_examples=int(os.environ.get("FAST_PARSE_EXAMPLES", 300)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def outcome(path: Path, careful: bool) -> tuple:
    """Everything a read gives: the valid rows, and each rejection's number, column, reason,
    raw record and day; or the reason the file was rejected whole."""
    try:
        batches = list(read_batches(path, TR, read_header(path), careful=careful))
    except FileRejected as rejected:
        return ("rejected", type(rejected).__name__)
    valid = pa.concat_tables([b.valid for b in batches]) if batches else ARROW_SCHEMA.empty_table()
    rejections = [
        row
        for b in batches
        for row in zip(
            b.rejections.record_numbers,
            b.rejections.columns,
            b.rejections.reasons,
            b.rejections.raws,
            b.rejections.days_us,
            strict=True,
        )
    ]
    skipped = [s for b in batches for s in b.skipped_records]
    return valid.to_pylist(), rejections, skipped


def check_fast_equals_careful(path: Path) -> bool:
    """True when the fast path read the file (and then exactly as the careful one did)."""
    try:
        fast = outcome(path, careful=False)
    except NeedsCarefulReading:
        return False
    assert fast == outcome(path, careful=True)
    return True


@DIFFERENTIAL
@given(hostile_bytes())
def test_hostile_files_read_fast_are_read_exactly_as_carefully(tmp_path, case) -> None:
    data, _ = case  # plain: a gzipped file always takes the careful path
    path = tmp_path / "hostile.csv"
    path.write_bytes(data)
    check_fast_equals_careful(path)


@DIFFERENTIAL
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 30), layout=st.integers(0, 5))
def test_odd_values_read_fast_are_read_exactly_as_carefully(tmp_path, seed, size, layout) -> None:
    """Well-formed CSV with odd values (blank, quoted empty, spaces, quotes, newlines, numbers
    that are not quite numbers): the fast path takes it and types it identically."""
    rng = random.Random(seed)
    records = [
        record(**{name: rng.choice(ODD_VALUES) for name in rng.sample(COLUMNS, rng.randint(0, 6))})
        for _ in range(size)
    ]
    order = list(COLUMNS)
    if layout == 1:
        rng.shuffle(order)
    header = None if layout == 2 else [str(i) for i in range(24)] if layout == 3 else order
    rows = [[r[COLUMNS.index(name)] for name in order] for r in records]
    text = csv_text(rows, header, newline="\r\n" if layout == 4 else "\n")
    if layout == 5:
        text = text.replace(',"",', ",,")  # unquoted empty fields as well as quoted ones
    path = tmp_path / "odd.csv"
    path.write_text(text)
    took_fast = check_fast_equals_careful(path)
    quoted_line_start = text.startswith('"') or '\n"' in text  # read carefully, to be safe
    if all(r[-1].strip() for r in rows) and not quoted_line_start:
        assert took_fast  # nothing unclear: the fast path took it


QUOTED = csv_text([record(), record(error_message="a,b")], list(COLUMNS)).encode()


@pytest.mark.parametrize(
    ("name", "data", "why"),
    [
        ("gz", gzip.compress(csv_text([record()], list(COLUMNS)).encode()), "gzip"),
        ("cr", csv_text([record()], list(COLUMNS), "\r").encode(), "carriage return"),
        ("cr-late", QUOTED.replace(b'"a,b"', b'"a,b"\r""'), "carriage return"),
        ("after-quote", QUOTED.replace(b'"a,b"', b'"a,b"x""'), "text after a closing quote"),
        ("short", csv_text([record(), record()[:23]], list(COLUMNS)).encode(), "has no date"),
        ("blank", csv_text([record()], list(COLUMNS)).encode() + b"\n\n", "has no date"),
        ("long", csv_text([record(), [*record(), "x"]], list(COLUMNS)).encode(), "more fields"),
        (
            "utf8",
            csv_text([record(os="\udcff")], list(COLUMNS)).encode(errors="surrogateescape"),
            "utf-8",
        ),
        ("cut", csv_text([record()], list(COLUMNS)).encode() + b'0,"cut', "parse"),
    ],
)
def test_unclear_files_are_handed_to_the_careful_reader(tmp_path, name, data, why) -> None:
    path = tmp_path / (f"{name}.csv.gz" if name == "gz" else f"{name}.csv")
    path.write_bytes(data)
    with pytest.raises(NeedsCarefulReading, match=f"(?i){why}"):
        list(read_batches(path, TR, careful=False))


def test_a_record_larger_than_the_parse_block_is_handed_over(tmp_path) -> None:
    path = tmp_path / "big.csv"
    path.write_text(csv_text([record(error_message="m" * 5000)], list(COLUMNS)))
    batches = list(read_batches(path, TR, block_size=1 << 20, careful=False))
    assert sum(b.valid.num_rows for b in batches) == 1
    with pytest.raises(NeedsCarefulReading, match="larger than 4096 bytes"):
        list(read_batches(path, TR, block_size=4096, careful=False))
