"""The layout of a pipeline home folder and the landing files waiting in it.

Layout under the home folder:
    incoming/                                      files to ingest (.csv, .csv.gz), any name
    warehouse/validated_logs/day=D/<source>.parquet    valid records of one source file for day D
    warehouse/incidents/<rule>/day=D.json          incidents of one rule starting on day D
    warehouse/ledger/<source>.json                 what each ingested file version contributed
    quarantine/day=D/<source>.parquet              rejected records with file, record, column, reason
    quarantine/files/<name> (+ .reason.txt)        files rejected whole
    reports/D/alert_report.{json,md,html}

Day folders are named `day=` (not `date=`) so that hive partitioning in pyarrow or DuckDB adds a
`day` column instead of clashing with the records' own `date` column. A source is one landing
file name; its parts are named after it (`source_id`).

A home may also be `s3://bucket/prefix` in an object store: then `root` is the local folder it is
worked on in, and `location` names it (objects.py).
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

from alert_pipeline.objects import local_root, location

LOG_SUFFIXES = (".csv", ".csv.gz")
IN_PROGRESS_SUFFIXES = (".tmp", ".part")
UNDATED = "undated"


@dataclass(frozen=True)
class Home:
    """Paths of one pipeline home folder (absolute, so that paths shown to users can be opened).
    Made from a path or an `s3://` URI."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", local_root(self.root))

    @property
    def location(self) -> str:
        """What names the home on every machine: its path, or its `s3://` URI."""
        return location(self.root)

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    @property
    def validated(self) -> Path:
        return self.root / "warehouse" / "validated_logs"

    @property
    def incidents(self) -> Path:
        return self.root / "warehouse" / "incidents"

    @property
    def ledger(self) -> Path:
        return self.root / "warehouse" / "ledger"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def rejected_files(self) -> Path:
        return self.root / "quarantine" / "files"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def dagster(self) -> Path:
        return self.root / "dagster"

    def day_dir(self, day: str) -> Path:
        return self.validated / f"day={day}"

    def quarantine_dir(self, day: str) -> Path:
        return self.quarantine / f"day={day}"

    def create(self) -> "Home":
        for folder in (self.incoming, self.validated, self.ledger, self.quarantine, self.reports):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def source_id(name: str) -> str:
    """A file-system-safe id for a landing file name: its parts are named after it."""
    return hashlib.sha256(name.encode()).hexdigest()[:20]


def storable(text: str) -> str:
    """Text with the bytes of a file name that are not UTF-8 (which Python holds as lone
    surrogates) as `\\xNN` escapes, so that it can be written as UTF-8."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def landing_name(incoming: Path, path: Path) -> str:
    """A landing file's name: its path under the landing folder, storable."""
    return storable(path.relative_to(incoming).as_posix())


def is_log_name(name: str) -> bool:
    """A log file's name (writers' *.tmp / *.part names are not ready)."""
    return (
        name.endswith(LOG_SUFFIXES)
        and not name.startswith(".")
        and not name.endswith(IN_PROGRESS_SUFFIXES)
    )


def landing_files(incoming: Path) -> list[Path]:
    """Log files waiting in the landing folder."""
    if not incoming.is_dir():
        return []
    return sorted(
        path
        for path in incoming.rglob("*")
        if is_log_name(path.name)
        and (path.is_file() or path.is_symlink())  # links are checked, never followed blindly
    )
