"""The 24-column log record: names, types, nullability and value checks, in one Pandera model.

Everything else (the loader's Arrow types, which fields are required, the boolean spellings it
accepts, the Parquet schema, the column table shown in Dagster) is derived from `ValidatedLog`, so
changing a column here changes it everywhere. At runtime the model, with the run's accepted time
range (`record_schema`), validates every batch of typed records: what it rejects is quarantined
with the check's message.
"""

import functools

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as arrow
from pandera.typing import Series

# The positional order of the original data set; used when a file has no header or `0,1,…,23`.
COLUMNS: tuple[str, ...] = (
    "error_code",
    "error_message",
    "severity",
    "log_location",
    "mode",
    "model",
    "graphics",
    "session_id",
    "sdkv",
    "test_mode",
    "flow_id",
    "flow_type",
    "sdk_date",
    "publisher_id",
    "game_id",
    "bundle_id",
    "appv",
    "language",
    "os",
    "adv_id",
    "gdpr",
    "ccpa",
    "country_code",
    "date",
)

TIME_COLUMN = "date"
TIMESTAMP = pd.DatetimeTZDtype(unit="us", tz="UTC")
TEXT = pd.StringDtype("pyarrow")  # Arrow-backed: no per-value Python objects to check
MISSING = "missing"  # the message of a required value that is absent or blank
OUTSIDE_TIME_RANGE = "outside the accepted time range (epoch seconds expected)"
# How booleans are spelled (compared stripped and lower-cased); other spellings are rejected.
BOOLEAN = {"true": ["true", "1"], "false": ["false", "0"]}


class ValidatedLog(pa.DataFrameModel):
    """One valid log record. `sdk_date` stays text: its format depends on the device locale."""

    error_code: Series[pd.Int64Dtype] = pa.Field(nullable=True)
    error_message: Series[TEXT] = pa.Field(nullable=True)  # type: ignore[valid-type]
    severity: Series[pd.CategoricalDtype] = pa.Field(nullable=False)
    log_location: Series[pd.CategoricalDtype] = pa.Field(nullable=True)
    mode: Series[pd.CategoricalDtype] = pa.Field(nullable=True)
    model: Series[pd.CategoricalDtype] = pa.Field(nullable=True)
    graphics: Series[pd.CategoricalDtype] = pa.Field(nullable=True)
    session_id: Series[TEXT] = pa.Field(nullable=True)  # type: ignore[valid-type]
    sdkv: Series[pd.CategoricalDtype] = pa.Field(nullable=True)
    test_mode: Series[pd.BooleanDtype] = pa.Field(nullable=True, metadata=BOOLEAN)
    flow_id: Series[pd.CategoricalDtype] = pa.Field(nullable=True)
    flow_type: Series[pd.CategoricalDtype] = pa.Field(nullable=True)
    sdk_date: Series[TEXT] = pa.Field(nullable=True)  # type: ignore[valid-type]
    publisher_id: Series[TEXT] = pa.Field(nullable=True)  # type: ignore[valid-type]
    game_id: Series[TEXT] = pa.Field(nullable=True)  # type: ignore[valid-type]
    bundle_id: Series[pd.CategoricalDtype] = pa.Field(nullable=False)
    appv: Series[pd.CategoricalDtype] = pa.Field(nullable=True)
    language: Series[pd.CategoricalDtype] = pa.Field(nullable=True)
    os: Series[pd.CategoricalDtype] = pa.Field(nullable=True)
    adv_id: Series[TEXT] = pa.Field(nullable=True)  # type: ignore[valid-type]
    gdpr: Series[pd.BooleanDtype] = pa.Field(nullable=True, metadata=BOOLEAN)
    ccpa: Series[pd.BooleanDtype] = pa.Field(nullable=True, metadata=BOOLEAN)
    country_code: Series[pd.CategoricalDtype] = pa.Field(nullable=True)
    date: Series[TIMESTAMP] = pa.Field(nullable=False)  # type: ignore[valid-type]

    @pa.check("severity", "bundle_id", name="not_blank", error=MISSING)
    @classmethod
    def not_blank(cls, values: Series[pd.CategoricalDtype]) -> Series[bool]:
        """Not only whitespace; decided once per category, not per row."""
        blank = np.asarray(values.cat.categories.astype(TEXT).str.strip().str.len() == 0)
        codes = values.cat.codes.to_numpy()  # -1 for a missing value: nullability's concern
        return pd.Series(~np.append(blank, False)[codes], index=values.index)

    class Config:
        strict = True
        ordered = True
        coerce = False


SCHEMA = ValidatedLog.to_schema()


@functools.lru_cache(maxsize=8)
def record_schema(start_us: int, end_us: int) -> pa.DataFrameSchema:
    """The model with the run's accepted record times [start, end): what validates each batch."""
    in_range = pa.Check.in_range(
        pd.Timestamp(start_us, unit="us", tz="UTC"),
        pd.Timestamp(end_us, unit="us", tz="UTC"),
        include_max=False,
        error=OUTSIDE_TIME_RANGE,
    )
    date = SCHEMA.columns[TIME_COLUMN]
    return SCHEMA.update_column(TIME_COLUMN, checks=[*date.checks, in_range])


def _arrow_type(dtype: str) -> arrow.DataType:
    if dtype == "Int64":
        return arrow.int64()
    if dtype == "boolean":
        return arrow.bool_()
    if dtype == "category":
        return arrow.dictionary(arrow.int32(), arrow.string())
    if dtype.startswith("datetime64[us"):
        return arrow.timestamp("us", tz="UTC")
    if dtype in ("string[pyarrow]", "str", "object"):
        return arrow.string()
    raise ValueError(f"no Arrow type for Pandera dtype {dtype!r}")


ARROW_SCHEMA: arrow.Schema = arrow.schema(
    [
        arrow.field(name, _arrow_type(str(column.dtype)), nullable=column.nullable)
        for name, column in SCHEMA.columns.items()
    ]
)
REQUIRED_COLUMNS: frozenset[str] = frozenset(
    name for name, column in SCHEMA.columns.items() if not column.nullable
)
BOOLEAN_COLUMNS: tuple[str, ...] = tuple(
    field.name for field in ARROW_SCHEMA if field.type == arrow.bool_()
)
INTEGER_COLUMNS: tuple[str, ...] = tuple(
    field.name for field in ARROW_SCHEMA if field.type == arrow.int64()
)
CATEGORY_COLUMNS: tuple[str, ...] = tuple(
    field.name for field in ARROW_SCHEMA if arrow.types.is_dictionary(field.type)
)
# Arrow → pandas as the model types them (dictionaries become categoricals on their own).
PANDAS_TYPES = {
    arrow.int64(): pd.Int64Dtype(),
    arrow.bool_(): pd.BooleanDtype(),
    arrow.string(): TEXT,
}

assert tuple(SCHEMA.columns) == COLUMNS, "the Pandera model must list the columns in file order"
