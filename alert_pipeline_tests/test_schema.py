"""The Pandera model is the source of truth: whatever the loader's fast Arrow typing accepts,
full Pandera validation accepts too, and the Arrow schema is derived from the model."""

import random

import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_pipeline.loader import PANDAS_TYPES, TimeRange, read_batches
from alert_pipeline.schema import ARROW_SCHEMA, COLUMNS, REQUIRED_COLUMNS, SCHEMA, ValidatedLog
from alert_pipeline_tests.helpers import csv_text, record

TR = TimeRange(0, 4_102_444_800 * 1_000_000)
ODD_VALUES = [
    "",
    " ",
    "  x ",
    "True",
    "false",
    "1",
    "0",
    "maybe",
    "nan",
    "inf",
    "-1",
    "+7",
    "1e3",
    "12345678901234567890",
    "1631442679.384516",
    "é",
    "a,b",
    'q"q',
    "line\nbreak",
]


def test_arrow_schema_is_derived_from_the_model() -> None:
    assert tuple(SCHEMA.columns) == COLUMNS == tuple(ARROW_SCHEMA.names)
    assert {"date", "severity", "bundle_id"} == REQUIRED_COLUMNS
    for name, column in SCHEMA.columns.items():
        assert ARROW_SCHEMA.field(name).nullable == column.nullable


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 40))
def test_pandera_accepts_every_record_the_fast_typing_accepts(tmp_path_factory, seed, size) -> None:
    rng = random.Random(seed)
    records = []
    for _ in range(size):
        fields = {name: rng.choice(ODD_VALUES) for name in rng.sample(COLUMNS, rng.randint(0, 6))}
        records.append(record(**fields))
    path = tmp_path_factory.mktemp("fuzz") / "f.csv"
    path.write_text(csv_text(records, list(COLUMNS)))
    kept = 0
    for batch in read_batches(path, TR):
        kept += batch.valid.num_rows
        frame = batch.valid.to_pandas(types_mapper=PANDAS_TYPES.get)
        ValidatedLog.validate(frame, lazy=True)  # raises SchemaErrors on any failure
        assert batch.valid.schema == ARROW_SCHEMA
    assert kept <= size


def test_typed_frame_has_the_model_dtypes() -> None:
    table = pa.Table.from_pylist([], schema=ARROW_SCHEMA)
    frame = table.to_pandas(types_mapper=PANDAS_TYPES.get)
    assert isinstance(frame["date"].dtype, pd.DatetimeTZDtype)
    ValidatedLog.validate(frame)
