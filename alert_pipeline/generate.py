"""Synthetic mobile-SDK logs in the 24-column format, shaped like the real samples, with planted bursts.

The real data is tiny (368 records), so demos, tests and load tests need a generator that imitates
its value shapes (quoted multi-line messages, mixed-locale `sdk_date`, `True`/`False`, epoch `date`
with 6 decimals) and plants known incidents, including one that crosses midnight.

Speed and memory: records are made in chunks of at most `CHUNK_ROWS` with numpy, never one Python
step per record. Each line is the join of five pre-escaped pieces (event, device head, `sdk_date`,
device tail, `date`) done by Arrow compute, and the joined buffer is written as is. Arrow's own
`CSVWriter` is not used on purpose: with `quoting_style="needed"` it quotes every string value
(checked on pyarrow 26), unlike the real files, and `"none"` refuses the quoted messages.
"""

from __future__ import annotations

import datetime
import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alert_pipeline.atomic import atomic_file
from alert_pipeline.date_text import (
    MAX_EPOCH_DAY,
    MIN_EPOCH_DAY,
    US,
    format_epochs,
    format_sdk_dates,
)
from alert_pipeline.progress import Progress
from alert_pipeline.schema import COLUMNS
from alert_pipeline.synthetic_population import (
    BUNDLES,
    Events,
    Population,
    build_events,
    build_population,
)

CHUNK_ROWS = 100_000  # measured: larger chunks cost more in page faults than they save
DAY_US = 86_400 * US
MINUTES_PER_DAY = 1_440

BREACH_THRESHOLD = 10  # "more than 10": a burst needs at least 11 events
DISORDER_SHARE = 0.03  # share of neighbour pairs swapped, as collectors interleave
GZIP_LEVEL = 1  # zlib is the bottleneck when compressing: level 1 is twice as fast as 6

HeaderKind = Literal["names", "positional", "none"]


class _Sink(Protocol):
    def write(self, data: bytes | memoryview, /) -> int: ...


@dataclass(frozen=True)
class PlantedBurst:
    """A burst of fatal events put in on purpose, so tests and demos know which incidents to expect.

    `kind` is `global` (many bundles within about 30 s), `bundle` (one bundle over 10–40 minutes,
    never more than a few a minute) or `midnight` (a global burst split across two UTC days).
    """

    kind: str
    bundle_id: str | None
    start_epoch: float
    end_epoch: float
    events: int


@dataclass(frozen=True)
class GeneratedLogs:
    """What `generate_logs` wrote: the files, the record count and the bursts it planted."""

    files: list[Path]
    rows: int
    planted: list[PlantedBurst]


# --- planning: rows per day and planted bursts -----------------------------------------------


@dataclass(frozen=True)
class _Planted:
    """Planted events of one day, sorted by time."""

    us: np.ndarray
    device: np.ndarray
    event: np.ndarray


def _mixed_devices(rng: np.random.Generator, pop: Population, n: int) -> np.ndarray:
    """Devices of many apps, taking apps in turn so no one app gets more than a few events."""
    apps = rng.permutation(len(pop.by_bundle))
    return np.array([rng.choice(pop.by_bundle[apps[j % len(apps)]]) for j in range(n)])


def _plan(
    rng: np.random.Generator, pop: Population, events: Events, day_rows: np.ndarray, t0_us: int
) -> tuple[list[_Planted], list[PlantedBurst]]:
    """Choose the bursts that fit: planted events may use at most half of a day's rows."""
    n_days = len(day_rows)
    budget = (day_rows // 2).astype(np.int64)
    parts: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(n_days)]
    bursts: list[PlantedBurst] = []
    minimum = BREACH_THRESHOLD + 1

    def fit(day: int, wanted: int) -> int:
        n = min(wanted, int(budget[day]))
        return n if n >= minimum else 0

    def record(kind: str, bundle_id: str | None, us: np.ndarray, device: np.ndarray) -> None:
        bursts.append(
            PlantedBurst(kind, bundle_id, float(us.min()) / US, float(us.max()) / US, len(us))
        )
        for day in np.unique((us - t0_us) // DAY_US):
            on_day = (us - t0_us) // DAY_US == day
            parts[int(day)].append((us[on_day], device[on_day]))
            budget[int(day)] -= int(on_day.sum())

    for day in range(n_days):
        day_us = t0_us + day * DAY_US
        n = fit(day, int(rng.integers(20, 81)))
        if n:
            start = day_us + int(rng.integers(1 * 3600, 11 * 3600)) * US
            us = np.sort(start + rng.integers(0, int(rng.integers(15, 31)) * US, n))
            record("global", None, us, _mixed_devices(rng, pop, n))
        n = fit(day, int(rng.integers(15, 41)))
        if n:
            app = int(rng.integers(0, len(BUNDLES)))
            minutes = int(rng.integers(10, 41))
            step = minutes * 60 * US // n
            start = day_us + int(rng.integers(12 * 3600, 22 * 3600)) * US
            jitter = rng.integers(-(2 * step) // 5, (2 * step) // 5 + 1, n)
            us = np.sort(start + step * np.arange(n) + jitter)
            crashing = rng.choice(pop.by_bundle[app], int(rng.integers(1, 6)))
            record("bundle", BUNDLES[app], us, rng.choice(crashing, n))

    if n_days >= 2:
        before = min(int(rng.integers(6, 11)), int(budget[0]))
        after = min(int(rng.integers(6, 11)), int(budget[1]))
        if before >= 1 and after >= 1 and before + after >= minimum:
            midnight = t0_us + DAY_US
            us = np.concatenate(
                [
                    np.sort(midnight - 1 - rng.integers(0, 25 * US, before)),
                    np.sort(midnight + rng.integers(0, 25 * US, after)),
                ]
            )
            record("midnight", None, us, _mixed_devices(rng, pop, len(us)))

    planted = []
    for day_parts in parts:
        us = np.concatenate([u for u, _ in day_parts] + [np.empty(0, np.int64)])
        device = np.concatenate([d for _, d in day_parts] + [np.empty(0, np.int64)])
        order = np.argsort(us, kind="stable")
        event = events.fatal.draw(rng, len(us))
        planted.append(_Planted(us[order], device[order].astype(np.int64), event))
    bursts.sort(key=lambda b: (b.start_epoch, b.kind))
    return planted, bursts


def _diurnal_weights() -> np.ndarray:
    """Traffic per minute of the UTC day: about three times more at the peak than at night."""
    minute = np.arange(MINUTES_PER_DAY)
    return 1.0 + 0.5 * np.sin(2 * np.pi * (minute / MINUTES_PER_DAY - 0.3))


# --- chunks and files ------------------------------------------------------------------------


def _chunk_bytes(
    rng: np.random.Generator,
    pop: Population,
    events: Events,
    background_us: np.ndarray,
    planted: _Planted,
    lo: int,
    hi: int,
) -> memoryview:
    """CSV bytes of one chunk: background times (sorted) plus the planted events in [lo, hi).

    A line is the join of five pieces: event (columns 0–4), device head (5–11), `sdk_date`,
    device tail (13–22) and `date` with the line end.
    """
    n_bg = len(background_us)
    device = pop.activity.draw(rng, n_bg)
    event = events.any_kind.draw(rng, n_bg)
    us = background_us
    a, b = np.searchsorted(planted.us, [lo, hi])
    if b > a:
        us = np.concatenate([us, planted.us[a:b]])
        order = np.argsort(us, kind="stable")
        us = us[order]
        device = np.concatenate([device, planted.device[a:b]])[order]
        event = np.concatenate([event, planted.event[a:b]])[order]
    n = len(us)
    if n == 0:
        return memoryview(b"")

    # Light disorder: swap a few disjoint neighbour pairs, as interleaving collectors do.
    if n > 1:
        first = np.flatnonzero(rng.random(n - 1) < DISORDER_SHARE)
        first = first[np.diff(first, prepend=-2) > 1]
        perm = np.arange(n)
        perm[first], perm[first + 1] = first + 1, first
        us, device, event = us[perm], device[perm], event[perm]

    delay = rng.integers(0, 4 * US, n)
    sdk_sec = (us - delay) // US + pop.skew_s[device]
    lines = pc.binary_join_element_wise(
        events.pieces.take(pa.array(event)),
        pop.head.take(pa.array(device)),
        format_sdk_dates(sdk_sec, pop.locale[device]),
        pop.tail.take(pa.array(device)),
        format_epochs(us),
        ",",
    )
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    start, end = offsets[lines.offset], offsets[lines.offset + len(lines)]
    return memoryview(lines.buffers()[2])[start:end]


def _day_chunks(
    rng: np.random.Generator,
    pop: Population,
    events: Events,
    day_us: int,
    background: int,
    planted: _Planted,
) -> Iterator[memoryview]:
    """One day's records in time order, in chunks of whole minutes of about `CHUNK_ROWS` rows."""
    per_minute = rng.multinomial(background, _diurnal_weights() / _diurnal_weights().sum())
    bounds = np.searchsorted(
        np.cumsum(per_minute), np.arange(CHUNK_ROWS, background, CHUNK_ROWS), side="left"
    )
    edges = np.unique(np.concatenate([[0], np.minimum(bounds + 1, MINUTES_PER_DAY)]))
    edges = np.append(edges[edges < MINUTES_PER_DAY], MINUTES_PER_DAY)
    for m0, m1 in zip(edges[:-1], edges[1:], strict=True):
        counts = per_minute[m0:m1]
        minute_us = day_us + np.arange(m0, m1, dtype=np.int64) * 60 * US
        us = np.repeat(minute_us, counts) + rng.integers(0, 60 * US, int(counts.sum()))
        us.sort()
        lo, hi = day_us + int(m0) * 60 * US, day_us + int(m1) * 60 * US
        yield _chunk_bytes(rng, pop, events, us, planted, lo, hi)


@contextmanager
def _atomic_output(path: Path, compress: bool) -> Iterator[_Sink]:
    """The file's bytes, gzipped if `compress`; readers never see a part (atomic_file)."""
    with atomic_file(path) as raw:
        if compress:
            # mtime=0 and a fixed name in the gzip header keep the bytes deterministic.
            with gzip.GzipFile(
                filename=path.name.removesuffix(".gz"),
                mode="wb",
                fileobj=raw,
                compresslevel=GZIP_LEVEL,
                mtime=0,
            ) as zipped:
                yield zipped
        else:
            yield raw


def _header_line(header: HeaderKind) -> bytes:
    if header == "names":
        return (",".join(COLUMNS) + "\n").encode()
    if header == "positional":
        return (",".join(str(i) for i in range(len(COLUMNS))) + "\n").encode()
    if header == "none":
        return b""
    raise ValueError(f"header must be 'names', 'positional' or 'none', not {header!r}")


def generate_logs(
    out: Path,
    rows: int,
    days: int,
    seed: int,
    *,
    start_day: datetime.date = datetime.date(2021, 9, 10),
    header: HeaderKind = "names",
    one_file: str | None = None,
    compress: bool = False,
    progress: Progress | None = None,
) -> GeneratedLogs:
    """Write `rows` records over `days` UTC days from `start_day` into `out`, with planted bursts.

    One file per day (`logs_YYYY-MM-DD.csv`, `.csv.gz` when `compress`), or everything in
    `out / one_file`. The same arguments always give the same bytes.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, not {rows}")
    if days < 1:
        raise ValueError(f"days must be >= 1, not {days}")
    if not MIN_EPOCH_DAY <= start_day <= MAX_EPOCH_DAY - datetime.timedelta(days=days - 1):
        raise ValueError(f"days must lie between {MIN_EPOCH_DAY} and {MAX_EPOCH_DAY}")
    if one_file is not None and (not one_file or Path(one_file).name != one_file):
        raise ValueError(f"one_file must be a plain file name, not {one_file!r}")
    header_bytes = _header_line(header)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    plan_rng = np.random.default_rng([seed, 0])
    pop = build_population(plan_rng, min(20_000, max(300, rows // 100)))
    events = build_events()
    jitter = plan_rng.uniform(0.85, 1.15, days)
    day_rows = plan_rng.multinomial(rows, jitter / jitter.sum())
    t0_us = (start_day - datetime.date(1970, 1, 1)).days * DAY_US
    planted, bursts = _plan(plan_rng, pop, events, day_rows, t0_us)

    def day_bytes(day: int) -> Iterator[memoryview]:
        rng = np.random.default_rng([seed, 1, day])
        background = int(day_rows[day]) - len(planted[day].us)
        for chunk in _day_chunks(rng, pop, events, t0_us + day * DAY_US, background, planted[day]):
            yield chunk
            if progress is not None:
                progress.update(progress.done + len(chunk), 0)
        if progress is not None:
            progress.update(progress.done, int(day_rows[day]))

    def started(path: Path, number: int, total: int) -> None:
        if progress is not None:
            progress.start_file(path.name, None, number, total)

    suffix = ".csv.gz" if compress else ".csv"
    files: list[Path] = []
    if one_file is not None:
        path = out / one_file
        started(path, 1, 1)
        with _atomic_output(path, compress) as sink:
            sink.write(header_bytes)
            for day in range(days):
                for chunk in day_bytes(day):
                    sink.write(chunk)
        files.append(path)
    else:
        for day in range(days):
            path = out / f"logs_{start_day + datetime.timedelta(days=day):%Y-%m-%d}{suffix}"
            started(path, day + 1, days)
            with _atomic_output(path, compress) as sink:
                sink.write(header_bytes)
                for chunk in day_bytes(day):
                    sink.write(chunk)
            files.append(path)
    return GeneratedLogs(files=files, rows=rows, planted=bursts)
