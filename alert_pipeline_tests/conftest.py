"""Shared fixtures: the real sample files of the log format (read-only, outside the repository)."""

from pathlib import Path

import pytest

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
