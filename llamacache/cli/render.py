"""Output for people (rich tables on stdout, talk on stderr) and for scripts (--json).

stdout is data, stderr is talk: with ``--json`` stdout gets exactly one JSON
document; progress bars and warnings go to stderr and only when it is a terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

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
from rich.table import Table

from llamacache.ops._report import Report
from llamacache.units import format_duration, format_size

ProgressCallback = Callable[[int, int | None], None]  # (done, total) in the op's unit


def size(n: int | None) -> str:
    return "-" if n is None else format_size(n)


def when(ts: float | None) -> str:
    """An epoch time as local ISO-8601 to the second ("-" when unknown)."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


class Renderer:
    """One output sink per invocation; commands hand it reports."""

    def __init__(self, *, json_mode: bool, quiet: bool) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.out = Console(soft_wrap=False, highlight=False)
        if not self.out.is_terminal:  # pipes and logs: never fold a table at 80 columns
            self.out = Console(soft_wrap=False, highlight=False, width=200)
        self.err = Console(stderr=True, highlight=False)

    # -- data -----------------------------------------------------------------------------

    def json(self, report: Report | dict[str, Any]) -> None:
        body = report.to_json() if isinstance(report, Report) else report
        sys.stdout.write(json.dumps(body, indent=2, sort_keys=False) + "\n")
        sys.stdout.flush()

    def emit(self, report: Report, human: Callable[[Renderer, Any], None]) -> None:
        """JSON when asked, else the command's human renderer (skipped with --quiet)."""
        if self.json_mode:
            self.json(report)
        elif not self.quiet:
            human(self, report)

    def emit_caches(self, report: Report, human: Callable[[Renderer, Any], None]) -> None:
        """Warn each cache's ``warnings`` (stderr), then emit: for per-cache admin reports."""
        for cache in getattr(report, "caches", ()):
            for warning in getattr(cache, "warnings", ()):
                self.warn(warning)
        self.emit(report, human)

    def table(
        self,
        title: str | None,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        right: Sequence[str] = (),
    ) -> None:
        table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
        for col in columns:
            table.add_column(col, justify="right" if col in right else "left", overflow="fold")
        for row in rows:
            table.add_row(*(str(c) for c in row))
        self.out.print(table)

    def line(self, text: str) -> None:
        """A line of human output on stdout (markup off, so keys print as they are)."""
        if not self.quiet and not self.json_mode:
            self.out.print(text, markup=False)

    # -- talk --------------------------------------------------------------------------------

    def warn(self, text: str) -> None:
        if not self.quiet:
            # one line however long: a warning folded at 80 columns breaks grep and logs
            self.err.print(
                f"llamacache: warning: {text}", markup=False, style="yellow", soft_wrap=True
            )

    def info(self, text: str) -> None:
        if not self.quiet and not self.json_mode:
            self.err.print(text, markup=False, soft_wrap=True)

    @contextmanager
    def progress(self, description: str, *, unit_bytes: bool = False) -> Iterator[ProgressCallback]:
        """A progress callback for an op; a rich bar only when stderr is a terminal."""
        if self.quiet or not self.err.is_terminal:
            yield lambda done, total: None
            return
        columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
        if unit_bytes:
            columns += [DownloadColumn(), TransferSpeedColumn()]
        columns.append(TimeRemainingColumn())
        with Progress(*columns, console=self.err, transient=True) as bar:
            task = bar.add_task(description, total=None)

            def update(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            yield update
