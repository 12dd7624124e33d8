"""The Pandera model is the contract: the pipeline quarantines exactly the records it rejects,
and the Arrow schema is derived from it."""

from pathlib import Path

import pandas as pd
import pandera.errors
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_pipeline.batch_typing import TimeRange
from alert_pipeline.loader import read_batches
from alert_pipeline.schema import (
    ARROW_SCHEMA,
    COLUMNS,
    PANDAS_TYPES,
    REQUIRED_COLUMNS,
    SCHEMA,
    ValidatedLog,
    record_schema,
)
from alert_pipeline_tests.helpers import csv_text, record


def test_arrow_schema_is_derived_from_the_model() -> None:
    assert tuple(SCHEMA.columns) == COLUMNS == tuple(ARROW_SCHEMA.names)
    assert {"date", "severity", "bundle_id"} == REQUIRED_COLUMNS
    for name, column in SCHEMA.columns.items():
        assert ARROW_SCHEMA.field(name).nullable == column.nullable


START_MS, END_MS = 1_600_000_000_000, 1_700_000_000_000
RANGE = TimeRange(START_MS * 1000, END_MS * 1000)
TEXTS = ["Error", "fatal", "", " ", "\t", "  x "]  # "" is an empty field: a missing value
TIMES_MS = st.one_of(
    st.sampled_from([START_MS - 1, START_MS, START_MS + 1, END_MS - 1, END_MS, END_MS + 1]),
    st.integers(START_MS - 10**9, END_MS + 10**9),
    st.integers(0, 4 * END_MS),
)


def typed_frame(values: list[tuple[str, str, int]], tmp: Path) -> pd.DataFrame:
    """The typed records the values stand for: the checked columns built with pandas alone (not
    by the loader), the other columns those of one valid record."""
    path = tmp / "base.csv"
    path.write_text(csv_text([record()], list(COLUMNS)))
    (batch,) = read_batches(path, RANGE)
    base = batch.valid.to_pandas(types_mapper=PANDAS_TYPES.get)
    frame = pd.concat([base] * len(values), ignore_index=True)
    for name, position in (("severity", 0), ("bundle_id", 1)):
        frame[name] = pd.Categorical([v[position] or None for v in values])  # "": no value
    frame["date"] = pd.to_datetime([v[2] for v in values], unit="ms", utc=True).as_unit("us")
    return frame


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(TEXTS), st.sampled_from(TEXTS), TIMES_MS), min_size=1, max_size=30
    )
)
def test_the_model_rejects_exactly_what_the_pipeline_quarantines(tmp_path_factory, values) -> None:
    """Both directions: a record is quarantined if and only if the Pandera model (with the run's
    time range) rejects the typed values it stands for."""
    records = [
        record(severity=severity, bundle_id=bundle, date=f"{ms // 1000}.{ms % 1000:03d}")
        for severity, bundle, ms in values
    ]
    tmp = tmp_path_factory.mktemp("model")
    path = tmp / "f.csv"
    path.write_text(csv_text(records, list(COLUMNS)))
    batches = list(read_batches(path, RANGE))
    quarantined = {n - 1 for b in batches for n in b.rejections.record_numbers}
    try:
        record_schema(RANGE.start_us, RANGE.end_us).validate(typed_frame(values, tmp), lazy=True)
        rejected = set()
    except pandera.errors.SchemaErrors as errors:
        rejected = {int(i) for i in errors.failure_cases["index"]}
    assert quarantined == rejected
    assert sum(b.valid.num_rows for b in batches) == len(values) - len(rejected)


def test_typed_frame_has_the_model_dtypes() -> None:
    table = pa.Table.from_pylist([], schema=ARROW_SCHEMA)
    frame = table.to_pandas(types_mapper=PANDAS_TYPES.get)
    assert isinstance(frame["date"].dtype, pd.DatetimeTZDtype)
    ValidatedLog.validate(frame)
