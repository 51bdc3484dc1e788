"""Tables in and out of files, in chunks: CSV (plain or gzip), Parquet and JSON Lines,
`-` for stdin and stdout, outputs that appear only once complete. Knows no model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import lazy_surface

if TYPE_CHECKING:
    from .atomic import STDIO, atomic_output, write_json
    from .limits import DEFAULT_BATCH_ROWS, MAX_COLUMNS
    from .paths import refuse_aliases
    from .readers import (
        INPUT_FORMATS,
        OUTPUT_FORMATS,
        Chunk,
        check_delimiter,
        detect_format,
        open_table,
    )
    from .whole_table import read_table
    from .writers import TableWriter, open_writer

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "INPUT_FORMATS",
    "MAX_COLUMNS",
    "OUTPUT_FORMATS",
    "STDIO",
    "Chunk",
    "TableWriter",
    "atomic_output",
    "check_delimiter",
    "detect_format",
    "open_table",
    "open_writer",
    "read_table",
    "refuse_aliases",
    "write_json",
]
# Where each name of the surface lives.
_SURFACE = {
    "Chunk": "readers",
    "open_table": "readers",
    "read_table": "whole_table",
    "detect_format": "readers",
    "check_delimiter": "readers",
    "INPUT_FORMATS": "readers",
    "OUTPUT_FORMATS": "readers",
    "TableWriter": "writers",
    "open_writer": "writers",
    "atomic_output": "atomic",
    "write_json": "atomic",
    "STDIO": "atomic",
    "DEFAULT_BATCH_ROWS": "limits",
    "MAX_COLUMNS": "limits",
    "refuse_aliases": "paths",
}
__getattr__ = lazy_surface(__name__, _SURFACE)
