"""Sizes the table readers work in, shared by every command that reads tables.

Kept free of imports so the command line can show them in its help without loading pyarrow.
"""

DEFAULT_BATCH_ROWS = 50_000
"""Rows read, scored and written per chunk unless --batch-size says otherwise."""
