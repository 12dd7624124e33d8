"""How a log file names its columns, decided from its first record, and how it is opened.

`read_header` tells a named header (any column order), the positional header 0,1,…,23 and no header
apart, and rejects the file whole (`FileRejected`) when its first record fits none of them or it is
not UTF-8 CSV at all. Kept apart from the streaming reader (loader) so that ingestion can vet a file
before staging it; the reader opens files and raises `FileRejected` through this module too.
"""

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

from alert_pipeline.schema import COLUMNS

# Process-wide, so also for the reader's own passes over a file (loader imports this module).
csv.field_size_limit(2**31 - 1)  # quoted messages may be huge; the record is still one record
HEAD_BYTES = 4 << 20


class FileRejected(Exception):
    """The whole file cannot be read as log records (bad header, not CSV, not gzip, …)."""


@dataclass(frozen=True)
class Header:
    """Column names in file order, and whether the first record is a header to skip."""

    names: tuple[str, ...]
    skip_first_record: bool
    kind: str


def open_binary(path: Path) -> io.BufferedIOBase:
    """The file's bytes, decompressed when its name says gzip."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def read_header(path: Path) -> Header:
    """Decide how the file names its columns, from its first record."""
    try:
        with open_binary(path) as handle:
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
