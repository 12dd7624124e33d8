"""Reading one log file: header detection, streaming CSV parsing, typing and validation per batch.

A file is read in blocks by Arrow's CSV reader with every field as text (no type inference), then
each batch is typed with vectorized Arrow kernels (a value that cannot be typed is rejected: not a
number, not a boolean as the model spells them, not UTF-8) and validated by the Pandera model with
the run's time range (schema.record_schema), every batch: what it rejects is rejected with the
check's message. Valid records come out as typed Arrow batches; invalid ones as `Rejection`s naming
the file, the record number (1-based, header excluded), the column and the reason. Nothing is
written here.
"""

import csv
import gc
import gzip
import io
import os
import queue
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandera.errors
import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from alert_pipeline.schema import (
    ARROW_SCHEMA,
    BOOLEAN_COLUMNS,
    CATEGORY_COLUMNS,
    COLUMNS,
    INTEGER_COLUMNS,
    MISSING,
    OUTSIDE_TIME_RANGE,
    PANDAS_TYPES,
    SCHEMA,
    TIME_COLUMN,
    record_schema,
)

csv.field_size_limit(2**31 - 1)  # quoted messages may be huge; the record is still one record
BLOCK_SIZE = 2 << 20  # parse granularity: small blocks keep the parsed data in cache
LARGE_BLOCK_SIZE = 64 << 20  # the retry for files with records larger than BLOCK_SIZE
BATCH_ROWS = 100_000  # parsed blocks are typed and validated in batches of about this many rows
HEAD_BYTES = 4 << 20
MICROS = 1_000_000
FAR_US = 2**62  # µs: 146,000 years; any time beyond it is typed as this
NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
INTEGER = r"^\s*[+-]?\d{1,18}\s*$"
# What the CSV parser produces: text, dictionary-encoded (by the parsing threads) where few
# distinct values are expected, so the typing below works per distinct value.
PARSE_TYPES = {
    name: (
        pa.dictionary(pa.int32(), pa.string())
        if name in CATEGORY_COLUMNS or name in BOOLEAN_COLUMNS
        else pa.string()
    )
    for name in COLUMNS
}
TYPED_SCHEMA = pa.schema([field.with_nullable(True) for field in ARROW_SCHEMA])


class FileRejected(Exception):
    """The whole file cannot be read as log records (bad header, not CSV, not gzip, …)."""


@dataclass(frozen=True)
class Header:
    """Column names in file order, and whether the first record is a header to skip."""

    names: tuple[str, ...]
    skip_first_record: bool
    kind: str


@dataclass(frozen=True)
class TimeRange:
    """Accepted record times, µs since epoch: [start_us, end_us)."""

    start_us: int
    end_us: int


@dataclass
class Rejections:
    """Invalid records of one batch: parallel lists, so a file with many of them stays cheap."""

    record_numbers: list[int | None]
    columns: list[str | None]
    reasons: list[str]
    raws: list[str]
    days_us: list[int | None]

    @classmethod
    def empty(cls) -> "Rejections":
        return cls([], [], [], [], [])

    def __len__(self) -> int:
        return len(self.record_numbers)


def _open_binary(path: Path) -> io.BufferedIOBase:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def read_header(path: Path) -> Header:
    """Decide how the file names its columns, from its first record."""
    try:
        with _open_binary(path) as handle:
            head = handle.read(HEAD_BYTES)
    except (OSError, EOFError) as error:
        raise FileRejected(
            f"cannot read it: {getattr(error, 'strerror', None) or error}"
        ) from error
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or head[:200].count(b"\x00") > 20:
        raise FileRejected("it looks like UTF-16 text or binary data; files must be UTF-8 CSV")
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    # Bytes that are not UTF-8 only matter here if they are in the header; in a record they
    # reject that record later.
    text = head.decode("utf-8", "replace")
    try:
        # newline="": a lone \r ends a record, as it does for Arrow, instead of raising.
        first = next(csv.reader(io.StringIO(text, newline="")), None)
    except csv.Error as error:
        raise FileRejected(f"the first record cannot be read as CSV: {error}") from error
    if not first:
        raise FileRejected("empty: no header and no records")
    fields = [f.strip() for f in first]
    lowered = [f.lower() for f in fields]
    positional = lowered == [str(i) for i in range(len(COLUMNS))]
    named = sum(f in COLUMNS for f in lowered) * 2 >= len(COLUMNS)
    if (positional or named) and any("\n" in f or "\r" in f for f in first):
        # Arrow skips a header by lines, not by records: it would read the rest of it as data.
        raise FileRejected("the header spans several lines (a name holds a newline)")
    if positional:
        return Header(COLUMNS, True, "positional")
    if named:
        missing = sorted(set(COLUMNS) - set(lowered))
        unexpected = sorted(set(lowered) - set(COLUMNS))
        duplicated = sorted({f for f in lowered if lowered.count(f) > 1})
        if missing or unexpected or duplicated:
            raise FileRejected(
                "the header does not match the 24 log columns "
                f"(missing: {', '.join(missing) or 'none'}; "
                f"unexpected: {', '.join(u or '(empty name)' for u in unexpected) or 'none'}"
                + (f"; duplicated: {', '.join(duplicated)}" if duplicated else "")
                + ")"
            )
        return Header(tuple(lowered), True, "names")
    if len(fields) == len(COLUMNS):
        return Header(COLUMNS, False, "none")
    raise FileRejected(
        f"the first record has {len(fields)} fields and is not a header; expected the "
        f"24 column names, the positional header 0,1,…,23, or 24 fields of data"
    )


def _texts(column: pa.Array) -> list[str | None]:
    """Values as Python text, with invalid UTF-8 replaced: for reasons and the quarantine only."""
    if pa.types.is_dictionary(column.type):
        column = pc.take(column.dictionary, column.indices)
    return [
        None if value is None else value.decode("utf-8", "replace")
        for value in column.cast(pa.binary()).to_pylist()
    ]


def _raw_lines(strings: pa.Table) -> list[str]:
    """Records as CSV text again (RFC 4180 quoting), for the quarantine's `raw` column."""
    columns = [_texts(column.combine_chunks()) for column in strings.columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    lines = []
    for fields in zip(*columns, strict=True):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(["" if value is None else value for value in fields])
        lines.append(buffer.getvalue()[:-1])
    return lines


def _truncate(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _utf8_problems(values: pa.Array) -> np.ndarray | None:
    """Which values are not valid UTF-8 (None when all are: the common, fast case)."""
    try:
        values.validate(full=True)
        return None
    except pa.ArrowInvalid:
        return np.array([not _is_utf8(v) for v in values.cast(pa.binary()).to_pylist()], bool)


def _is_utf8(value: bytes | None) -> bool:
    try:
        return value is None or bool(value.decode("utf-8")) or True
    except UnicodeDecodeError:
        return False


class BatchTyper:
    """Turns one batch of text fields into typed columns, collecting what does not fit."""

    def __init__(self, strings: pa.Table) -> None:
        self.strings = strings
        self.problems: list[tuple[str, np.ndarray, str]] = []

    def _flag(self, column: str, mask: pa.Array | np.ndarray, reason: str) -> None:
        bad = np.asarray(pc.fill_null(mask, False)) if isinstance(mask, pa.Array) else mask
        if bad.any():
            self.problems.append((column, bad, reason))

    def _parse(self, name: str, column: pa.Array) -> pa.Array:
        """Type one column. Text columns of few distinct values arrive dictionary-encoded from
        the parser, so their checks and conversions run once per distinct value."""
        if pa.types.is_dictionary(column.type):
            return self._parse_encoded(name, column)
        if name == TIME_COLUMN:
            return self._parse_time(column)
        if name in INTEGER_COLUMNS:
            return self._parse_integer(name, column)
        return column

    def _parse_encoded(self, name: str, column: pa.DictionaryArray) -> pa.Array:
        values, indices = column.dictionary, column.indices
        if name in BOOLEAN_COLUMNS:  # spelled as the model says
            spellings = SCHEMA.columns[name].metadata
            lowered = pc.utf8_lower(pc.utf8_trim_whitespace(values))
            known = spellings["true"] + spellings["false"]
            unknown = pc.invert(pc.is_in(lowered, pa.array(known)))
            self._flag(name, pc.take(unknown, indices), f"not a boolean ({'/'.join(known)})")
            return pc.take(pc.is_in(lowered, pa.array(spellings["true"])), indices)
        return column

    def _parse_integer(self, name: str, text: pa.Array) -> pa.Array:
        try:
            return pc.cast(text, pa.int64())  # the common case: every value is a plain integer
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        ok = pc.match_substring_regex(text, INTEGER)
        self._flag(name, pc.invert(ok), "not an integer (up to 18 digits)")
        digits = pc.replace_substring_regex(pc.utf8_trim_whitespace(text), r"^\+", "")
        return pc.cast(pc.if_else(ok, digits, None), pa.int64())

    def _parse_time(self, text: pa.Array) -> pa.Array:
        try:
            seconds = pc.cast(text, pa.float64())  # the common case: every value is a number
            ok = np.isfinite(np.asarray(pc.fill_null(seconds, np.nan)))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            ok = np.asarray(pc.fill_null(pc.match_substring_regex(text, NUMBER), False))
            trimmed = pc.if_else(pa.array(ok), pc.utf8_trim_whitespace(text), None)
            seconds = pc.cast(trimmed, pa.float64())
            ok &= np.isfinite(np.asarray(pc.fill_null(seconds, np.nan)))
        blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(text), ""), True)
        self._flag(TIME_COLUMN, ~np.asarray(blank) & ~ok, "not a number")  # blank: missing
        micros = np.round(np.where(ok, np.asarray(pc.fill_null(seconds, 0.0)), 0.0) * MICROS)
        self.micros = np.where(ok, micros, np.nan)
        # Far outside any accepted time range, and still a timestamp: the model rejects it.
        representable = np.clip(micros, -FAR_US, FAR_US).astype(np.int64)
        return pa.array(representable, pa.int64(), mask=~ok).cast(pa.timestamp("us", tz="UTC"))

    def _checked_utf8(self, name: str, column: pa.Array) -> pa.Array:
        """Bytes that are not UTF-8 reject their record; the values are made text (with
        replacement characters) so that the kernels below can run over the batch."""
        encoded = pa.types.is_dictionary(column.type)
        values = column.dictionary if encoded else column
        problems = _utf8_problems(values)
        if problems is None:
            return column
        repaired = pa.array(_texts(values), pa.string())
        if encoded:
            self._flag(
                name,
                pc.fill_null(pc.take(pa.array(problems), column.indices), False),
                "not valid UTF-8 text",
            )
            return pa.DictionaryArray.from_arrays(column.indices, repaired)
        self._flag(name, problems, "not valid UTF-8 text")
        return repaired

    def typed(self) -> pa.Table:
        strings = self.strings.unify_dictionaries()
        arrays = [
            self._parse(name, self._checked_utf8(name, strings.column(name).combine_chunks()))
            for name in COLUMNS
        ]
        return pa.Table.from_arrays(arrays, schema=TYPED_SCHEMA)


def _model_failures(typed: pa.Table, time_range: TimeRange) -> list[tuple[str, np.ndarray, str]]:
    """What the Pandera model (with the run's time range) rejects in a typed batch, as
    (column, rows, message) like the typer's problems. Every batch is validated."""
    if typed.num_rows == 0:
        return []
    frame = typed.to_pandas(types_mapper=PANDAS_TYPES.get)
    try:
        with warnings.catch_warnings():  # pandera's own use of a deprecated pandas concat
            warnings.simplefilter("ignore", FutureWarning)
            record_schema(time_range.start_us, time_range.end_us).validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        if cases["index"].isna().any():  # a column-level failure: the typing is broken
            raise
        found: dict[tuple[str, str], np.ndarray] = {}
        for column, check, index in zip(
            cases["column"], cases["check"], cases["index"], strict=True
        ):
            message = MISSING if check == "not_nullable" else str(check)
            rows = found.setdefault((column, message), np.zeros(typed.num_rows, dtype=bool))
            rows[int(index)] = True
        return [(column, rows, message) for (column, message), rows in found.items()]
    finally:
        # pandas' cached accessors (`.str`, `.cat`) put the batch's Series in reference cycles:
        # without this, batches pile up until a full collection (1.5 GB at 100 M records). The
        # young generations are enough and cost ~0.2 ms a batch; a full collection costs 90 ms.
        del frame
        gc.collect(1)
    return []


def type_batch(
    strings: pa.Table, first_ordinal: int, time_range: TimeRange
) -> tuple[pa.Table, Rejections]:
    """Typed valid records of a text batch, and the rejected ones with their reasons: values
    that cannot be typed (the typer), then what the model rejects in the others' columns."""
    typer = BatchTyper(strings)
    typed = typer.typed()
    none = np.zeros(typed.num_rows, dtype=bool)
    unparsed: dict[str, np.ndarray] = {}
    for column, rows, _ in typer.problems:
        unparsed[column] = unparsed.get(column, none) | rows
    problems = typer.problems + [
        (column, rows & ~unparsed.get(column, none), message)
        for column, rows, message in _model_failures(typed, time_range)
    ]
    problems.sort(key=lambda problem: COLUMNS.index(problem[0]))
    invalid = none.copy()
    day_us = typer.micros.copy()  # the quarantine day: none for a time outside the range
    for _, rows, message in problems:
        invalid |= rows
        if message == OUTSIDE_TIME_RANGE:
            day_us[rows] = np.nan
    rejected = np.flatnonzero(invalid)
    rejections = Rejections.empty()
    if len(rejected):
        subset = strings.take(pa.array(rejected))
        raws = _raw_lines(subset)
        shown = {name: _texts(subset.column(name).combine_chunks()) for name, _, _ in problems}
        for position, (row, raw) in enumerate(zip(rejected, raws, strict=True)):
            messages = [
                (column, f"{column}: {reason} ({_truncate(shown[column][position])})")
                for column, bad, reason in problems
                if bad[row]
            ]
            day = day_us[row]
            rejections.record_numbers.append(first_ordinal + int(row) + 1)
            rejections.columns.append(messages[0][0])
            rejections.reasons.append("; ".join(m for _, m in messages))
            rejections.raws.append(raw)
            rejections.days_us.append(None if np.isnan(day) else int(day))
    valid = typed.filter(pa.array(~invalid)).cast(ARROW_SCHEMA)
    return valid, rejections


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
    with _open_binary(path) as handle:
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
    rejections.raws.append(_raw_lines(table.select(list(COLUMNS)).slice(table.num_rows - 1))[0])
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
            check_utf8=False,  # checked per value below: one bad record must not sink a file
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
    with _open_binary(path) as handle:
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
