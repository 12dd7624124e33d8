"""The one way this project writes a file: to a hidden temp name beside it, then renamed, so a
reader sees the old file or the new one, never part of one, and a killed writer leaves only a
`.*.tmp` file that no reader looks at (ingestion removes them under its lock).

In a home in an object store (objects.py) the complete temp file is uploaded as the final
object first, then renamed: the object appears whole, or not at all.
"""

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from alert_pipeline.objects import object_home


class StagedFile:
    """A file being written under a temp name next to its final `path`; `commit` renames it into
    place, `discard` removes it. The temp name is unique per write, so two writers of the same
    file never write into each other's temp file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")

    def open(self) -> BinaryIO:
        fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        return os.fdopen(fd, "wb")

    def commit(self) -> Path:
        if store := object_home(self.path):
            store.upload(self.temp, self.path)
        os.replace(self.temp, self.path)
        return self.path

    def discard(self) -> None:
        self.temp.unlink(missing_ok=True)


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary handle whose bytes appear at `path` whole (flushed to disk) when the block ends
    without an error, and nowhere otherwise."""
    staged = StagedFile(path)
    try:
        with staged.open() as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        staged.commit()
    finally:
        staged.discard()


def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write `data` (text as UTF-8; a lone surrogate becomes an escape instead of failing)."""
    if isinstance(data, str):
        data = data.encode("utf-8", errors="backslashreplace")
    with atomic_file(path) as handle:
        handle.write(data)
    return Path(path)


def write_json_atomic(path: Path, document: object) -> Path:
    return write_atomic(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def remove(path: Path) -> None:
    """Remove a file of a home (and its object, in an object store)."""
    if store := object_home(path):
        store.delete(path)
    Path(path).unlink(missing_ok=True)


def move(path: Path, target: Path) -> None:
    """Move a file of a home to another place in it (a link is moved as a link)."""
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), target)
    if store := object_home(target):
        store.upload(target, target)
        store.delete(path)
