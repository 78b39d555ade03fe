"""A backup manifest read one row at a time, so its memory is bounded by a row, not the file.

The manifest is ``{head..., "entries": [row, row, ...]}`` (``backup`` writes ``entries``
last). ``RowReader`` parses the head, then yields one decoded row at a time from a stream
read in 1 MiB blocks; a row longer than ``MAX_ROW`` characters, a head longer than
``MAX_HEAD``, bad UTF-8 or bad JSON is an ArchiveError naming the archive. It also hashes
what it reads, for the manifest's checksum member.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from llamacache.errors import ArchiveError as ArchiveError  # its old home

MAX_ROW = 2 << 20  # characters of one manifest row (a key may be long, not unbounded)
MAX_HEAD = 1 << 20  # characters of the manifest before its rows (schema, caches)
_READ = 1 << 20
_ENTRIES = ',"entries":['


class RowReader:
    """Parses ``{head..., "entries": [row, row, ...]}`` one row at a time from a stream."""

    def __init__(self, src: IO[bytes], archive: Path) -> None:
        self.src, self.archive = src, archive
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.sha = hashlib.sha256()
        self.dec = json.JSONDecoder()
        self.utf8 = codecs.getincrementaldecoder("utf-8")()

    def _more(self) -> bool:
        if self.eof:
            return False
        data = self.src.read(_READ)
        self.sha.update(data)
        try:
            text = self.utf8.decode(data, final=not data)
        except UnicodeDecodeError:
            raise self._bad("not UTF-8") from None
        if not data:
            self.eof = True
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        return bool(data)

    def _bad(self, why: str) -> ArchiveError:
        return ArchiveError(f"{self.archive}: the manifest is not valid ({why})")

    def head(self) -> dict[str, Any]:
        while (i := self.buf.find(_ENTRIES)) < 0:
            if len(self.buf) > MAX_HEAD or not self._more():
                raise self._bad("no entries list")
        try:
            head = json.loads(self.buf[:i] + "}")
        except (ValueError, RecursionError) as exc:
            raise self._bad(str(exc)) from None
        if not isinstance(head, dict):
            raise self._bad("not an object")
        self.pos = i + len(_ENTRIES)
        return head

    def _skip_ws(self) -> str:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                raise self._bad("truncated")

    def rows(self) -> Iterator[Any]:
        if self._skip_ws() == "]":
            self.pos += 1
            self._end()
            return
        while True:
            yield self._row()
            c = self._skip_ws()
            self.pos += 1
            if c == "]":
                self._end()
                return
            if c != ",":
                raise self._bad("expected , or ]")

    def _row(self) -> Any:
        while True:
            try:
                row, end = self.dec.raw_decode(self.buf, self.pos)
            except RecursionError:
                raise self._bad("a row is nested too deeply") from None
            except ValueError as exc:
                if len(self.buf) - self.pos > MAX_ROW:
                    raise self._bad(f"a row is longer than {MAX_ROW} characters") from None
                if not self._more():
                    raise self._bad(str(exc)) from None
                continue
            # a row ending exactly at the buffer's end may go on in the next read
            if end == len(self.buf) and not self.eof and self._more():
                continue
            self.pos = end
            return row

    def _end(self) -> None:
        if self._skip_ws() != "}":
            raise self._bad("expected }")
        self.pos += 1
        while self._more():
            if len(self.buf) - self.pos > MAX_HEAD:
                raise self._bad("trailing data")
        if self.buf[self.pos :].strip():
            raise self._bad("trailing data")
