"""Reading one log file as a stream of typed, validated batches.

A file is read in blocks by Arrow's CSV reader with every field as text (no type inference), on a
thread of its own, and the blocks are gathered into batches that batch_typing types and validates.
What only the reader can know is handled here: records with the wrong number of fields (Arrow skips
them; a second pass numbers them), a last record cut off inside a quoted value, records larger than
a parse block or not decodable (`RecordTooLarge`, `UndecodableRecord`: the caller reads again with
larger blocks or `repair`), and how far into the file each batch was parsed. Nothing is written here.
"""

import csv
import io
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from alert_pipeline.batch_typing import Rejections, TimeRange, raw_lines, type_batch
from alert_pipeline.header import FileRejected, Header, open_binary, read_header
from alert_pipeline.schema import (
    ARROW_SCHEMA,
    BOOLEAN_COLUMNS,
    CATEGORY_COLUMNS,
    COLUMNS,
    TIME_COLUMN,
)

BLOCK_SIZE = 2 << 20  # parse granularity: small blocks keep the parsed data in cache
LARGE_BLOCK_SIZE = 64 << 20  # the retry for files with records larger than BLOCK_SIZE
BATCH_ROWS = 100_000  # parsed blocks are typed and validated in batches of about this many rows
# What the CSV parser produces: text, dictionary-encoded (by the parsing threads) where few
# distinct values are expected, so the typing (batch_typing) works per distinct value.
PARSE_TYPES = {
    name: (
        pa.dictionary(pa.int32(), pa.string())
        if name in CATEGORY_COLUMNS or name in BOOLEAN_COLUMNS
        else pa.string()
    )
    for name in COLUMNS
}


@dataclass(frozen=True)
class Batch:
    """Valid records and rejections; the last batch of a file may carry `skipped_records`:
    record numbers Arrow skipped, after which earlier record numbers must be shifted."""

    valid: pa.Table
    rejections: Rejections
    skipped_records: tuple[int, ...] = ()
    bytes_read: int = 0  # of the file (compressed, for gzip) when the batch was parsed


def renumber(parsed_numbers: np.ndarray, skipped: tuple[int, ...]) -> np.ndarray:
    """Record numbers among parsed records → record numbers in the file, given the (sorted)
    record numbers Arrow skipped: the n-th parsed record is the n-th number not skipped."""
    numbers = np.asarray(parsed_numbers, dtype=np.int64)
    if not skipped:
        return numbers
    gaps = np.asarray(skipped, dtype=np.int64) - np.arange(1, len(skipped) + 1)
    return numbers + np.searchsorted(gaps, numbers, side="left")


class _InvalidRows:
    """Collects records with the wrong number of fields (Arrow skips them), thread-safely."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def __call__(self, row: pacsv.InvalidRow) -> str:
        with self._lock:
            self.rows.append((row.actual_columns, row.text))
        return "skip"


class RecordTooLarge(FileRejected):
    """A record does not fit in one parse block; reading again with larger blocks may work."""


class UndecodableRecord(FileRejected):
    """A record with the wrong number of fields holds bytes that are not UTF-8: pyarrow cannot
    hand it to the invalid-row handler and fails the file; reading again with `repair` works."""


class _ChunkStream(io.RawIOBase):
    """A readable stream over an iterator of byte chunks, for Arrow through `pa.PythonFile`."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()


def _repaired(path: Path) -> Iterator[bytes]:
    """The file's records again (RFC 4180, CRLF), with bytes that are not UTF-8 replaced in the
    records with the wrong number of fields only: the others keep theirs, to be rejected by
    value. Read as Latin-1, one character per byte, so that every other value keeps its bytes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # CRLF: a lone \r in a value is quoted
    with open_binary(path) as handle:
        text = io.TextIOWrapper(handle, encoding="latin-1", newline="")
        for record in csv.reader(text):
            if record and len(record) != len(COLUMNS):
                record = [
                    f.encode("latin-1").decode("utf-8", "replace").encode().decode("latin-1")
                    for f in record
                ]
            writer.writerow(record)
            if buffer.tell() >= BLOCK_SIZE:
                yield buffer.getvalue().encode("latin-1")
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode("latin-1")


def _last_value(table: pa.Table) -> bytes:
    """The last field of the last record of a parsed table (in file order), as bytes."""
    value = table.column(table.num_columns - 1).slice(table.num_rows - 1).combine_chunks()
    if pa.types.is_dictionary(value.type):
        value = value.dictionary_decode()
    return value.cast(pa.binary())[0].as_py() or b""


def _ends_inside_quotes(path: Path, last_value: bytes) -> bool:
    """Whether the file ends inside a quoted value that reads `last_value` so far, i.e. was cut
    off in the middle of its last record: Arrow takes such a record as complete. Plain files
    only: a gzip stream cut short is rejected whole, and checking would decompress it again."""
    if path.name.endswith(".gz"):
        return False
    opened = b'"' + last_value.replace(b'"', b'""')
    with open(path, "rb") as handle:
        handle.seek(max(0, handle.seek(0, io.SEEK_END) - len(opened) - 3))
        tail = handle.read()
    return tail.endswith(opened) and not tail.rstrip(b"\r\n").endswith(opened + b'"')


def _typed_batch(table: pa.Table, parsed: int, time_range: TimeRange, position: int) -> Batch:
    valid, rejections = type_batch(table.select(list(COLUMNS)), parsed, time_range)
    return Batch(valid, rejections, bytes_read=position)


def _cut_off(batch: Batch, table: pa.Table, number: int, column: str) -> Batch:
    """The batch with its last record (record `number`, cut off inside a quoted value) rejected,
    unless it is rejected already."""
    if batch.rejections.record_numbers[-1:] == [number]:
        return batch
    valid, rejections = batch.valid, batch.rejections
    rejections.record_numbers.append(number)
    rejections.columns.append(column)
    rejections.reasons.append(
        f"{column}: quoted value not closed at the end of the file (the file was cut off?)"
    )
    rejections.raws.append(raw_lines(table.select(list(COLUMNS)).slice(table.num_rows - 1))[0])
    rejections.days_us.append(valid.column(TIME_COLUMN)[-1].value)
    return Batch(valid.slice(0, valid.num_rows - 1), rejections, bytes_read=batch.bytes_read)


def _prefetched(batches: Iterator[pa.RecordBatch], depth: int = 8) -> Iterator[pa.RecordBatch]:
    """Pull parsed blocks on a thread of their own: Arrow's streaming reader parses one block at
    a time as it is asked, so this overlaps parsing with the typing and encoding of earlier
    batches (all of them release the GIL). At most `depth` blocks wait, so memory stays flat."""
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    finished = object()
    stop = threading.Event()

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def pump() -> None:
        try:
            for batch in batches:
                put(batch)
                if stop.is_set():
                    return
            put(finished)
        except BaseException as error:  # handed to the consumer, raised there
            put(error)

    thread = threading.Thread(target=pump, name="csv-parse", daemon=True)
    thread.start()
    try:
        while (item := waiting.get()) is not finished:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _coalesced(reader: Iterator[pa.RecordBatch]) -> Iterator[pa.Table]:
    """Parsed blocks gathered into tables of about BATCH_ROWS rows: per-batch work (typing,
    validation, Parquet row groups) is then amortized, while memory stays flat."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for record_batch in _prefetched(reader):
        pending.append(record_batch)
        rows += record_batch.num_rows
        if rows >= BATCH_ROWS:
            yield pa.Table.from_batches(pending)
            pending, rows = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _arrow_tables(
    stream: pa.NativeFile, header: Header, block_size: int, invalid_rows: _InvalidRows
) -> Iterator[pa.Table]:
    reader = pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(
            column_names=list(header.names),
            skip_rows=1 if header.skip_first_record else 0,
            block_size=block_size or BLOCK_SIZE,
        ),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid_rows),
        convert_options=pacsv.ConvertOptions(
            column_types=PARSE_TYPES,
            null_values=[""],
            strings_can_be_null=True,
            check_utf8=False,  # checked per value when typed: one bad record must not sink a file
            quoted_strings_can_be_null=True,
        ),
    )
    return _coalesced(reader)


def read_batches(
    path: Path,
    time_range: TimeRange,
    header: Header | None = None,
    block_size: int = 0,
    repair: bool = False,
) -> Iterator[Batch]:
    """Stream a file as typed, validated batches. Raises `FileRejected` if it cannot be parsed,
    `RecordTooLarge` if a record is larger than the parse block, `UndecodableRecord` if a record
    with the wrong number of fields holds bytes that are not UTF-8.

    The last batch carries the records with the wrong number of fields, numbered by a second,
    sequential pass over the file that only happens when there are such records. A last record
    cut off inside a quoted value is rejected rather than stored as if it were complete.
    `repair` (for `UndecodableRecord`) has Arrow read the file as `_repaired` gives it: slower.
    """
    header = header or read_header(path)
    invalid_rows = _InvalidRows()
    raw = None  # the file, to tell how far the reader is (not known for a repaired file)
    if repair:
        stream = pa.PythonFile(io.BufferedReader(_ChunkStream(_repaired(path))), mode="r")
    else:
        compression = "gzip" if path.name.endswith(".gz") else None
        # Opened by its bytes: a file name need not be UTF-8.
        raw = pa.OSFile(os.fsencode(path))
        stream = pa.input_stream(raw, compression=compression)
    try:
        tables = _arrow_tables(stream, header, block_size, invalid_rows)
        # Each table is typed once the next one is read, so that the last one is known as such.
        parsed, held = 0, None
        for table in tables:
            if held is not None:
                yield _typed_batch(held, parsed, time_range, raw.tell() if raw else 0)
                parsed += held.num_rows
            held = table
        # The reader is done: every record with the wrong number of fields has been seen.
        wrong = _wrong_field_counts(path, header, invalid_rows) if invalid_rows.rows else None
        if held is not None:
            batch = _typed_batch(held, parsed, time_range, raw.tell() if raw else 0)
            last_is_held = wrong is None or wrong[2]  # the file's last record is Arrow's last
            if last_is_held and _ends_inside_quotes(path, _last_value(held)):
                batch = _cut_off(batch, held, parsed + held.num_rows, header.names[-1])
            yield batch
        if wrong is not None:
            yield Batch(ARROW_SCHEMA.empty_table(), wrong[0], wrong[1])
    except (pa.ArrowInvalid, OSError, EOFError) as error:
        if header.skip_first_record and "skip initial" in str(error):
            return  # a header and no records, without a final newline
        if "straddling" in str(error) or "straddles" in str(error):
            raise RecordTooLarge(
                f"a record is larger than {(block_size or BLOCK_SIZE) >> 20} MB"
            ) from error
        if not repair and f"Expected {len(header.names)} columns" in str(error):
            # The invalid-row handler skips every such record, unless pyarrow failed to decode it.
            raise UndecodableRecord(
                "a record with the wrong number of fields is not valid UTF-8"
            ) from error
        raise FileRejected(f"it cannot be parsed as CSV: {error}") from error
    finally:
        stream.close()


def _wrong_field_counts(
    path: Path, header: Header, skipped: _InvalidRows
) -> tuple[Rejections, tuple[int, ...], bool]:
    """Records Arrow skipped for their field count, numbered by a sequential pass over the file,
    and whether the file's last record has the right number of fields.

    If that pass disagrees with Arrow on how many there are, the numbers are left unknown rather
    than guessed (and the last record is not claimed to be complete).
    """
    numbers: list[tuple[int, int, str]] = []
    last_fields = 0
    with open_binary(path) as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="replace", newline="")
        records = csv.reader(text)
        if header.skip_first_record:
            next(records, None)
        for number, record in enumerate((r for r in records if r), start=1):
            last_fields = len(record)
            if len(record) != len(COLUMNS):
                numbers.append((number, len(record), ",".join(record)))
    agree = len(numbers) == len(skipped.rows)
    rows = numbers if agree else [(None, fields, text) for fields, text in skipped.rows]
    rejections = Rejections.empty()
    for number, fields, text in rows:
        rejections.record_numbers.append(number)
        rejections.columns.append(None)
        rejections.reasons.append(f"expected {len(COLUMNS)} fields, found {fields}")
        rejections.raws.append(text)
        rejections.days_us.append(None)
    skipped_numbers = tuple(n for n, _, _ in numbers) if agree else ()
    return rejections, skipped_numbers, agree and last_fields == len(COLUMNS)
