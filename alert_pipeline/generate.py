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
from alert_pipeline.progress import Progress
from alert_pipeline.schema import COLUMNS

CHUNK_ROWS = 100_000  # measured: larger chunks cost more in page faults than they save
US = 1_000_000
DAY_US = 86_400 * US
MINUTES_PER_DAY = 1_440

# Background share of fatal severities. The per-bundle rule (more than 10 in an hour) is the one
# background noise could trip: at 20,000 rows over 3 days the busiest bundle sees about 60 rows in
# its peak hour, so 2 % gives about 1.2 fatal events there and a chance breach is negligible.
FATAL_SHARE = 0.02
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


# --- value pools, imitating the real samples -------------------------------------------------

_HTTP_400 = (
    'We are running "Programmatic Flow", you need to active gCom.\n'
    " HTTP/1.1 400 Bad Request\n"
    '{"product": null, "payment": null, "shipment_available_options": [], '
    '"session": {"session_id": "1.0", "status": "Error: CODE_INVALID_FLOW_ID", '
    '"error_code": 110}, "flow": "gcom"}'
)
_HTTP_500 = (
    "Purchase validation failed, server answered:\n"
    " HTTP/1.1 500 Internal Server Error\n"
    '{"error": "upstream timeout", "retry_after": 30}'
)
_JAVA_CRASH = (
    "FATAL EXCEPTION: UnityMain\n"
    "java.lang.IllegalStateException: Unable to create layer for View, size 0x0\n"
    "\tat android.view.View.buildLayer(View.java:20321)"
)

# Non-fatal events: (error_code, message, severity, weight).
_NONFATAL_MESSAGES: tuple[tuple[str, str, str, float], ...] = (
    ("0", "SDK initialized", "Info", 6.0),
    ("0", "Session started", "Info", 6.0),
    ("0", "Ad request sent", "Info", 8.0),
    ("0", "Ad loaded, showing interstitial", "Info", 5.0),
    ("0", "Consent dialog shown", "Info", 2.0),
    ("0", "Purchase flow opened", "Info", 1.0),
    ("0", "Config fetched from cache", "Debug", 3.0),
    ("0", "Heartbeat", "Debug", 4.0),
    ("0", "Frame time 41 ms, above budget", "Debug", 1.0),
    ("1", "Ad not available, will retry in 30 s", "Warning", 3.0),
    ("1", 'Slow response from "api.gcom.io", retrying', "Warning", 1.5),
    ("2", "Consent status unknown, assuming no consent", "Warning", 1.0),
    ("0", "could not receive ip address from ipfy, using cached country", "Warning", 0.5),
)
# Fatal events: (error_code, message, weight); each comes with a severity from _FATAL_SEVERITIES.
_FATAL_MESSAGES: tuple[tuple[str, str, float], ...] = (
    ("0", "An error occurred while sending the request", 10.0),
    ("0", "could not receive ip address from ipfy", 10.0),
    ("0", _HTTP_400, 1.0),
    ("500", _HTTP_500, 0.5),
    ("408", "Request timed out after 30000 ms, giving up", 2.0),
    ("-1", 'Unable to resolve host "api.gcom.io": No address associated with hostname', 1.5),
    ("0", "NullReferenceException: Object reference not set to an instance of an object", 1.0),
    ("137", _JAVA_CRASH, 0.3),
)
_FATAL_SEVERITIES: tuple[tuple[str, float], ...] = (
    ("Error", 0.92),
    ("fatal", 0.05),
    ("FATAL", 0.03),
)
_LOCATIONS: tuple[tuple[str, float], ...] = (
    ("/BuildNotice/0", 0.7),
    ("/BuildNotice/1", 0.1),
    ("/Init/0", 0.08),
    ("/AdRequest/2", 0.08),
    ("/Purchase/1", 0.04),
)
_FLOWS: tuple[tuple[str, str, float], ...] = (
    ("Programmatic1", "Programmatic", 0.7),
    ("Programmatic2", "Programmatic", 0.08),
    ("LowRevenueCountryBlock", "LowRevenueCountryBlock", 0.12),
    ("Direct1", "Direct", 0.06),
    ("Organic1", "Organic", 0.04),
)
_DEVICES: tuple[tuple[str, str, float], ...] = (
    ("Xiaomi Redmi Note 8", "Android OS 9 / API-28 (PKQ1.190616.001/V11.0.12.0.PCOMIXM)", 6.0),
    ("Xiaomi Redmi Note 8", "Android OS 9 / API-28 (PKQ1.190616.001/V11.0.2.0.PCOINXM)", 3.0),
    ("Xiaomi Redmi Note 8 Pro", "Android OS 10 / API-29 (QP1A.190711.020/V12.0.8.0.QGGMIXM)", 3.0),
    ("Xiaomi Redmi 9A", "Android OS 10 / API-29 (QP1A.190711.020/V12.0.14.0.QCDMIXM)", 5.0),
    ("samsung SM-T295", "Android OS 10 / API-29 (QP1A.190711.020/T295XXU3BTFE)", 2.0),
    ("samsung SM-A115F", "Android OS 11 / API-30 (RP1A.200720.012/A115FXXU2BUE1)", 4.0),
    ("samsung SM-M315F", "Android OS 11 / API-30 (RP1A.200720.012/M315FXXU2BUG2)", 3.0),
    ("samsung SM-G965F", "Android OS 10 / API-29 (QP1A.190711.020/G965FXXUFFUE1)", 2.0),
    ("samsung SM-A125F", "Android OS 11 / API-30 (RP1A.200720.012/A125FXXU1BUE3)", 4.0),
    ("samsung SM-J260F", "Android OS 9 / API-28 (PPR1.180610.011/J260FUBU6BUB1)", 2.0),
    ("Google Mediatek MT8173 Chromebook", "Android OS 9 / API-28 (R92-13982.88.0/7611540)", 1.0),
    ("Google Pixel 4a", "Android OS 11 / API-30 (RQ3A.210805.001.A1/7474174)", 1.0),
    ("LGE LM-G850", "Android OS 11 / API-30 (RKQ1.210420.001/2121423165754.OPEN_ESA_DS)", 1.0),
    ("vivo V2043", "Android OS 11 / API-30 (RP1A.200720.012/eng.compil.20210717.185129)", 2.0),
    ("vivo V2026", "Android OS 11 / API-30 (RP1A.200720.012/eng.compil.20210717.185129)", 2.0),
    ("OPPO CPH1701", "Android OS 6.0.1 / API-23 (MMB29M/eng.root.20170930.133551)", 1.0),
    ("realme RMX2103", "Android OS 11 / API-30 (RKQ1.201217.002/1624241518687)", 2.0),
    ("asus ASUS_X00ID", "Android OS 8.1.0 / API-27 (OPM1.171019.011/15.2016.1907.519-0)", 1.0),
    ("HUAWEI MAR-LX1M", "Android OS 10 / API-29 (HUAWEIMAR-L21MEA/10.0.0.263C185)", 2.0),
    ("HONOR JSN-L21", "Android OS 10 / API-29 (HONORJSN-L21/10.0.0.225C432)", 1.0),
    ("OnePlus GM1913", "Android OS 11 / API-30 (RKQ1.201022.002/2107082109)", 1.0),
    (
        "TECNO MOBILE LIMITED TECNO KE5",
        "Android OS 10 / API-29 (QP1A.190711.020/G-201029V328)",
        2.0,
    ),
    (
        "INFINIX MOBILITY LIMITED Infinix X657B",
        "Android OS 10 / API-29 (QP1A.190711.020/X657B-H6121ABCD-Q-OP-201013V1187)",
        2.0,
    ),  # noqa: E501
)
_GRAPHICS: tuple[tuple[str, float], ...] = (
    ("OpenGLES3", 0.5),
    ("OpenGLES2", 0.35),
    ("Vulkan", 0.15),
)
_SESSIONS: tuple[tuple[str, float], ...] = (("1.0", 0.85), ("2.0", 0.1), ("3.0", 0.05))
_LANGUAGES: tuple[tuple[str, float], ...] = (
    ("iv", 0.3), ("en", 0.25), ("ru", 0.15), ("es", 0.06), ("pt", 0.06), ("tr", 0.04),
    ("id", 0.04), ("de", 0.03), ("fr", 0.03), ("hi", 0.04),
)  # fmt: skip
_COUNTRIES: tuple[tuple[str, float], ...] = (
    ("IN", 0.16), ("ID", 0.1), ("RU", 0.09), ("BR", 0.08), ("US", 0.07), ("TR", 0.05),
    ("TM", 0.03), ("AF", 0.02), ("SN", 0.02), ("KZ", 0.03), ("GE", 0.02), ("AU", 0.02),
    ("DE", 0.03), ("MX", 0.05), ("PH", 0.05), ("VN", 0.04), ("EG", 0.04), ("PK", 0.04),
    ("UA", 0.03), ("FR", 0.03),
)  # fmt: skip
_BUNDLES: tuple[str, ...] = (
    "com.thg.battleops.shooting.game",
    "com.mytalkingcatemma.ballerinagames",
    "com.pregnantcatemma.virtualpet",
    "com.pixelforge.zombie.defense",
    "com.happyfarm.merge.puzzle",
    "com.tinyroar.dino.hunter3d",
    "com.speedline.car.racing.drift",
    "com.brainy.wordcross.connect",
    "com.sunnyside.idle.miner.tycoon",
    "com.blockcraft.sandbox.build",
    "com.kittycafe.cooking.story",
    "com.skyjump.stickman.parkour",
    "com.deepsea.fishing.master",
    "com.royal.solitaire.classic",
    "com.galaxy.space.shooter.arcade",
    "com.magicmatch.candy.blast",
    "com.streetfight.kungfu.legends",
    "com.truckdriver.cargo.simulator",
    "com.hiddenobject.mystery.manor",
    "com.knight.tower.defense.td",
    "com.bubble.pop.shooter.saga",
    "com.mytalkingdog.max.virtualpet",
    "com.city.builder.metropolis",
    "com.sniper.strike.elite.ops",
    "com.fashion.dressup.stylist",
    "com.pocket.chess.master.free",
    "com.helix.ball.jump.tower",
    "com.monster.truck.stunts.hill",
    "com.ludo.dice.king.party",
    "com.runner.subway.rush.endless",
)
_SDK_VERSIONS: tuple[tuple[str, float], ...] = (("1.11.0", 0.55), ("1.10.2", 0.35), ("1.9.5", 0.1))
_APP_VERSIONS: tuple[tuple[str, float], ...] = (
    ("1.0", 0.7),
    ("1.1", 0.15),
    ("1.2", 0.1),
    ("2.0", 0.05),
)


def _csv_field(value: str) -> str:
    """Quote a value the way the real files do: only when it holds a comma, quote or line break."""
    if any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


class _Tickets:
    """Weighted draws in constant time: choice i owns about weight_i / total of 2**20 tickets.

    A binary search per draw (`searchsorted` on a CDF) was a quarter of the run time.
    """

    def __init__(self, weights: np.ndarray | list[float]) -> None:
        w = np.asarray(weights, dtype=np.float64)
        counts = np.round(w / w.sum() * (1 << 20)).astype(np.int64)
        counts[(w > 0) & (counts == 0)] = 1
        self.table = np.repeat(np.arange(len(w), dtype=np.int64), counts)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return self.table[rng.integers(0, len(self.table), size)]


def _pick(rng: np.random.Generator, pool: tuple[tuple[str, float], ...], size: int) -> list[str]:
    return [pool[i][0] for i in _Tickets([w for _, w in pool]).draw(rng, size)]


def _object_id(rng: np.random.Generator) -> str:
    """A 24-hex id shaped like the real ones (MongoDB ObjectIds, which start with a 2021 time)."""
    created = int(rng.integers(1_609_459_200, 1_630_000_000))
    return f"{created:08x}" + rng.bytes(8).hex()


def _uuid4(raw: bytes) -> str:
    b = bytearray(raw)
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class _Events:
    """Pre-joined `error_code,error_message,severity,log_location,mode` pieces and their odds.

    The fatal pieces come first, so `fatal` draws among them only.
    """

    pieces: pa.StringArray
    any_kind: _Tickets
    fatal: _Tickets


def _build_events() -> _Events:
    fatal = [
        (code, message, severity, ws * wm)
        for severity, ws in _FATAL_SEVERITIES
        for code, message, wm in _FATAL_MESSAGES
    ]
    pieces: list[str] = []
    weights: list[float] = []
    for share, kinds in ((FATAL_SHARE, fatal), (1.0 - FATAL_SHARE, _NONFATAL_MESSAGES)):
        total = sum(w for *_, w in kinds)
        for code, message, severity, wm in kinds:
            for location, wl in _LOCATIONS:
                pieces.append(
                    ",".join((code, _csv_field(message), severity, location, "MobileSDK"))
                )
                weights.append(share * wm / total * wl)
    n_fatal = len(fatal) * len(_LOCATIONS)
    return _Events(
        pieces=pa.array(pieces, type=pa.string()),
        any_kind=_Tickets(weights),
        fatal=_Tickets(weights[:n_fatal]),
    )


@dataclass(frozen=True)
class _Population:
    """Devices, each with one installed app, so a device's fields stay consistent as in real data.

    `head` joins columns 5–11 (model … flow_type) and `tail` columns 13–22 (publisher_id … country);
    the flow is a device's setting (in the samples `LowRevenueCountryBlock` follows the device).
    """

    head: pa.StringArray
    tail: pa.StringArray
    locale: np.ndarray
    skew_s: np.ndarray
    bundle: np.ndarray
    activity: _Tickets
    by_bundle: list[np.ndarray]


def _build_population(rng: np.random.Generator, n_devices: int) -> _Population:
    n_apps = len(_BUNDLES)
    publishers = [_object_id(rng) for _ in range(8)]
    app_publisher = rng.integers(0, len(publishers), n_apps)
    app_game = [_object_id(rng) for _ in range(n_apps)]
    app_sdkv = _pick(rng, _SDK_VERSIONS, n_apps)
    app_appv = _pick(rng, _APP_VERSIONS, n_apps)
    app_test = ["True" if x else "False" for x in rng.random(n_apps) < 0.1]
    app_gdpr = ["True" if x else "False" for x in rng.random(n_apps) < 0.25]

    # Skewed popularity: every app gets a few devices, the rest follow a Zipf-like law.
    popularity = 1.0 / np.arange(1, n_apps + 1) ** 0.9
    popularity = popularity[rng.permutation(n_apps)]
    base = np.arange(min(n_devices, 3 * n_apps)) % n_apps
    bundle = np.concatenate([base, _Tickets(popularity).draw(rng, n_devices - len(base))])

    models = _Tickets([w for *_, w in _DEVICES]).draw(rng, n_devices)
    graphics = _pick(rng, _GRAPHICS, n_devices)
    sessions = _pick(rng, _SESSIONS, n_devices)
    languages = _pick(rng, _LANGUAGES, n_devices)
    countries = _pick(rng, _COUNTRIES, n_devices)
    ccpa = rng.random(n_devices) < 0.05
    flows = _Tickets([w for *_, w in _FLOWS]).draw(rng, n_devices)
    ad_ids = rng.bytes(16 * n_devices)

    head: list[str] = []
    tail: list[str] = []
    for i in range(n_devices):
        app = int(bundle[i])
        model, os_name, _ = _DEVICES[models[i]]
        flow_id, flow_type, _ = _FLOWS[flows[i]]
        head.append(
            ",".join(
                (model, graphics[i], sessions[i], app_sdkv[app], app_test[app], flow_id, flow_type)
            )
        )
        tail.append(
            ",".join(
                (
                    publishers[app_publisher[app]],
                    app_game[app],
                    _BUNDLES[app],
                    app_appv[app],
                    languages[i],
                    os_name,
                    _uuid4(ad_ids[16 * i : 16 * i + 16]),
                    app_gdpr[app],
                    "True" if ccpa[i] else "False",
                    countries[i],
                )
            )
        )

    # Device clocks: most are close to the collector, some minutes off, a few in a wrong zone.
    kind = rng.random(n_devices)
    skew = rng.integers(-3, 2, n_devices)
    minutes = kind >= 0.8
    skew[minutes] = rng.integers(-300, 300, int(minutes.sum()))
    hours = kind >= 0.96
    skew[hours] = 3600 * rng.choice(np.array([-5, -3, -1, 1, 2, 3, 8]), int(hours.sum()))

    return _Population(
        head=pa.array(head, type=pa.string()),
        tail=pa.array(tail, type=pa.string()),
        locale=_Tickets(list(_LOCALE_SHARES)).draw(rng, n_devices),
        skew_s=skew.astype(np.int64),
        bundle=bundle,
        activity=_Tickets(rng.lognormal(0.0, 1.0, n_devices)),
        by_bundle=[np.flatnonzero(bundle == a) for a in range(n_apps)],
    )


# --- formatting from integers, without Python per record -------------------------------------
# Every text field that depends on time is assembled from small tables of ASCII bytes: gathering
# fixed-width rows (numpy void dtypes) is far cheaper than dividing out each digit per record.

# sdk_date locale formats, with their shares among devices: DD/MM/YYYY HH:MM:SS,
# DD.MM.YYYY HH:MM:SS, DD/MM/YYYY hh:mm:ss AM, MM/DD/YYYY HH:MM:SS.
_LOCALE_FORMATS = ("%d/%m/%Y ", "%d.%m.%Y ", "%d/%m/%Y ", "%m/%d/%Y ")
_LOCALE_SHARES = (0.35, 0.35, 0.1, 0.2)
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
_MIN_EPOCH_DAY = datetime.date(2001, 9, 10)  # from here to 2286 epoch seconds have 10 digits
_MAX_EPOCH_DAY = datetime.date(2286, 11, 19)


def _strings(data: np.ndarray, lengths: np.ndarray) -> pa.StringArray:
    """Wrap ASCII bytes laid end to end as an Arrow string array, without copying each value."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.StringArray.from_buffers(len(lengths), pa.py_buffer(offsets), pa.py_buffer(data))


def _format_epochs(us: np.ndarray) -> pa.StringArray:
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


def _format_sdk_dates(sec: np.ndarray, locale: np.ndarray) -> pa.StringArray:
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


# --- planning: rows per day and planted bursts -----------------------------------------------


@dataclass(frozen=True)
class _Planted:
    """Planted events of one day, sorted by time."""

    us: np.ndarray
    device: np.ndarray
    event: np.ndarray


def _mixed_devices(rng: np.random.Generator, pop: _Population, n: int) -> np.ndarray:
    """Devices of many apps, taking apps in turn so no one app gets more than a few events."""
    apps = rng.permutation(len(pop.by_bundle))
    return np.array([rng.choice(pop.by_bundle[apps[j % len(apps)]]) for j in range(n)])


def _plan(
    rng: np.random.Generator, pop: _Population, events: _Events, day_rows: np.ndarray, t0_us: int
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
            app = int(rng.integers(0, len(_BUNDLES)))
            minutes = int(rng.integers(10, 41))
            step = minutes * 60 * US // n
            start = day_us + int(rng.integers(12 * 3600, 22 * 3600)) * US
            jitter = rng.integers(-(2 * step) // 5, (2 * step) // 5 + 1, n)
            us = np.sort(start + step * np.arange(n) + jitter)
            crashing = rng.choice(pop.by_bundle[app], int(rng.integers(1, 6)))
            record("bundle", _BUNDLES[app], us, rng.choice(crashing, n))

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
    pop: _Population,
    events: _Events,
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
        _format_sdk_dates(sdk_sec, pop.locale[device]),
        pop.tail.take(pa.array(device)),
        _format_epochs(us),
        ",",
    )
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    start, end = offsets[lines.offset], offsets[lines.offset + len(lines)]
    return memoryview(lines.buffers()[2])[start:end]


def _day_chunks(
    rng: np.random.Generator,
    pop: _Population,
    events: _Events,
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
    if not _MIN_EPOCH_DAY <= start_day <= _MAX_EPOCH_DAY - datetime.timedelta(days=days - 1):
        raise ValueError(f"days must lie between {_MIN_EPOCH_DAY} and {_MAX_EPOCH_DAY}")
    if one_file is not None and (not one_file or Path(one_file).name != one_file):
        raise ValueError(f"one_file must be a plain file name, not {one_file!r}")
    header_bytes = _header_line(header)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    plan_rng = np.random.default_rng([seed, 0])
    pop = _build_population(plan_rng, min(20_000, max(300, rows // 100)))
    events = _build_events()
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
