"""Typing and validating one batch of text fields, the records of a file as Arrow parsed them.

Vectorized Arrow kernels turn text into the model's types (a value that cannot be typed is rejected:
not a number, not a boolean as the model spells them, not UTF-8), then the Pandera model with the
run's time range (schema.record_schema) validates every batch: what it rejects is rejected with the
check's message. Valid records come out as a typed Arrow table; invalid ones as `Rejections` naming
the record number (1-based, header excluded), the column and the reason. Apart from the reader
(loader) because none of this knows about files or parsing: it works on one table of text.
"""

import csv
import gc
import io
import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

from alert_pipeline.schema import (
    ARROW_SCHEMA,
    BOOLEAN_COLUMNS,
    COLUMNS,
    INTEGER_COLUMNS,
    MISSING,
    OUTSIDE_TIME_RANGE,
    PANDAS_TYPES,
    SCHEMA,
    TIME_COLUMN,
    record_schema,
)

MICROS = 1_000_000
FAR_US = 2**62  # µs: 146,000 years; any time beyond it is typed as this
NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
INTEGER = r"^\s*[+-]?\d{1,18}\s*$"
TYPED_SCHEMA = pa.schema([field.with_nullable(True) for field in ARROW_SCHEMA])


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


def _texts(column: pa.Array) -> list[str | None]:
    """Values as Python text, with invalid UTF-8 replaced: for reasons and the quarantine only."""
    if pa.types.is_dictionary(column.type):
        column = pc.take(column.dictionary, column.indices)
    return [
        None if value is None else value.decode("utf-8", "replace")
        for value in column.cast(pa.binary()).to_pylist()
    ]


def raw_lines(strings: pa.Table) -> list[str]:
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
    except SchemaErrors as errors:
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
        raws = raw_lines(subset)
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
