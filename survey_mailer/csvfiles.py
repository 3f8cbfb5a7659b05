"""CSV files in and out: read what spreadsheets save, write cells they will not run.

Reading: Excel saves "CSV" as UTF-8 (with a BOM or not), as "Unicode text" (UTF-16 with a
BOM) or in the Windows code page, and with `;` between fields where the decimal separator is
a comma. The encoding is detected by charset-normalizer among exactly those, and the delimiter
by csv.Sniffer on the header line.

Writing: a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is run as a
formula by Excel, LibreOffice and Google Sheets (OWASP "CSV injection"), so every text cell
that does gets a leading `'`, which spreadsheets show as text. Every CSV this product writes
goes through `write` or `chunks`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO

import charset_normalizer

from .errors import ImportFailed

# What spreadsheets save "CSV" as; "utf_16" needs its BOM (Excel always writes one).
ENCODINGS = ("utf_8", "utf_16", "cp1252")
DELIMITERS = ",;\t"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NOT_TEXT = ("line 1: the file is not CSV text (UTF-8, UTF-16 or Windows-1252); if it is a "
            "spreadsheet, save it as CSV and import that")


# Reading ------------------------------------------------------------------------------------


def decode(data: bytes) -> str:
    """Return the text of a CSV file in UTF-8 (BOM or not), UTF-16 with a BOM, or Windows-1252."""
    if not data:
        return ""
    # Restricted to what spreadsheets write: left free, charset-normalizer reads a short
    # Windows-1252 file with "Åsa" as Central European (cp1250) "Ĺsa".
    match = charset_normalizer.from_bytes(data, cp_isolation=list(ENCODINGS)).best()
    text = None if match is None else str(match)
    if text is None or "\x00" in text:  # NUL: a binary file that happened to decode
        raise ImportFailed([NOT_TEXT])
    return text.removeprefix("\ufeff")


def delimiter(text: str) -> str:
    """Return the delimiter of a CSV text (comma, semicolon or tab), judged on its header."""
    header = re.match(r"[^\r\n]*", text).group()
    try:
        return csv.Sniffer().sniff(header, delimiters=DELIMITERS).delimiter
    except csv.Error:  # one column: nothing to tell apart
        return ","


def records(source: bytes | IO[bytes] | IO[str]) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) for each record of a CSV file, the header first.

    `source` is the file's bytes, a binary stream, or a text stream already decoded. The
    line number is where the record starts (a quoted field may span lines). A file that is
    not text raises ImportFailed before anything is yielded; a malformed record raises it
    with that record's line.
    """
    if not isinstance(source, bytes):
        source = source.read()
    text = decode(source) if isinstance(source, bytes) else source.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter(text))
    line = 1
    try:
        for fields in reader:
            yield line, fields
            line = reader.line_num + 1
    except csv.Error as e:
        raise ImportFailed([f"line {line}: {e}"]) from None


class Table:
    """A CSV file read for an all-or-nothing import: its header row, then its records.

    `key` turns a header cell into the name a column is known by. `rows()` refuses a
    column named twice, skips blank lines, and notes a record with the wrong number of
    fields, or a malformed one, in `problems` as `line N: reason`, in line order; the
    caller adds its own and imports nothing unless `problems` stays empty.
    """

    def __init__(self, source: bytes | IO[bytes] | IO[str], key: Callable[[str], str],
                 empty: str):
        self._records = records(source)
        try:
            _, self.fields = next(self._records)
        except StopIteration:
            raise ImportFailed([f"line 1: the file is empty; {empty}"]) from None
        self.header = [key(field) for field in self.fields]
        self.problems: list[str] = []

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        """Yield (line number, {column: value stripped}) for each record of data."""
        duplicates = sorted({h for h in self.header if self.header.count(h) > 1})
        if duplicates:
            raise ImportFailed([f'line 1: column "{duplicates[0]}" appears twice'])
        try:
            for line, values in self._records:
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(self.header):
                    self.problems.append(f"line {line}: {len(values)} fields, the header "
                                         f"has {len(self.header)}")
                    continue
                yield line, {h: v.strip() for h, v in zip(self.header, values, strict=True)}
        except ImportFailed as e:  # a malformed record: after the problems before it
            self.problems.extend(e.problems)


# Writing ------------------------------------------------------------------------------------


def defuse(value: object) -> object:
    """Return a cell value a spreadsheet will show as text, never run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def chunks(rows: Iterable[Mapping], columns: Sequence[str], *, rows_per_chunk: int = 1000,
           lineterminator: str = "\r\n") -> Iterator[str]:
    """Yield CSV text, header first, a chunk per `rows_per_chunk` rows, every cell defused.

    For a streamed download (a Flask Response over this generator), so that a million rows
    never sit in memory at once; columns not in `columns` are left out.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore",
                            lineterminator=lineterminator)
    writer.writeheader()
    for number, row in enumerate(rows, 1):
        writer.writerow({k: defuse(v) for k, v in row.items()})
        if number % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write(stream: IO[str], rows: Iterable[Mapping], columns: Sequence[str], *,
          lineterminator: str = "\r\n") -> int:
    """Write rows as CSV to a text stream, every cell defused; return how many rows."""
    count = 0

    def counted():
        nonlocal count
        for row in rows:
            count += 1
            yield row

    for chunk in chunks(counted(), columns, lineterminator=lineterminator):
        stream.write(chunk)
    return count
