"""The `date` and `sdk_date` texts of synthetic records, made from integer times in bulk.

Every text field that depends on time is assembled from small tables of ASCII bytes: gathering
fixed-width rows (numpy void dtypes) is far cheaper than dividing out each digit per record, and
a generator that writes millions of records cannot afford one Python step per record.
"""

from __future__ import annotations

import datetime

import numpy as np
import pyarrow as pa

US = 1_000_000

# sdk_date locale formats, with their shares among devices: DD/MM/YYYY HH:MM:SS,
# DD.MM.YYYY HH:MM:SS, DD/MM/YYYY hh:mm:ss AM, MM/DD/YYYY HH:MM:SS.
_LOCALE_FORMATS = ("%d/%m/%Y ", "%d.%m.%Y ", "%d/%m/%Y ", "%m/%d/%Y ")
LOCALE_SHARES = (0.35, 0.35, 0.1, 0.2)
_TWELVE_HOUR = 2


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of `values` as one `V{width}` item each."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = (48 + (values[:, None] // powers) % 10).astype(np.uint8)
    return np.ascontiguousarray(digits).view(f"V{width}").reshape(-1)


def _time_of_day_table() -> np.ndarray:
    """`HH:MM:SS` (padded) for every second of a day, then `hh:mm:ss AM` for every second."""
    second = np.arange(86_400, dtype=np.int64)
    hour, minute, sec = second // 3600, second // 60 % 60, second % 60
    two = _digits(np.arange(100, dtype=np.int64), 2).view(np.uint8).reshape(100, 2)
    table = np.full((2, 86_400, 11), ord(" "), dtype=np.uint8)
    table[0, :, 0:2] = two[hour]
    table[1, :, 0:2] = two[(hour + 11) % 12 + 1]
    table[:, :, 2] = table[:, :, 5] = ord(":")
    table[:, :, 3:5] = two[minute]
    table[:, :, 6:8] = two[sec]
    table[1, :, 9] = np.where(hour < 12, ord("A"), ord("P"))
    table[1, :, 10] = ord("M")
    return table.view("V11").reshape(-1)


_TIMES_OF_DAY = _time_of_day_table()
_FIVE_DIGITS = _digits(np.arange(100_000, dtype=np.int64), 5)
_THREE_DIGITS = _digits(np.arange(1_000, dtype=np.int64), 3)
_EPOCH_ROW = np.dtype(
    [("hi", "V5"), ("lo", "V5"), ("dot", "V1"), ("ms", "V3"), ("us", "V3"), ("nl", "V1")]
)
_SDK_ROW = np.dtype([("day", "V11"), ("time", "V11")])
MIN_EPOCH_DAY = datetime.date(2001, 9, 10)  # from here to 2286 epoch seconds have 10 digits
MAX_EPOCH_DAY = datetime.date(2286, 11, 19)


def _strings(data: np.ndarray, lengths: np.ndarray) -> pa.StringArray:
    """Wrap ASCII bytes laid end to end as an Arrow string array, without copying each value."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.StringArray.from_buffers(len(lengths), pa.py_buffer(offsets), pa.py_buffer(data))


def format_epochs(us: np.ndarray) -> pa.StringArray:
    """`date` as `{sec}.{usec:06d}` plus the line's end, exact from integer microseconds."""
    sec, usec = np.divmod(us, US)
    hi, lo = np.divmod(sec, 100_000)
    first = int(hi.min())
    his = _digits(np.arange(first, int(hi.max()) + 1, dtype=np.int64), 5)
    ms, micro = np.divmod(usec, 1_000)
    rows = np.empty(len(us), dtype=_EPOCH_ROW)
    rows["hi"] = his[hi - first]
    rows["lo"] = _FIVE_DIGITS[lo]
    rows["dot"] = b"."
    rows["ms"] = _THREE_DIGITS[ms]
    rows["us"] = _THREE_DIGITS[micro]
    rows["nl"] = b"\n"
    return _strings(rows.view(np.uint8), np.full(len(us), _EPOCH_ROW.itemsize, dtype=np.int32))


def format_sdk_dates(sec: np.ndarray, locale: np.ndarray) -> pa.StringArray:
    """`sdk_date` in each device's locale format (see `_LOCALE_FORMATS`)."""
    days, in_day = np.divmod(sec, 86_400)
    first = int(days.min())
    dates = np.array(
        [
            [
                list((datetime.date(1970, 1, 1) + datetime.timedelta(days=d)).strftime(f).encode())
                for f in _LOCALE_FORMATS
            ]
            for d in range(first, int(days.max()) + 1)
        ],
        dtype=np.uint8,
    ).view("V11")
    twelve = locale == _TWELVE_HOUR
    rows = np.empty(len(sec), dtype=_SDK_ROW)
    rows["day"] = dates.reshape(-1)[(days - first) * len(_LOCALE_FORMATS) + locale]
    rows["time"] = _TIMES_OF_DAY[twelve * 86_400 + in_day]
    matrix = rows.view(np.uint8).reshape(len(sec), _SDK_ROW.itemsize)
    lengths = np.where(twelve, 22, 19).astype(np.int32)
    return _strings(matrix[np.arange(_SDK_ROW.itemsize) < lengths[:, None]], lengths)
