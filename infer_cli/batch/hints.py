"""Hints for an input whose header does not fit the model: another field separator, rows
without a header row, JSON Lines read as CSV."""

from __future__ import annotations

from ..core.signature import Signature
from ..tables.readers import CsvReader, TableReader


def delimiter_hint(reader: TableReader) -> str:
    """A hint for the usual cause of a one-column header: another field separator."""
    if reader.text_columns and len(reader.columns) == 1:
        found = [mark for mark in (";", "\t", "|") if mark in reader.columns[0]]
        if found:
            return f"; is the file separated by {found[0]!r}? try --delimiter {found[0]!r}"
    return ""


def header_hint(reader: TableReader, signature: Signature) -> str:
    """A hint for rows given without a header, or JSON given as CSV."""
    if not isinstance(reader, CsvReader) or not reader.has_header:
        return ""
    names = reader.columns
    if names and names[0].lstrip().startswith(("{", "[")):
        return "; is this JSON Lines? pass --input-format jsonl"
    expected = signature.names
    values = sum(_is_number(name) for name in names) > len(names) / 2
    if values or (len(names) == len(expected) and not set(names) & set(expected)):
        return (
            "; the first line is read as the header: for rows without one, pass --no-header "
            f"(fields in the model's order: {', '.join(expected)})"
        )
    return ""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
