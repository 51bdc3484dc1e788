"""Cutting a CSV byte stream into blocks of whole records, and finding the line of each record.

pyarrow parses the blocks; this module only decides where records end, so that each block
can be parsed (and parsed again after an error) on its own, and every row can be traced back
to the line it starts on, even when quoted fields hold newlines.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from ..errors import DataError

BOM = b"\xef\xbb\xbf"
QUOTE = b'"'
NEWLINE = b"\n"
# A record longer than this is almost always an unclosed quote swallowing the rest of the file.
MAX_RECORD_BYTES = 64 * 1024 * 1024
WINDOW_BYTES = 1024 * 1024
# Python's csv module refuses a field over 128 KiB unless told otherwise; ours may fill a record.
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))


@dataclass
class Block:
    """Whole CSV records, the line number of their first byte, and where each record starts."""

    data: bytes
    first_line: int
    delimiter: str
    _lines: np.ndarray | None = field(default=None, repr=False)

    @property
    def has_quotes(self) -> bool:
        return QUOTE in self.data

    def record_lines(self) -> np.ndarray:
        """The line each non-empty record starts on, in order (blank lines hold no record)."""
        if self._lines is None:
            self._lines = self._find_record_lines()
        return self._lines

    def _find_record_lines(self) -> np.ndarray:
        if self.has_quotes and _has_stray_quotes(self.data, self.delimiter):
            return np.array(
                [line for line, _ in _exact_records(self.data, self.delimiter, self.first_line)],
                dtype=np.int64,
            )
        raw = np.frombuffer(self.data, dtype=np.uint8)
        lines: list[np.ndarray] = []
        quotes_before = 0
        newlines_before = 0
        # The last record end seen (-1: none yet) and the newlines before the record after it.
        previous_end = -1
        record_newlines = 0
        for start, window in _windows(raw):
            newlines = np.flatnonzero(window == ord(NEWLINE))
            newline_numbers = newlines_before + np.arange(len(newlines))
            if self.has_quotes:
                # Outside quotes, where an even number of quotes precedes the newline.
                quotes = np.flatnonzero(window == ord(QUOTE))
                outside = (quotes_before + np.searchsorted(quotes, newlines)) % 2 == 0
                newlines, newline_numbers = newlines[outside], newline_numbers[outside]
                quotes_before += len(quotes)
            newlines_before += int(np.count_nonzero(window == ord(NEWLINE)))
            if len(newlines) == 0:
                continue
            ends = newlines + start
            starts = np.concatenate(([previous_end + 1], ends[:-1] + 1))
            before = np.concatenate(([record_newlines], newline_numbers[:-1] + 1))
            lines.append(self.first_line + before[_filled(raw, starts, ends)])
            previous_end, record_newlines = int(ends[-1]), int(newline_numbers[-1]) + 1
        if previous_end + 1 < len(raw):
            last = np.array([previous_end + 1]), np.array([len(raw)])
            lines.append(self.first_line + np.array([record_newlines])[_filled(raw, *last)])
        return np.concatenate(lines).astype(np.int64) if lines else np.empty(0, np.int64)


def _filled(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which records hold something: not empty, and not a lone carriage return."""
    lengths = ends - starts
    ends_in_cr = (lengths == 1) & (raw[np.minimum(starts, len(raw) - 1)] == ord("\r"))
    return (lengths > 0) & ~ends_in_cr


def _windows(raw: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """`raw` in slices of WINDOW_BYTES, each with its offset, so that the arrays made from a
    slice (positions of quotes, 8 bytes each) stay a few MiB whatever the block holds."""
    for start in range(0, len(raw), WINDOW_BYTES):
        yield start, raw[start : start + WINDOW_BYTES]


class RecordBlocks:
    """The header and the blocks of a CSV stream, each block ending on a record boundary.

    Iterating yields blocks of about `block_size` bytes; `block_size` may be changed between
    blocks. Lines are counted with `\\n`, so CRLF files number the same way as LF files.
    """

    def __init__(
        self,
        stream: IO[bytes],
        *,
        source: str,
        delimiter: str,
        block_size: int,
        header: bool = True,
    ):
        self.source = source
        self.delimiter = delimiter
        self.block_size = block_size
        self.bytes_read = 0
        self._stream = stream
        self._pending = b""
        self._eof = False
        self._next_line = 1
        self.header = self._read_header() if header else b""
        if not header:
            self._pending = self._read(64 * 1024).removeprefix(BOM)

    def __iter__(self) -> Iterator[Block]:
        while True:
            block = self._next_block()
            if block is None:
                return
            yield block

    def _read(self, size: int) -> bytes:
        data = self._stream.read(size)
        if not data:
            self._eof = True
            return b""
        self.bytes_read += len(data)
        return data

    def _read_header(self) -> bytes:
        buffer = self._read(64 * 1024)
        buffer = buffer.removeprefix(BOM)
        while True:
            end = _first_record_end(buffer, self.delimiter)
            if end >= 0 or self._eof:
                break
            if len(buffer) > MAX_RECORD_BYTES:
                raise DataError(
                    f"{self.source}, line 1: the header never ends (an unclosed quote?)"
                )
            buffer += self._read(len(buffer))
        if end < 0:
            end = len(buffer)
            if buffer.count(QUOTE) % 2:
                raise DataError(f"{self.source}, line 1: a quoted field is never closed")
        header = buffer[:end]
        self._pending = buffer[end:]
        self._next_line = 1 + header.count(NEWLINE)
        return header.rstrip(b"\r\n")

    def _next_block(self) -> Block | None:
        buffer = self._pending
        while True:
            if not self._eof and len(buffer) < self.block_size:
                buffer += self._read(self.block_size - len(buffer))
            if self._eof:
                end = len(buffer)
                break
            end = _last_record_end(buffer, self.delimiter)
            if end > 0:
                break
            if len(buffer) > MAX_RECORD_BYTES:
                raise DataError(
                    f"{self.source}, line {self._next_line}: a record longer than "
                    f"{MAX_RECORD_BYTES // 2**20} MiB (an unclosed quote?)"
                )
            buffer += self._read(max(self.block_size, len(buffer)))
        self._pending = buffer[end:]
        data = buffer[:end]
        if _only_line_ends(data):
            if self._eof and not self._pending:
                return None
            self._next_line += data.count(NEWLINE)
            return self._next_block()
        block = Block(data, self._next_line, self.delimiter)
        if self._eof and not self._pending and _ends_inside_quotes(block):
            line = int(block.record_lines()[-1])
            raise DataError(f"{self.source}, line {line}: a quoted field is never closed")
        self._next_line += data.count(NEWLINE)
        return block


def _only_line_ends(data: bytes) -> bool:
    """Whether `data` holds blank lines only (checked without copying a large block)."""
    return data[:1] in (b"", b"\n", b"\r") and not data.strip(b"\r\n")


def _first_record_end(data: bytes, delimiter: str) -> int:
    """Index just past the first record's terminating newline, or -1 if it is not complete."""
    position = data.find(NEWLINE)
    if position >= 0 and _has_stray_quotes(data[:position], delimiter):
        return position + 1
    while position >= 0:
        if data.count(QUOTE, 0, position) % 2 == 0:
            return position + 1
        position = data.find(NEWLINE, position + 1)
    return -1


def _last_record_end(data: bytes, delimiter: str) -> int:
    """Index just past the last complete record of `data`, or -1 if there is none.

    Outside quoted fields every newline ends a record, and a newline is outside quotes when
    an even number of quotes precedes it. That holds for RFC 4180 CSV; a stray quote in the
    middle of an unquoted field (`5"3`) breaks the count, so such blocks are cut by a real
    parser instead.
    """
    end = data.rfind(NEWLINE)
    if end < 0:
        return -1
    if QUOTE not in data:
        return end + 1
    if _has_stray_quotes(data, delimiter):
        ends = [stop for _, stop in _exact_records(data, delimiter, 1)]
        # The last record may continue past the data we have.
        return ends[-2] if len(ends) > 1 else -1
    quotes = data.count(QUOTE, 0, end)
    while quotes % 2:
        previous = data.rfind(NEWLINE, 0, end)
        if previous < 0:
            return -1
        quotes -= data.count(QUOTE, previous, end)
        end = previous
    return end + 1


def _ends_inside_quotes(block: Block) -> bool:
    """Whether the last record opens a quote it never closes (the parser would take the rest
    of the file as one value)."""
    data = block.data
    return (
        block.has_quotes
        and data.count(QUOTE) % 2 == 1
        and not _has_stray_quotes(data, block.delimiter)
    )


def _has_stray_quotes(data: bytes, delimiter: str) -> bool:
    """Whether a quote sits inside an unquoted field, where it is a plain character: a quote
    with neither a delimiter, a line end nor another quote on either side."""
    if QUOTE not in data:
        return False
    edges = np.zeros(256, dtype=bool)
    edges[[ord(delimiter), ord(NEWLINE), ord("\r"), ord(QUOTE)]] = True
    raw = np.frombuffer(data, dtype=np.uint8)
    for start, window in _windows(raw):
        quotes = window == ord(QUOTE)
        if not quotes.any():
            continue
        at_edge = edges[window]
        stop = start + len(window)
        # Beyond either end of the data is a line end.
        edge_before = np.concatenate(([start == 0 or edges[raw[start - 1]]], at_edge[:-1]))
        edge_after = np.concatenate((at_edge[1:], [stop == len(raw) or edges[raw[stop]]]))
        if (quotes & ~edge_before & ~edge_after).any():
            return True
    return False


def _exact_records(data: bytes, delimiter: str, first_line: int) -> list[tuple[int, int]]:
    """(line, end) of each non-empty record, found by Python's csv parser: slow, exact."""
    position = 0
    line = first_line

    def lines() -> Iterator[str]:
        nonlocal position, line
        while position < len(data):
            end = data.find(NEWLINE, position)
            end = len(data) if end < 0 else end + 1
            text = data[position:end].decode("utf-8", errors="replace")
            position = end
            line += 1
            yield text

    records = []
    reader = csv.reader(lines(), delimiter=delimiter)
    while True:
        start = line
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error:
            break
        if fields:
            records.append((start, position))
    return records
