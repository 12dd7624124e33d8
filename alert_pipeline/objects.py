"""Homes in an S3-compatible object store (`s3://bucket/prefix`: AWS S3, MinIO, SeaweedFS, Ceph).

The pipeline works on such a home through a local cache folder laid out as any home: a file
written there is uploaded whole as the object of the same key before it takes its final local
name (so a reader of the store never sees part of an object, and a killed writer leaves none),
and objects are fetched into the cache before they are read. So every other module reads and
writes local paths, and only the points where a home's files are written (atomic.py) or read
(`synced`) know about the store.

Settings, from the standard variables: AWS_ENDPOINT_URL (passed to pyarrow explicitly: its S3
filesystem does not read it), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
AWS_REGION. The cache is ALERT_PIPELINE_CACHE (default ~/.cache/alert_pipeline), a folder per home.
"""

import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from alert_pipeline.errors import PipelineError

SCHEME = "s3://"
CACHE_ENV = "ALERT_PIPELINE_CACHE"
FETCH_MARGIN_NS = 2_000_000_000
"""Object times have whole seconds: a cached copy fetched less than this after its object's time
may predate a rewrite within the same second, so it is fetched again."""


def endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL", "")


@dataclass(frozen=True)
class ObjectHome:
    """One `s3://` home and the local folder it is worked on in."""

    uri: str
    cache: Path

    @cached_property
    def filesystem(self) -> pafs.S3FileSystem:
        options: dict = {
            "connect_timeout": 5,
            "request_timeout": 30,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
        }
        if url := endpoint():
            parts = urlsplit(url)
            options.update(endpoint_override=parts.netloc, scheme=parts.scheme or "https")
        if region := os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"):
            options["region"] = region
        if (key := os.environ.get("AWS_ACCESS_KEY_ID")) and (
            secret := os.environ.get("AWS_SECRET_ACCESS_KEY")
        ):
            options.update(
                access_key=key, secret_key=secret, session_token=os.environ.get("AWS_SESSION_TOKEN")
            )
        return pafs.S3FileSystem(**options)

    def key(self, path: Path) -> str:
        relative = Path(path).relative_to(self.cache).as_posix()
        return self.uri.removeprefix(SCHEME).rstrip("/") + (
            "" if relative == "." else f"/{relative}"
        )

    @contextmanager
    def _failing_clearly(self, doing: str, path: Path) -> Iterator[None]:
        try:
            yield
        except OSError as error:
            where = f" at {endpoint()}" if endpoint() else ""
            raise PipelineError(
                f"object store {self.uri}{where}: cannot {doing} s3://{self.key(path)}: {error}"
            ) from error

    def upload(self, local: Path, path: Path) -> None:
        """Upload the complete file `local` as the object of `path` (it appears whole or not at
        all), and give `local` the object's time, so that it counts as a fresh copy."""
        with self._failing_clearly("upload", path):
            pafs.copy_files(
                str(local),
                self.key(path),
                source_filesystem=pafs.LocalFileSystem(),
                destination_filesystem=self.filesystem,
            )
            mtime = self.filesystem.get_file_info(self.key(path)).mtime_ns
        os.utime(local, ns=(mtime, mtime))

    def delete(self, path: Path) -> None:
        with self._failing_clearly("delete", path):
            if self.filesystem.get_file_info(self.key(path)).type == pafs.FileType.File:
                self.filesystem.delete_file(self.key(path))

    def objects(self, folder: Path) -> dict[Path, pafs.FileInfo]:
        """The objects under a folder (at any depth), by local path."""
        selector = pafs.FileSelector(self.key(folder), recursive=True, allow_not_found=True)
        with self._failing_clearly("list", folder):
            infos = self.filesystem.get_file_info(selector)
        prefix = self.uri.removeprefix(SCHEME).rstrip("/")
        return {
            self.cache / info.path.removeprefix(prefix).lstrip("/"): info
            for info in infos
            if info.type == pafs.FileType.File
        }

    def fetch(self, path: Path, info: pafs.FileInfo | None = None) -> bool:
        """Make the local copy of one object current; False (and no local copy) if there is none."""
        if info is None:
            with self._failing_clearly("read", path):
                info = self.filesystem.get_file_info(self.key(path))
        if info.type != pafs.FileType.File:
            Path(path).unlink(missing_ok=True)
            return False
        if _is_current(Path(path), info):
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            with (
                self._failing_clearly("read", path),
                self.filesystem.open_input_stream(self.key(path)) as source,
                open(temp, "wb") as target,
            ):
                shutil.copyfileobj(source, target, 8 << 20)
            os.utime(temp, ns=(info.mtime_ns, info.mtime_ns))
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        return True

    def mirror(self, folder: Path) -> None:
        """Make the local folder hold the current copy of each object under it, and no other
        file (hidden files and folders, this machine's temp files, locks and markers, are left
        alone)."""
        objects = self.objects(folder)
        for path, info in objects.items():
            self.fetch(path, info)
        if folder.is_dir():
            for path in folder.rglob("*"):
                hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
                if path not in objects and not hidden and path.is_file():
                    path.unlink(missing_ok=True)


def _is_current(path: Path, info: pafs.FileInfo) -> bool:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    return (
        stat.st_size == info.size
        and stat.st_mtime_ns == info.mtime_ns
        and stat.st_ctime_ns >= info.mtime_ns + FETCH_MARGIN_NS
    )


_homes: dict[Path, ObjectHome] = {}


def local_root(location: str | Path) -> Path:
    """The local folder a home is worked on in: the home itself, or for `s3://…` its cache
    folder (registered, so that writes and reads under it go to the store)."""
    text = str(location)
    if not text.startswith(SCHEME):
        return Path(text).absolute()
    if not text.removeprefix(SCHEME).strip("/"):
        raise PipelineError(f"{text!r}: the home needs a bucket, as in s3://bucket/prefix")
    uri = SCHEME + text.removeprefix(SCHEME).strip("/")
    base = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "alert_pipeline")
    digest = hashlib.sha256(f"{endpoint()}\0{uri}".encode()).hexdigest()[:12]
    cache = (base / f"{uri.removeprefix(SCHEME).split('/')[0]}-{digest}").absolute()
    _homes.setdefault(cache, ObjectHome(uri, cache))
    return cache


def object_home(path: Path) -> ObjectHome | None:
    """The object home whose cache holds `path`, if any."""
    if not _homes:
        return None
    path = Path(path).absolute()
    for folder in (path, *path.parents):
        if folder in _homes:
            return _homes[folder]
    return None


def location(root: Path) -> str:
    """What names a home wherever it is worked on: its `s3://` URI, or its local path."""
    store = object_home(root)
    return store.uri if store else str(root)


def synced(path: Path) -> Path:
    """A folder of a home with the store's current objects in it (for a home in an object
    store; else the folder as it is)."""
    if store := object_home(path):
        store.mirror(Path(path))
    return path


def synced_file(path: Path) -> Path:
    """One file of a home, current (absent if its object is)."""
    if store := object_home(path):
        store.fetch(Path(path))
    return path
