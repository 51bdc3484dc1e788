"""One cell of a column as `Signature.validate` reads it: whether it is missing, how a
message shows it, and a column of true/false values in their spellings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import SchemaError


def is_missing(value: Any) -> bool:
    """None, pandas' NA or NaN."""
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def show(value: Any) -> str:
    """A value as a message quotes it, cut to 40 characters."""
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


_TRUTH = {"true": True, "false": False, "1": True, "0": False}


def cast_boolean(series: pd.Series, name: str, first_row: int) -> np.ndarray:
    """True/False values, also written as true/false or 1/0; missing values stay missing,
    which makes the column objects, as pandas makes a boolean column with gaps."""
    if pd.api.types.is_bool_dtype(series) and not series.hasnans:
        return series.to_numpy(dtype=bool)
    values = series.to_numpy(dtype=object, na_value=np.nan)
    cast = np.empty(len(values), dtype=object)
    for position, value in enumerate(values):
        if is_missing(value):
            cast[position] = np.nan
        elif isinstance(value, (bool, np.bool_)):
            cast[position] = bool(value)
        elif str(value).strip().lower() in _TRUTH:
            cast[position] = _TRUTH[str(value).strip().lower()]
        else:
            raise SchemaError(
                f"{show(value)} is not true or false", column=name, row=first_row + position
            )
    if any(is_missing(value) for value in cast):
        return cast
    return cast.astype(bool)
