"""The one output sink: every byte llamacache's commands write goes through ``Renderer``.

stdout is data, stderr is talk. A command hands its report to the renderer, which writes
it as a human table, as exactly one JSON document (``--json``), as CSV, as Prometheus
text, as keys for a pipe, or as a value's raw bytes; warnings, notes and progress go to
stderr and are silenced by ``--quiet``. The one streaming command, ``daemon``, writes
one line per run on stderr (``--json``: JSON lines, one object a line) through ``log``.
No other module under ``cli/`` writes to stdout or stderr (tests/cli/test_sink.py).

Tables are plain text, one record per line, never folded. On a terminal (or wherever
``COLUMNS`` is set) they fit its width: the columns a command marks ``wide_only`` are left
out unless ``--wide``, keys and paths are elided in the middle, other text is cut at its
end. Piped with no ``COLUMNS``, every cell prints whole, so ``grep`` and ``awk`` see
stable records. rich is imported only for a progress bar on a terminal: a command that
prints a table starts without it.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import textwrap
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from llamacache.config.units import format_duration, format_size

if TYPE_CHECKING:
    from llamacache.ops._report import Report

ProgressCallback = Callable[[int, int | None], None]  # (done, total) in the op's unit
ELLIPSIS = "…"
GAP = "  "  # between table columns
MIN_ELIDED = 12  # a key is never cut below this many columns


def size(n: int | None) -> str:
    return "-" if n is None else format_size(n)


def when(ts: float | None) -> str:
    """An epoch time as local ISO-8601 to the second ("-" when unknown)."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")


_AGO_STEPS = ((60, 1, "s"), (3600, 60, "m"), (2 * 86400, 3600, "h"), (60 * 86400, 86400, "d"))


def ago(ts: float | None, now: float | None = None) -> str:
    """An epoch time relative to now: "3d ago", "in 2h", "now" ("-" when unknown)."""
    if ts is None:
        return "-"
    delta = (time.time() if now is None else now) - ts
    span = abs(delta)
    if span < 1:
        return "now"
    for limit, unit, suffix in _AGO_STEPS:
        if span < limit:
            text = f"{int(span // unit)}{suffix}"
            break
    else:
        days = span / 86400
        text = f"{int(days // 30)}mo" if days < 730 else f"{int(days // 365)}y"
    return f"{text} ago" if delta > 0 else f"in {text}"


def duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def cells(text: str) -> int:
    """Terminal columns ``text`` takes (East Asian wide characters take two)."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _take(text: str, width: int, from_end: bool = False) -> str:
    """The longest head (or tail) of ``text`` that fits ``width`` columns."""
    out, used = [], 0
    for c in reversed(text) if from_end else text:
        w = cells(c)
        if used + w > width:
            break
        out.append(c)
        used += w
    return "".join(reversed(out) if from_end else out)


def elide_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` columns, its middle replaced by an ellipsis."""
    if cells(text) <= width:
        return text
    if width <= 1:
        return _take(text, width)
    head = width // 2
    return _take(text, head) + ELLIPSIS + _take(text, width - 1 - head, from_end=True)


def elide_end(text: str, width: int) -> str:
    """``text`` in at most ``width`` columns, cut at its end."""
    if cells(text) <= width:
        return text
    return _take(text, max(0, width - 1)) + ELLIPSIS if width >= 1 else ""


def _isatty(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _columns_env() -> int | None:
    text = os.environ.get("COLUMNS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def output_width(stream: IO[Any]) -> int | None:
    """The width to fit: ``COLUMNS`` if set, else the terminal's, else None (no limit)."""
    env = _columns_env()
    if env is not None:
        return env
    if _isatty(stream):
        try:
            return os.get_terminal_size(stream.fileno()).columns or 80
        except (OSError, ValueError):
            return 80
    return None


def fit_widths(
    natural: list[int], floors: list[int], order: Sequence[int], width: int
) -> list[int]:
    """Column widths summing (with gaps) to at most ``width``: shrink the columns in
    ``order`` one after another, each no lower than its floor."""
    widths = list(natural)
    excess = sum(widths) + len(GAP) * (len(widths) - 1) - width
    for j in order:
        if excess <= 0:
            break
        cut = min(excess, max(0, widths[j] - floors[j]))
        widths[j] -= cut
        excess -= cut
    return widths


# -- before a Renderer exists: the version, and the error boundary -------------------------------


def version(text: str) -> None:
    """``llamacache --version`` when typer answers it (the fast path is cli/main.py's)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def error(message: str, hint: str | None = None) -> None:
    """An error as one line on stderr (``llamacache: error: ...``), and a hint line."""
    sys.stdout.flush()
    sys.stderr.write(f"llamacache: error: {message}\n" + (f"{hint}\n" if hint else ""))
    sys.stderr.flush()


def traceback_text(text: str) -> None:
    """``--debug``: a traceback as it is, on stderr."""
    sys.stderr.write(text)
    sys.stderr.flush()


def silence_stdout() -> None:
    """After EPIPE (``llamacache ls | head``), point stdout at /dev/null so the
    interpreter's final flush stays quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


class Renderer:
    """One output sink per invocation; commands hand it reports."""

    def __init__(self, *, json_mode: bool, quiet: bool, wide: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.wide = wide
        # --wide: every column at full width, however wide the terminal
        self.width = None if wide else output_width(sys.stdout)
        self.err_width = output_width(sys.stderr) if _isatty(sys.stderr) else None
        self.color = _isatty(sys.stderr) and "NO_COLOR" not in os.environ

    # -- data -----------------------------------------------------------------------------

    def json(self, report: Report, sections: Mapping[str, Report | None] | None = None) -> None:
        """One JSON document: the report, plus each given section under its name
        (``inspect --page-cache`` adds ``page_cache``)."""
        body = report.to_json()
        body.update({k: v.to_json() for k, v in (sections or {}).items() if v is not None})
        sys.stdout.write(json.dumps(body, indent=2, sort_keys=False) + "\n")
        sys.stdout.flush()

    def emit(
        self,
        report: Report,
        human: Callable[[Renderer, Any], None],
        sections: Mapping[str, Report | None] | None = None,
    ) -> None:
        """JSON when asked, else the command's human renderer (skipped with --quiet)."""
        if self.json_mode:
            self.json(report, sections)
        elif not self.quiet:
            human(self, report)

    def emit_caches(
        self,
        report: Report,
        human: Callable[[Renderer, Any], None],
        sections: Mapping[str, Report | None] | None = None,
    ) -> None:
        """Warn each cache's ``warnings`` (stderr), then emit: for per-cache admin reports."""
        for cache in getattr(report, "caches", ()):
            for warning in getattr(cache, "warnings", ()):
                self.warn(warning)
        self.emit(report, human, sections)

    def keys(self, keys: Iterable[str], *, null: bool = False) -> None:
        """Keys for a pipe, one a line; ``null``: each ended by NUL, so any key (newlines
        included) survives ``| llamacache rm -0 -``."""
        if null:
            out = sys.stdout.buffer
            for key in keys:
                out.write(key.encode("utf-8", "surrogateescape") + b"\0")
            out.flush()
            return
        for key in keys:
            sys.stdout.write(key + "\n")
        sys.stdout.flush()

    def text(self, text: str) -> None:
        """Text written verbatim (Prometheus exposition, generated files): never folded."""
        sys.stdout.write(text)
        sys.stdout.flush()

    def csv(self, rows: Iterable[Sequence[Any]]) -> None:
        """Rows as CSV on stdout, header first (the caller's first row)."""
        csv.writer(sys.stdout, lineterminator="\n").writerows(rows)
        sys.stdout.flush()

    @contextmanager
    def binary(self) -> Iterator[tuple[BinaryIO, bool]]:
        """stdout for raw bytes (a value), and whether it is a terminal."""
        stream = sys.stdout.buffer
        try:
            yield stream, _isatty(sys.stdout)
        finally:
            stream.flush()

    def log(self, text: str) -> None:
        """One line of a streaming command's log on stderr, never wrapped (log readers
        and ``--json`` JSON lines need one record a line); the caller decides on --quiet."""
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def status(self, text: str) -> None:
        """A one-line verdict on stderr (``llamacache: ...``) that --quiet keeps, so a
        script that silenced the table still learns why the exit code is 1."""
        sys.stdout.flush()
        sys.stderr.write(f"llamacache: {text}\n")
        sys.stderr.flush()

    def verdict(self, report: Any) -> None:
        """``verify`` under --quiet (no table): one stderr line saying why it exits 1."""
        if not report.ok and self.quiet and not self.json_mode:
            self.status(f"verify found {report.problem_count} problem(s)")

    def confirm(self, question: str, *, yes: bool, action: str) -> bool:
        """True to go ahead: ``--yes`` given, or the person at the terminal said yes.
        With no terminal to ask, a UsageError that says to pass --yes (never a hang in cron)."""
        if yes:
            return True
        if not (_isatty(sys.stdin) and _isatty(sys.stderr)):
            from llamacache.errors import UsageError

            raise UsageError(f"{action} needs confirmation and no terminal is attached; pass --yes")
        import typer

        return typer.confirm(question, default=False, err=True)

    def time(self, ts: float | None) -> str:
        """A time as people read it here: "3d ago" by default, ISO-8601 with --wide."""
        return when(ts) if self.wide else ago(ts)

    def table(
        self,
        title: str | None,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        right: Sequence[str] = (),
        elide: Sequence[str] = ("key", "path", "source"),
        wide_only: Sequence[str] = (),
    ) -> None:
        """Rows under a header, one per line; ``wide_only`` columns need ``--wide``.

        With a width to fit, the ``elide`` columns shrink first (middle elided), then the
        other text columns (end cut); numbers and sizes are never cut.
        """
        keep = [i for i, c in enumerate(columns) if self.wide or c not in wide_only]
        heads = [columns[i] for i in keep]
        body = [[str(row[i]) for i in keep] for row in rows]
        natural = [max([cells(h)] + [cells(r[j]) for r in body]) for j, h in enumerate(heads)]
        widths = natural
        if self.width is not None:
            floors = [
                min(natural[j], max(cells(h), MIN_ELIDED if h in elide else 0, 4))
                if h not in right
                else natural[j]
                for j, h in enumerate(heads)
            ]
            order = [j for j, h in enumerate(heads) if h in elide]
            order += sorted(
                (j for j, h in enumerate(heads) if h not in elide and h not in right),
                key=lambda j: -natural[j],
            )
            widths = fit_widths(natural, floors, order, self.width)
        if title:
            self.line(title)
        for n, row in enumerate([heads, *body]):
            out = []
            for j, text in enumerate(row):
                w = widths[j]
                if cells(text) > w:
                    cut = elide_middle if heads[j] in elide and n else elide_end
                    text = cut(text, w)
                pad = " " * (w - cells(text))
                out.append(pad + text if heads[j] in right else text + pad)
            self.line(GAP.join(out).rstrip())

    def line(self, text: str) -> None:
        """A line of human output on stdout, elided in the middle past the width to fit."""
        if self.quiet or self.json_mode:
            return
        if self.width is not None and cells(text) > self.width:
            text = elide_middle(text, self.width)
        sys.stdout.write(text + "\n")

    # -- talk --------------------------------------------------------------------------------

    def _talk(self, text: str, color: str | None = None) -> None:
        """One line on stderr; on a terminal, wrapped at its width (logs get one line)."""
        if self.err_width is not None and cells(text) > self.err_width:
            text = textwrap.fill(text, self.err_width, subsequent_indent="  ")
        if color and self.color:
            text = f"\x1b[{color}m{text}\x1b[0m"
        sys.stdout.flush()
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def warn(self, warning: object) -> None:
        """A warning (a ReportWarning or text) as one stderr line; silent with --quiet."""
        if not self.quiet:
            from llamacache.config.redaction import redact_text

            text = redact_text(str(warning))  # a warning may quote a URL holding a password
            self._talk(f"llamacache: warning: {text}", "33")

    def info(self, text: str) -> None:
        if not self.quiet and not self.json_mode:
            self._talk(text)

    @contextmanager
    def progress(self, description: str, *, unit_bytes: bool = False) -> Iterator[ProgressCallback]:
        """A progress callback for an op; a rich bar only when stderr is a terminal."""
        if self.quiet or self.err_width is None:
            yield lambda done, total: None
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
        if unit_bytes:
            columns += [DownloadColumn(), TransferSpeedColumn()]
        columns.append(TimeRemainingColumn())
        err = Console(stderr=True, highlight=False)
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task(description, total=None)

            def update(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            yield update
