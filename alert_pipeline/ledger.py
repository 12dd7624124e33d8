"""The ledger: one JSON entry per landing file name, saying which version of the file was
ingested and what it contributed to each day (records read, stored, quarantined). Ingestion is
serialised per home by a file lock.
"""

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from alert_pipeline.atomic import write_json_atomic
from alert_pipeline.home import UNDATED, Home


@dataclass
class DayCounts:
    read: int = 0
    stored: int = 0
    quarantined: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"read": self.read, "stored": self.stored, "quarantined": self.quarantined}


@contextmanager
def home_lock(home: Home) -> Iterator[None]:
    """One ingestion at a time per home: concurrent runs wait instead of racing on the same file."""
    home.root.mkdir(parents=True, exist_ok=True)
    with open(home.root / ".ingest.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_ledger(home: Home) -> dict[str, dict]:
    """Ledger entries by landing file name."""
    entries = {}
    if home.ledger.is_dir():
        for path in sorted(home.ledger.glob("*.json")):
            entry = json.loads(path.read_text())
            entries[entry["file"]] = entry
    return entries


def write_entry(home: Home, entry: dict) -> None:
    write_json_atomic(home.ledger / f"{entry['source']}.json", entry)


def file_version(stat: os.stat_result) -> list[int]:
    """What tells a file version without reading it: size, mtime and ctime (a replaced or
    rewritten file always gets a new ctime, even when size and mtime are made to look the same)."""
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


def day_counts(home: Home, day: str) -> DayCounts:
    """Records read / stored / quarantined for one day according to the ledger."""
    total = DayCounts()
    for entry in read_ledger(home).values():
        counts = entry["days"].get(day)
        if counts:
            total.read += counts["read"]
            total.stored += counts["stored"]
            total.quarantined += counts["quarantined"]
    return total


def undated_records(ledger: dict[str, dict]) -> dict[str, tuple[int, int]]:
    """Files with records that have no usable day (quarantine/day=undated): name → (those
    records, all records of the file)."""
    return {
        name: (
            entry["days"][UNDATED]["quarantined"],
            sum(c["read"] for c in entry["days"].values()),
        )
        for name, entry in ledger.items()
        if UNDATED in entry["days"]
    }


def days_with_data(home: Home) -> set[str]:
    return {day for entry in read_ledger(home).values() for day in entry["days"] if day != UNDATED}
