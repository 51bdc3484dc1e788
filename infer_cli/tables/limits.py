"""Sizes the table readers work in, shared by every command that reads tables.

Kept free of imports so the command line can show them in its help without loading pyarrow.
"""

DEFAULT_BATCH_ROWS = 50_000
"""Rows read, scored and written per chunk unless --batch-size says otherwise."""

MAX_COLUMNS = 10_000
"""Columns a table may have unless --max-columns says otherwise. pyarrow's CSV parser sets
aside about 24 KiB per column, so a header of 100,000 names costs 2.4 GB before a row is read
(measured); a model of more inputs than this is rare, and a table this wide is usually a
mistake (a row taken for the header, a wrong --delimiter)."""
