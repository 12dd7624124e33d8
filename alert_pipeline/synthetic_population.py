"""Who writes the synthetic logs: the apps, the devices they run on, and the events they log.

The value pools imitate the real samples (device models with their OS strings, bundles, flows,
languages, countries, quoted multi-line messages) and carry the odds the generator draws with.
Devices are built once per run with one installed app each, so that a device's columns stay
consistent across its records as they do in real data; events are pre-joined CSV pieces, so
that records are assembled by joining pieces rather than by quoting values one by one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from alert_pipeline.date_text import LOCALE_SHARES

# Background share of fatal severities. The per-bundle rule (more than 10 in an hour) is the one
# background noise could trip: at 20,000 rows over 3 days the busiest bundle sees about 60 rows in
# its peak hour, so 2 % gives about 1.2 fatal events there and a chance breach is negligible.
FATAL_SHARE = 0.02


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
BUNDLES: tuple[str, ...] = (
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
class Events:
    """Pre-joined `error_code,error_message,severity,log_location,mode` pieces and their odds.

    The fatal pieces come first, so `fatal` draws among them only.
    """

    pieces: pa.StringArray
    any_kind: _Tickets
    fatal: _Tickets


def build_events() -> Events:
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
    return Events(
        pieces=pa.array(pieces, type=pa.string()),
        any_kind=_Tickets(weights),
        fatal=_Tickets(weights[:n_fatal]),
    )


@dataclass(frozen=True)
class Population:
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


def build_population(rng: np.random.Generator, n_devices: int) -> Population:
    n_apps = len(BUNDLES)
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
                    BUNDLES[app],
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

    return Population(
        head=pa.array(head, type=pa.string()),
        tail=pa.array(tail, type=pa.string()),
        locale=_Tickets(list(LOCALE_SHARES)).draw(rng, n_devices),
        skew_s=skew.astype(np.int64),
        bundle=bundle,
        activity=_Tickets(rng.lognormal(0.0, 1.0, n_devices)),
        by_bundle=[np.flatnonzero(bundle == a) for a in range(n_apps)],
    )
