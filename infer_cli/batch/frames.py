"""Rows as the model reads them: the columns of its signature taken from an arrow table as
pandas, numbers in CSV (or JSON Lines) text parsed by pyarrow, missing values spelled as
pandas' read_csv spells them, so that `predict` and `evaluate` read text the way `train` did;
predicted labels back as arrow; and the allocator arrow takes for them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..core.coded import Coded
from ..core.signature import NUMERIC_TYPES, Signature

if TYPE_CHECKING:
    import pyarrow as pa

# What pandas' read_csv reads as missing, so that predict reads CSV the way train did.
NA_STRINGS = (
    *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND"),
    *("1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"),
)
_FIRST_ROWS = 16


def model_frame(signature: Signature, table: pa.Table, *, from_text: bool) -> pd.DataFrame:
    """The columns the model reads, as pandas; numbers from CSV text parsed by pyarrow."""
    columns = read_columns(signature, table, from_text=from_text)
    return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))


def read_columns(signature: Signature, table: pa.Table, *, from_text: bool) -> dict[str, Any]:
    """The columns of `model_frame` before pandas holds them: from text, numpy arrays of
    float64 (numbers) or objects (strings, None where missing); else pandas Series."""
    return read_coded_columns(signature, table, from_text=from_text)[0]


def read_coded_columns(
    signature: Signature, table: pa.Table, *, from_text: bool
) -> tuple[dict[str, Any], dict[str, Coded]]:
    """`read_columns`, and those of its columns of text that hold few distinct values also
    as codes into them (arrow's dictionary encoding of the column)."""
    if signature.positional:
        names = list(table.column_names[: len(signature.inputs)])
        types = dict.fromkeys(names, "any")
    else:
        types = {c.name: c.dtype for c in signature.inputs if c.name in table.column_names}
    columns: dict[str, Any] = {}
    coded: dict[str, Coded] = {}
    for name, kind in types.items():
        column = table[name]
        found = None
        if not from_text:
            columns[name] = column.to_pandas()
        elif kind in (*NUMERIC_TYPES, "any"):
            # "any" (a bare estimator's columns): numbers when they all read as numbers,
            # as pandas' read_csv would have given the estimator in training.
            columns[name], found = _text_to_numbers(column)
        else:
            columns[name], found = _coded_objects(_without_missing(column))
        if found is not None:
            coded[name] = found
    return columns, coded


def _text_to_numbers(column: pa.ChunkedArray) -> tuple[Any, Coded | None]:
    """Floats parsed by pyarrow; on any value it cannot parse, the text, for validation to
    report or refuse row by row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # A cast that fails costs twenty times one that succeeds: a column of words is found
    # out by its first rows, whose failure is the whole column's.
    first = column.slice(0, _FIRST_ROWS)
    try:
        pc.cast(first, pa.float64())
    except pa.ArrowInvalid:
        try:
            pc.cast(_without_missing(first), pa.float64())
        except pa.ArrowInvalid:
            return _coded_objects(_without_missing(column))
    try:
        return pc.cast(column, pa.float64()).to_numpy(), None
    except pa.ArrowInvalid:
        pass
    cleaned = _without_missing(column)
    try:
        return pc.cast(cleaned, pa.float64()).to_numpy(), None
    except pa.ArrowInvalid:
        return _coded_objects(cleaned)


def text_to_objects(column: pa.ChunkedArray) -> Any:
    """Text values with the missing-value spellings read_csv knows turned into None."""
    return _coded_objects(_without_missing(column))[0]


def _without_missing(column: pa.ChunkedArray) -> pa.ChunkedArray:
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = pc.is_in(column, value_set=pa.array(NA_STRINGS))
    return pc.if_else(missing, pa.scalar(None, pa.string()), column)


def _coded_objects(strings: pa.ChunkedArray) -> tuple[np.ndarray, Coded | None]:
    """Strings as a numpy array of objects, None where missing, each distinct string made
    once: a column of categories holds a few values many times, and a Python string per
    cell cost a chunk of 50,000 rows megabytes (and the peak several chunks' worth). With
    them, the codes into the distinct strings, when there are few."""
    import pyarrow.compute as pc

    combined = strings.combine_chunks()
    encoded = pc.dictionary_encode(combined)
    if len(encoded.dictionary) > len(encoded) // 2:  # mostly distinct: nothing to share
        return combined.to_numpy(zero_copy_only=False), None
    distinct = encoded.dictionary.to_numpy(zero_copy_only=False)
    words = np.empty(len(distinct) + 1, dtype=object)
    words[:-1] = distinct  # and None last, for the gaps
    codes = encoded.indices.fill_null(len(distinct)).to_numpy()
    return words[codes], Coded(codes, words)


def arrow_memory_pool() -> pa.MemoryPool:
    """Arrow's allocator for a run: jemalloc handing freed pages back at once where pyarrow
    has it, else the C library's (mimalloc, pyarrow's default, keeps caches per thread that
    added about 40 MB). Measured on 1M churn rows in chunks of 50,000, peak RSS: the C
    library's 345 MB, jemalloc 303 MB, with its pages returned at once 284 MB, at the same
    CPU time.

    Under a cap on the address space (`ulimit -v`, RLIMIT_AS), the C library's: jemalloc
    reserves address space in large extents ahead of use, and failed to allocate 64 MB
    under a 1.5 GiB cap that the C library's allocator scores within."""
    import pyarrow as pa

    if _address_space_capped():
        return pa.system_memory_pool()
    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(0)
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.system_memory_pool()
    return pool


def _address_space_capped() -> bool:
    try:
        import resource
    except ImportError:  # not a POSIX system: no such cap
        return False
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return soft != resource.RLIM_INFINITY


def label_array(values: np.ndarray, kind: pa.DataType, classes: list[Any] | None) -> pa.Array:
    """Predicted labels as an arrow array. String labels are looked up among the classes
    rather than converted one by one, which is several times faster."""
    import pyarrow as pa

    if values.dtype.kind == "U" and classes and all(isinstance(c, str) for c in classes):
        known = np.array(sorted(classes))
        positions = np.searchsorted(known, values).clip(0, len(known) - 1)
        if bool((known[positions] == values).all()):
            return pa.array(known.astype(object), pa.string()).take(pa.array(positions))
    return pa.array(values, from_pandas=True).cast(kind)
