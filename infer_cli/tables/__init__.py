"""Tables in and out of files, in chunks: CSV and TSV (plain or gzip), Parquet and JSON Lines,
`-` for stdin and stdout, outputs that appear only once complete. Knows no model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import lazy_surface

if TYPE_CHECKING:
    from .atomic import STDIO, atomic_output, write_json
    from .inputs import input_format, open_table, output_format
    from .limits import DEFAULT_BATCH_ROWS, MAX_COLUMNS
    from .parquet import is_text_type
    from .paths import refuse_aliases
    from .readers import Chunk, check_delimiter
    from .whole_table import read_table
    from .writers import TableWriter, open_writer

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "MAX_COLUMNS",
    "STDIO",
    "Chunk",
    "TableWriter",
    "atomic_output",
    "check_delimiter",
    "input_format",
    "is_text_type",
    "open_table",
    "open_writer",
    "output_format",
    "read_table",
    "refuse_aliases",
    "write_json",
]
# Where each name of the surface lives.
_SURFACE = {
    "Chunk": "readers",
    "open_table": "inputs",
    "input_format": "inputs",
    "output_format": "inputs",
    "read_table": "whole_table",
    "check_delimiter": "readers",
    "TableWriter": "writers",
    "open_writer": "writers",
    "atomic_output": "atomic",
    "write_json": "atomic",
    "STDIO": "atomic",
    "DEFAULT_BATCH_ROWS": "limits",
    "MAX_COLUMNS": "limits",
    "refuse_aliases": "paths",
    "is_text_type": "parquet",
}
__getattr__ = lazy_surface(__name__, _SURFACE)
