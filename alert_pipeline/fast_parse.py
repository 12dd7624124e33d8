"""The fast path for clean files: Polars' multi-threaded CSV reader hands over text batches.

It parses a plain (not gzipped) file into the same text batches Arrow's reader gives the loader,
3–4× faster on two cores. Where Polars would read a record differently from Arrow, it stops with
`NeedsCarefulReading` and the file is read again by Arrow's reader (loader.read_batches), which
handles every malformed case: what `unclear_bytes` finds (a lone carriage return, text after a
closing quote), a record with fewer fields (Polars pads it with nulls: seen as a
null in the last column, which also catches blank lines and records with an empty last field),
more fields, bytes that are not UTF-8, stray quotes, a quoted value cut off by the end of the
file (Polars fails on all of those); and a batch that may hold a record larger than Arrow's parse
block, which Arrow's reader may have to reject. Typing and validation are the loader's.
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class NeedsCarefulReading(Exception):
    """The file must be read by Arrow's reader (see the module docstring)."""


def polars_tables(
    path: Path,
    names: tuple[str, ...],
    skip_header: bool,
    rows: int,
    parse_types: dict,
    record_bytes: int,
) -> Iterator[pa.Table]:
    """Text tables of about `rows` records in file order, typed as `parse_types` (text, or
    dictionary-encoded text), columns in file order; raises NeedsCarefulReading, also for a
    record that may be larger than `record_bytes`."""
    import polars as pl

    if path.name.endswith(".gz"):
        raise NeedsCarefulReading("gzip: Polars decompresses it whole")
    try:
        text_path = str(path)
        text_path.encode()
    except UnicodeEncodeError:
        raise NeedsCarefulReading("the file name is not UTF-8") from None
    encoded = {n for n, t in parse_types.items() if pa.types.is_dictionary(t)}
    frame = pl.scan_csv(
        text_path,
        has_header=False,
        skip_rows=1 if skip_header else 0,
        schema={name: pl.Categorical if name in encoded else pl.String for name in names},
        null_values=[""],  # quoted ones too, as Arrow's reader does
        quote_char='"',
        raise_if_empty=False,
    )
    target = pa.schema([(name, parse_types[name]) for name in names])
    last = names[-1]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cr-scan") as scanner:
        unclear = scanner.submit(unclear_bytes, path)
        try:
            for batch in frame.collect_batches(chunk_size=rows, maintain_order=True):
                if batch.get_column(last).null_count():
                    raise NeedsCarefulReading(f"a record has no {last} (fewer fields, blank line)")
                table = batch.to_arrow().cast(target)
                if _record_bytes_bound(table) > record_bytes:
                    raise NeedsCarefulReading(f"a record may be larger than {record_bytes} bytes")
                if unclear.done() and unclear.result():
                    break
                yield table
        except pl.exceptions.PolarsError as error:
            raise NeedsCarefulReading(str(error).splitlines()[0]) from error
        if unclear.result():
            raise NeedsCarefulReading(unclear.result())


QUOTE, COMMA, LF, CR = b'",\n\r'
SCAN_BYTES = 1 << 24


def unclear_bytes(path: Path) -> str | None:
    """Why Polars could read this file differently from Arrow without failing, or None. Run
    beside the parsing, over the file in slices of SCAN_BYTES (with numpy: ~1 GB/s):

    - a carriage return not followed by a line feed: a line end for Arrow, not for Polars;
    - text after a closing quote (`"ab"x`, `""x`), which each reader keeps differently: an odd
      run of quotes after text, or an even one (`""`: an empty quoted value) at the start of a
      field, followed by text. Inside a quoted value escaped quotes come in even runs; a closing
      quote is followed by a comma or a line end. A line end counts both as text and as the
      start of a field: such files are merely read carefully.
    """
    data = np.memmap(path, dtype=np.uint8, mode="r") if path.stat().st_size else np.zeros(0)
    size, low = len(data), 0

    def around(positions: np.ndarray, offset: int) -> np.ndarray:
        """The bytes at `positions` + offset (a comma outside the file)."""
        at = positions + offset
        inside = (at >= 0) & (at < size)
        return np.where(inside, data[np.clip(at, 0, max(size - 1, 0))], COMMA)

    while low < size:
        high = min(low + SCAN_BYTES, size)
        while high < size and data[high - 1] == QUOTE:  # a run of quotes stays in one slice
            high += 1
        part = data[low:high]
        returns = np.flatnonzero(part == CR) + low
        if len(returns) and (around(returns, 1) != LF).any():
            return "a carriage return ends a line on its own"
        quotes = np.flatnonzero(part == QUOTE)
        if len(quotes):
            breaks = np.diff(quotes) != 1
            first = quotes[np.r_[True, breaks]] + low
            last = quotes[np.r_[breaks, True]] + low
            odd = (last - first) % 2 == 0
            before, after = around(first, -1), around(last, 1)
            text_after = (after != COMMA) & (after != LF) & (after != CR)
            field_start = (before == COMMA) | (before == LF) | (before == CR)
            if (text_after & ((odd & (before != COMMA)) | (~odd & field_start))).any():
                return "text after a closing quote"
        low = high
    return None


def _record_bytes_bound(table: pa.Table) -> int:
    """At least the size of the table's largest record: the sum of each column's longest value."""
    bound = 0
    for column in table.columns:
        column = column.combine_chunks()
        values = column.dictionary if pa.types.is_dictionary(column.type) else column
        if len(values):
            bound += pc.max(pc.binary_length(values)).as_py() or 0
    return bound
