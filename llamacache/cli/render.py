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
    from llamacache.ops import backup as backup_ops
    from llamacache.ops import bench as bench_ops
    from llamacache.ops import clean as clean_ops
    from llamacache.ops import config_ops, network_admin, network_verify, object_admin
    from llamacache.ops import daemon as daemon_ops
    from llamacache.ops import entries as entries_ops
    from llamacache.ops import evict as evict_ops
    from llamacache.ops import inspect as inspect_ops
    from llamacache.ops import ls as ls_ops
    from llamacache.ops import page_cache as page_cache_ops
    from llamacache.ops import push as push_ops
    from llamacache.ops import repair as repair_ops
    from llamacache.ops import restore as restore_ops
    from llamacache.ops import schedule as schedule_ops
    from llamacache.ops import stats as stats_ops
    from llamacache.ops import verify as verify_ops
    from llamacache.ops import warm as warm_ops
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


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    """``text`` as lines of at most ``width`` columns, broken at spaces; a word longer
    than a line (a path) is split rather than cut, so nothing is lost. Continuation lines
    start with ``indent``."""
    lines = textwrap.wrap(
        text,
        max(width, len(indent) + 8),
        subsequent_indent=indent,
        break_on_hyphens=False,
        drop_whitespace=True,
    )
    return lines or [""]


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
            if report.problem_count:
                self.status(f"verify found {report.problem_count} problem(s)")
            if getattr(report, "checked_nothing", False):
                self.status("verify: no entry was checked: not a pass")

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
        wrap: Sequence[str] = (),
    ) -> None:
        """Rows under a header, one per line; ``wide_only`` columns need ``--wide``.

        With a width to fit, the ``elide`` columns shrink first (middle elided), then the
        other text columns (end cut); numbers and sizes are never cut. A ``wrap`` column
        (among ``elide``: it shrinks first) is never cut either: its text wraps at spaces
        onto continuation lines, for cells that are sentences (a value's provenance).
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
            cols: list[list[str]] = []
            for j, text in enumerate(row):
                w = widths[j]
                if cells(text) > w and n and heads[j] in wrap:
                    cols.append(_wrap(text, w))
                    continue
                if cells(text) > w:
                    cut = elide_middle if heads[j] in elide and n else elide_end
                    text = cut(text, w)
                cols.append([text])
            for k in range(max(len(c) for c in cols)):
                out = []
                for j, col in enumerate(cols):
                    text = col[k] if k < len(col) else ""
                    pad = " " * (widths[j] - cells(text))
                    out.append(pad + text if heads[j] in right else text + pad)
                self.line(GAP.join(out).rstrip())

    def line(self, text: str) -> None:
        """A line of human output on stdout; past the width it wraps at spaces (a word
        longer than a line is split), so a sentence never loses a word."""
        if self.quiet or self.json_mode:
            return
        if self.width is not None and cells(text) > self.width:
            text = "\n".join(_wrap(text, self.width, indent="  "))
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


# -- the human view of each report ------------------------------------------------------
# A command hands ``emit`` its report and the view below that draws it for people; JSON,
# --quiet and the stderr talk are decided above, so every view is only a table and lines.

# the network tier (inspect, ls, verify, clean with --tier network)


def network_inspect_view(r: Renderer, rep: network_admin.NetworkInspectReport) -> None:
    from llamacache.ops import network_admin

    rows = [
        (
            c.cache,
            c.url,
            c.server_version or "-",
            "yes" if c.reachable else "NO",
            f"{c.entries:,}",
            f"{c.chunks:,}",
            size(c.used_memory),
            "-" if c.maxmemory is None else (size(c.maxmemory) if c.maxmemory else "none"),
            c.maxmemory_policy or "-",
            "-" if c.keyspace_hits is None else f"{c.keyspace_hits:,}/{c.keyspace_misses:,}",
            c.mode + (", signed" if c.signed else ", UNSIGNED"),
        )
        for c in rep.caches
    ]
    cols: tuple[str, ...] = ("cache", "url", "server", "up", "entries", "chunks", "used")
    cols += ("maxmemory", "policy", "server hits/misses", "mode")
    r.table("network tier", cols, rows, right=("entries", "chunks", "used"))
    if rep.top:
        network_ls_view(r, network_admin.NetworkListReport(rep.top))


def network_ls_view(r: Renderer, rep: network_admin.NetworkListReport) -> None:
    rows = [
        (
            e.cache,
            e.key,
            size(e.bytes),
            e.kind,
            "chunked" if e.chunked else "inline",
            "-" if e.ttl is None else f"{e.ttl:.0f}s",
            size(e.memory_usage),
        )
        for e in rep.entries
    ]
    cols = ("cache", "key", "size", "kind", "stored", "ttl", "memory usage")
    r.table(None, cols, rows, right=("size", "memory usage"))


def network_verify_view(r: Renderer, rep: network_verify.NetworkVerifyReport) -> None:
    r.line(
        f"network tier: checked {rep.checked:,} entries ({size(rep.bytes_checked)}) "
        f"in {', '.join(rep.caches) or 'no caches'}"
    )
    if rep.problems:
        rows = [(p.cache, p.key, p.problem) for p in rep.problems]
        r.table(None, ("cache", "key", "problem"), rows)


def network_removal_view(r: Renderer, rep: network_admin.NetworkRemovalReport) -> None:
    verb = "would remove" if rep.dry_run else "removed"
    for key in rep.keys:
        r.line(key)
    r.line(f"network tier: {verb} {rep.entries:,} entries and {rep.chunks:,} orphan chunks")


# the object tier (inspect, ls, verify, evict, clean with --tier object)


def object_inspect_view(r: Renderer, rep: object_admin.ObjectInspectReport) -> None:
    rows = [
        (
            c.cache,
            c.url,
            "yes" if c.reachable else "NO",
            f"{c.entries:,}",
            size(c.bytes),
            f"{c.parts:,}",
            size(c.part_bytes),
            c.mode + (", signed" if c.signed else ", UNSIGNED"),
        )
        for c in rep.caches
    ]
    cols = ("cache", "url", "up", "entries", "bytes", "parts (all caches)", "part bytes", "mode")
    r.table("object tier", cols, rows, right=("entries", "bytes", "part bytes"))
    for c in rep.caches[:1]:
        r.line(f"not shared through the object tier: {c.not_shared}")


def object_ls_view(r: Renderer, rep: object_admin.ObjectListReport) -> None:
    def when(stamp: float) -> str:
        return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%d %H:%M")

    rows = [
        (e.cache, e.key, size(e.bytes), e.kind, e.stored, when(e.modified)) for e in rep.entries
    ]
    cols = ("cache", "key", "size", "kind", "stored", "written (UTC)")
    r.table(None, cols, rows, right=("size",))


def object_verify_view(r: Renderer, rep: object_admin.ObjectVerifyReport) -> None:
    sampled = "" if rep.sample >= 100 else f", {rep.sample:g}% of the parts"
    r.line(
        f"object tier: checked {rep.checked:,} entries ({size(rep.bytes_checked)}{sampled}) "
        f"in {', '.join(rep.caches) or 'no caches'}"
    )
    if rep.problems:
        rows = [(p.cache, p.key, p.problem) for p in rep.problems]
        r.table(None, ("cache", "key", "problem"), rows)


def object_removal_view(r: Renderer, rep: object_admin.ObjectRemovalReport) -> None:
    verb = "would remove" if rep.dry_run else "removed"
    for key in rep.keys:
        r.line(key)
    r.line(
        f"object tier: {verb} {rep.entries:,} entries and {rep.parts:,} unreferenced parts "
        f"({size(rep.bytes)})"
    )


# backup, restore


def backup_view(r: Renderer, rep: backup_ops.BackupReport) -> None:
    r.table(
        None,
        ["cache", "entries", "bytes"],
        [(c.name, c.entries, size(c.bytes)) for c in rep.caches],
        right=["entries", "bytes"],
    )
    r.info(
        f"wrote {rep.archive} ({size(rep.archive_bytes)}, {rep.entries} entries"
        f"{f', {rep.vanished} removed meanwhile' if rep.vanished else ''}) in {rep.seconds:.1f}s"
    )
    for item in rep.corrupt:
        r.warn(f"left out a corrupt entry: {item} (run `llamacache verify`)")


def restore_view(r: Renderer, rep: restore_ops.RestoreReport) -> None:
    r.table(
        None,
        ["cache", "from", "entries", "bytes", "expired"],
        [(c.name, c.source, c.entries, size(c.bytes), c.expired) for c in rep.caches],
        right=["entries", "bytes", "expired"],
    )
    r.info(
        f"verified {rep.verified} entries, restored ({rep.mode}) from {rep.archive}"
        f" in {rep.seconds:.1f}s"
    )


# bench


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f}"


def bench_view(r: Renderer, rep: bench_ops.BenchReport) -> None:
    spec = rep.spec
    vs = size(spec.value_min) if spec.value_min == spec.value_max else (
        f"{size(spec.value_min)}-{size(spec.value_max)}"
    )  # fmt: skip
    r.line(
        f"{spec.workload} workload, read ratio {spec.read_ratio:g}, {spec.keys} keys x {vs}, "
        f"policy {rep.policy}, memory {size(rep.memory_size)}, "
        f"{spec.processes} process(es), cache {rep.cache or '(temporary)'}"
    )
    rows = [
        (
            res.target,
            f"{res.ops_per_s:,.0f}",
            _us(res.p50),
            _us(res.p95),
            _us(res.p99),
            _us(res.max),
            "-" if res.hit_ratio is None else f"{100 * res.hit_ratio:.1f}%",
            f"{size(int(res.bytes_per_s))}/s",
        )
        for res in rep.results
    ]
    r.table(
        None,
        ["target", "ops/s", "p50 us", "p95 us", "p99 us", "max us", "hit ratio", "throughput"],
        rows,
        right=["ops/s", "p50 us", "p95 us", "p99 us", "max us", "hit ratio", "throughput"],
    )
    for label, ratio in rep.ratios.items():
        r.line(f"{label}: {ratio:.2f}x ops/s")


# clean


def clean_view(r: Renderer, rep: clean_ops.CleanReport) -> None:
    if not rep.caches and not rep.temp_files:
        r.line(f"no caches at {rep.root}: nothing to clean")
        return
    rows = [
        (
            c.name,
            f"{c.expired:,}",
            f"{c.aged_out:,}",
            f"{c.evicted:,} ({size(c.evicted_bytes)})",
            f"{c.stale_tmp:,}",
            f"{c.orphans + c.unlisted_blobs:,}",  # files no index row / no revision lists
            f"{size(c.used_bytes)} / {size(c.limit_bytes)}",
            "over" if c.over_limit else "ok",
        )
        for c in rep.caches
    ]
    r.table(
        "clean (dry run: nothing removed)" if rep.dry_run else None,
        (
            "cache",
            "expired",
            "max_age",
            "evicted",
            "stale tmp",
            "orphans",
            "used / limit",
            "budget",
        ),
        rows,
        right=("expired", "max_age", "evicted", "stale tmp", "orphans"),
        wide_only=("max_age", "stale tmp", "orphans"),
    )
    if rep.temp_dir is not None:
        r.line(f"temp_dir {rep.temp_dir}: {rep.temp_files} old files ({size(rep.temp_bytes)})")
    verb = "would free" if rep.dry_run else "freed"
    r.line(f"{verb} {size(rep.freed_bytes)} in {rep.removed:,} entries and files")
    for c in rep.caches:
        if c.over_limit and not rep.dry_run:
            r.warn(over_limit_message(c.name, c.used_bytes, c.limit_bytes))


def over_limit_message(cache: str, used: int, limit: int) -> str:
    """Over budget after a clean: which setting sizes the cache, and its variable."""
    from llamacache.config.schema import cache_env

    return (
        f"cache {cache!r} is still over its limit ({size(used)} of {size(limit)}): its policy "
        f"could not evict enough; raise caches.{cache}.size ({cache_env(cache, 'size')}) or "
        f"remove entries with 'llamacache evict -c {cache}'"
    )


# config show, config path


def config_show_view(r: Renderer, report: config_ops.ConfigShowReport) -> None:
    r.line(f"config file: {report.config_file or '(none: built-in defaults)'}")
    r.line(f"cache root:  {report.root}")
    rows = [(row.key, _fmt(row.value), row.source, row.env_var or "-") for row in report.settings]
    r.table(
        None,
        ["setting", "value", "source", "environment variable"],
        rows,
        elide=("value", "source"),
        wide_only=("environment variable",),
        wrap=("value", "source"),  # "auto: 25% of free disk, at most 200GB" stays whole
    )


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def config_path_view(r: Renderer, rep: config_ops.ConfigPathReport) -> None:
    r.line(str(rep.config_file) if rep.config_file else "(no config file; built-in defaults)")
    for p in rep.searched:
        r.info(f"  searched: {p}")


# put, rm


def put_view(r: Renderer, rep: entries_ops.PutReport) -> None:
    r.info(f"stored {rep.key!r} in cache {rep.cache!r} ({format_size(rep.bytes)})")


def remove_view(r: Renderer, rep: entries_ops.RemoveReport) -> None:
    r.info(
        f"removed {len(rep.removed)} of {len(rep.removed) + len(rep.missing)} "
        f"from cache {rep.cache!r}"
    )
    for key in () if rep.missing_ok else rep.missing:
        r.warn(f"{key!r} was not in cache {rep.cache!r}")


# daemon (a streaming command: one line per run, through ``log``)


def daemon_run_line(run: daemon_ops.DaemonRunReport, as_json: bool) -> str:
    """One run of the daemon as a log line (``as_json``: one JSON object, a JSON line)."""
    if as_json:
        return json.dumps(run.to_json())
    stamp = datetime.fromtimestamp(run.started, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    head = f"{stamp} llamacache daemon: cache {run.cache!r}: {run.status}"
    if run.status != "ok":
        return f"{head} ({run.message})"
    return (
        f"{head}: expired {run.expired}, evicted {run.evicted},"
        f" freed {size(run.freed_bytes)},"
        f" {size(run.used_bytes)} used of {size(run.limit_bytes)}"
        f" ({run.seconds:.2f}s)"
    )


# evict


def evict_plan_view(r: Renderer, plan: evict_ops.EvictPlan) -> None:
    if plan.entries and not r.quiet:
        r.table(
            None,
            ("cache", "tier", "key", "size", "accessed"),
            [
                (e.cache, e.tier, e.key, size(e.bytes), r.time(e.access_time or None))
                for e in plan.entries[:50]
            ],
            right=("size",),
            wide_only=("tier",),
        )
        if len(plan.entries) > 50:
            r.line(f"... and {len(plan.entries) - 50:,} more")
    for warning in plan.warnings:
        r.warn(warning)
    for note in plan.notes:
        r.info(note)


def evict_view(r: Renderer, rep: evict_ops.EvictReport) -> None:
    for key in rep.skipped:
        r.warn(f"skipped {key!r}: changed or removed since the plan was made")
    for key in rep.relisted:
        r.info(f"kept {key!r}: a model revision stored since lists it")
    r.line(f"freed {size(rep.freed_bytes)} in {rep.removed:,} entries")


# inspect


def _inspect_pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}%"


TIER_COLUMNS = (
    "tier",
    "entries",
    "used",
    "limit",
    "% limit",
    "ratio",
    "oldest",
    "newest",
    "expired",
    "hits",
    "misses",
    "hit rate",
    "evictions",
)


TIER_NUMBERS = TIER_COLUMNS[1:6] + TIER_COLUMNS[8:]


TIER_WIDE_ONLY = ("ratio", "oldest", "expired", "hits", "misses")


def _network_row(row: tuple[str, ...], info: network_admin.NetworkInfo | None) -> tuple[str, ...]:
    """The network row with what the server said: this cache's entries, and the server's
    memory use and limit (Redis does not account memory per key prefix)."""
    if info is None:
        return row
    if not info.reachable:
        return (row[0], "unreachable", *("-" for _ in row[2:]))
    limit = size(info.maxmemory) if info.maxmemory else "-"
    used = size(info.used_memory)
    pct = (
        "-"
        if not info.maxmemory or info.used_memory is None
        else _inspect_pct(100 * info.used_memory / info.maxmemory)
    )
    return (row[0], f"{info.entries:,}", used, limit, pct, *row[5:])


def inspect_view(
    r: Renderer,
    rep: inspect_ops.InspectReport,
    network: dict[str, network_admin.NetworkInfo] | None = None,
    resident: page_cache_ops.PageCacheReport | None = None,
) -> None:
    """The tier table per cache; ``network``: the shared tier's figures in its row;
    ``resident``: the page-cache residency table after it (``--page-cache``)."""
    if not rep.caches:
        r.line("no caches on disk yet")
    for c in rep.caches:
        traits = [c.policy, c.checksum, f"compression {c.compression}"]
        traits += [c.format] if c.format else []
        traits += ["read-only"] if c.read_only else []
        r.line(f"cache {c.name!r}: " + ", ".join(traits))
        r.line(f"  path: {c.path}")
        rows = []
        for t in c.tiers:
            k = t.counters
            rows.append(
                (
                    t.tier,
                    "-" if t.entries is None else f"{t.entries:,}",
                    size(t.bytes),
                    size(t.limit) if t.limit else "-",
                    _inspect_pct(t.percent_of_limit),
                    "-" if t.compression_ratio is None else f"{t.compression_ratio:.2f}x",
                    r.time(t.oldest),
                    r.time(t.newest),
                    f"{t.expired:,}",
                    f"{k['hits']:,}",
                    f"{k['misses']:,}",
                    _inspect_pct(None if t.hit_rate is None else 100 * t.hit_rate),
                    f"{k['evictions']:,}",
                )
            )
        shown: list[tuple[str, ...]] = list(rows)
        if network is not None and c.name in network:
            if not any(row[0] == "network" for row in shown):
                shown.append(("network", *("-",) * 7, "0", "0", "0", "-", "0"))
            info = network[c.name]
            shown = [_network_row(row, info) if row[0] == "network" else row for row in shown]
        r.table(None, TIER_COLUMNS, shown, right=TIER_NUMBERS, wide_only=TIER_WIDE_ONLY)
        free = "-" if c.fs_free is None else f"{size(c.fs_free)} free of {size(c.fs_total)}"
        r.line(f"quarantined: {c.quarantined}   filesystem: {free}")
        if c.unshared:
            r.line(f"unshared: {c.unshared} writes not yet on the shared tier (retrying)")
        if c.top:
            r.table(
                f"largest {len(c.top)} entries",
                ("key", "size", "stored", "accessed", "where"),
                [
                    (
                        e.key,
                        size(e.bytes),
                        r.time(e.stored),
                        r.time(e.accessed),
                        "file" if e.file else "inline",
                    )
                    for e in c.top
                ],
                right=("size",),
                wide_only=("stored",),
            )
        r.line("")
    if resident is not None:
        page_cache_view(r, resident)


def page_cache_view(r: Renderer, rep: page_cache_ops.PageCacheReport) -> None:
    if not rep.available:
        r.line(f"page cache: residency unknown ({rep.reason})")
        return
    for c in rep.caches:
        if not c.files:
            r.line(f"page cache, {c.cache}: no file entries")
            continue
        pct = 100 * (c.resident_bytes or 0) / c.file_bytes if c.file_bytes else 0.0
        which = f"the {c.files:,} largest files" if c.sampled else f"{c.files:,} files"
        r.line(
            f"page cache, {c.cache}: {size(c.resident_bytes)} of {size(c.file_bytes)} "
            f"resident ({pct:.0f}%) in {which}"
        )


# ls

LS_COLUMNS = (
    "cache",
    "key",
    "size",
    "stored",
    "accessed",
    "hits",
    "expires",
    "kind",
    "codec",
    "checksum",
)


def ls_view(r: Renderer, rep: ls_ops.LsReport) -> None:
    r.table(
        None,
        LS_COLUMNS,
        [
            (
                e.cache,
                e.key,
                size(e.bytes),
                r.time(e.stored),
                r.time(e.accessed),
                e.hits,
                r.time(e.expires),
                e.kind or "?",
                e.codec or "?",
                f"{e.checksum}:{(e.digest or '')[:12]}" if e.header_ok else "DAMAGED HEADER",
            )
            for e in rep.entries
        ],
        right=("size", "hits"),
        wide_only=("stored", "expires", "kind", "codec", "checksum"),
    )
    if rep.total > len(rep.entries):
        r.info(f"showing {len(rep.entries):,} of {rep.total:,} entries")


# push


def push_view(r: Renderer, rep: push_ops.PushReport) -> None:
    r.table(
        None,
        ["cache", "checked", "pushed", "bytes", "present", "differs", "deleted", "too large"],
        [
            (
                c.name,
                c.checked,
                c.pushed,
                size(c.pushed_bytes),
                c.present,
                c.differs,
                c.deleted,
                len(c.too_large),
            )
            for c in rep.caches
        ],
        right=["checked", "pushed", "bytes", "present", "differs", "deleted", "too large"],
    )
    for c in rep.caches:
        for key in c.failed:
            r.warn(f"cache {c.name!r}: {key!r} could not be pushed (server unreachable?)")


# repair


def repair_view(r: Renderer, rep: repair_ops.RepairReport) -> None:
    for c in rep.caches:
        for a in c.actions:
            what = repr(a.key) if a.key is not None else a.path
            verb = f"would {a.action}" if rep.dry_run else a.action
            r.line(f"{c.name}: {verb}: {what} ({a.reason})")
        if not rep.dry_run:
            r.line(
                f"{c.name}: quarantined {c.quarantined}, dropped {c.rows_dropped} rows, "
                f"removed {c.files_removed} files"
                + (
                    f", rebuilt the index ({c.salvaged_rows} rows salvaged)"
                    if c.index_rebuilt
                    else ""
                )
                + f"; {c.count:,} entries"
            )
    if not any(c.actions for c in rep.caches):
        r.line("nothing to repair")


# schedule


def schedule_view(r: Renderer, rep: schedule_ops.ScheduleReport) -> None:
    if rep.action == "print":  # file text verbatim: a console would fold long lines
        for name, text in rep.files.items():
            r.text(f"# {name}\n{text}\n" if rep.kind == "systemd" else text)
        return
    verb = "installed" if rep.action == "install" else "removed"
    if not rep.changed:
        r.info(f"nothing to do: already {verb} ({rep.target})")
    else:
        r.info(f"{verb} {', '.join(rep.files)} ({rep.target})")
    if rep.kind == "systemd":
        names = [n for n in rep.files if n.endswith(".timer")]
        if rep.action == "install":
            r.info("enable it: systemctl --user daemon-reload && ")
            r.info(f"           systemctl --user enable --now {names[0]}")
        elif rep.changed:
            r.info(f"stop it: systemctl --user disable --now {names[0]}")


# stats


def _stats_pct(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"


def _ms(seconds: float | None) -> str:
    """A histogram bucket's upper bound: the quantile is at most this."""
    if seconds is None:
        return "-"
    if seconds == float("inf"):
        return "> 10 s"
    return f"<= {seconds * 1e6:g} us" if seconds < 1e-3 else f"<= {seconds * 1e3:g} ms"


def stats_view(r: Renderer, rep: stats_ops.StatsReport) -> None:
    if not rep.caches:
        r.info("no caches exist yet")
        return
    rows = [
        (
            st.cache,
            st.gets,
            _stats_pct(st.hit_rate),
            st.puts,
            st.evictions,
            size(st.evicted_bytes),
            st.ghost_hits,
            st.corrupt,
            "-" if st.entries is None else st.entries,
            f"{size(st.disk_bytes)} / {size(st.disk_limit)}",
            _ms(st.get_p50),
            _ms(st.get_p99),
        )
        for st in rep.caches
    ]
    r.table(
        None,
        [
            "cache",
            "gets",
            "hit rate",
            "puts",
            "evictions",
            "evicted",
            "ghost hits",
            "corrupt",
            "entries",
            "disk used / limit",
            "get p50",
            "get p99",
        ],
        rows,
        right=["gets", "hit rate", "puts", "evictions", "evicted", "ghost hits", "corrupt"],
        wide_only=["evicted", "ghost hits", "corrupt", "entries", "get p50", "get p99"],
    )
    for st in rep.caches:
        if st.advice:
            r.info(f"{st.cache}: {st.advice}")
    if rep.reset:
        r.info("counters reset to zero")
    if rep.prometheus_file is not None:
        r.info(f"wrote {rep.prometheus_file}")


# verify


def verify_view(r: Renderer, rep: verify_ops.VerifyReport) -> None:
    rows = [
        (
            c.name,
            f"{c.checked:,}/{c.entries:,}",
            f"{c.verified:,}",
            f"{c.corrupt:,}",
            f"{c.missing:,}",
            f"{c.orphaned:,}",
            f"{c.stale_tmp:,}",
            "ok" if c.index_ok else "DAMAGED",
        )
        for c in rep.caches
    ]
    r.table(
        None,
        ("cache", "checked", "verified", "corrupt", "missing", "orphaned", "stale tmp", "index"),
        rows,
        right=("checked", "verified", "corrupt", "missing", "orphaned", "stale tmp"),
        wide_only=("verified", "orphaned", "stale tmp"),
    )
    for c in rep.caches:
        for p in c.problems:
            what = repr(p.key) if p.key is not None else p.path
            r.line(f"{c.name}: {p.kind}: {what}: {p.detail}")
    speed = f", {size(int(rep.bytes_per_second))}/s" if rep.checked_bytes else ""
    cover = "" if rep.complete else " (stopped by --max-time: not every entry was checked)"
    checked = sum(c.checked for c in rep.caches)
    entries = sum(c.entries for c in rep.caches)
    skipped = sum(c.skipped for c in rep.caches)
    what = f"{rep.mode} verify"
    if rep.sample_percent < 100.0:  # a sample is never reported as a full check
        what = f"{rep.sample_percent:g}% sample verify" + (
            " (quick)" if rep.mode == "quick" else ""
        )
    moved = f", {skipped:,} skipped (changed by a writer meanwhile)" if skipped else ""
    verdict = "PROBLEMS FOUND" if rep.problem_count else "all good"
    if rep.checked_nothing:  # nothing examined proves nothing: exit 1, never "all good"
        nothing = "no entry was checked: not a pass"
        verdict = f"{verdict}; {nothing}" if rep.problem_count else nothing
    r.line(
        f"{what}: checked {checked:,} of {entries:,} entries{moved}, "
        f"{size(rep.checked_bytes)} hashed in {duration(rep.seconds)}{speed}{cover}; {verdict}"
    )


# warm


def warm_view(r: Renderer, rep: warm_ops.WarmReport) -> None:
    rows = [(f.action, size(f.bytes), f.key) for f in rep.items]
    r.table(None, ("action", "size", "key"), rows, right=("size",))
    verb = "would store" if rep.dry_run else "stored"
    line = f"{verb} {rep.files} files ({size(rep.bytes)}) in cache {rep.cache!r}"
    if not rep.dry_run:
        line += f" in {rep.seconds:.2f} s ({size(int(rep.bytes_per_second))}/s)"
    r.line(line)
    r.line(f"skipped {rep.skipped} already cached ({size(rep.skipped_bytes)})")
    if rep.models:
        r.line("complete: " + ", ".join(rep.models))
    sh = rep.shared
    if sh is not None:
        line = f"shared: uploaded {sh.pushed} ({size(sh.pushed_bytes)}), {sh.present} already there"
        lost = len(sh.too_large) + len(sh.failed) + len(sh.held)
        r.line(line + (f", {lost} not shared" if lost else ""))
    pc = rep.page_cache
    if pc is not None:
        if pc.available:
            r.line(
                f"page cache: {size(pc.resident_before)} -> {size(pc.resident_after)} resident "
                f"of {size(pc.total_bytes)}"
            )
        else:
            r.line(f"page cache: files read through; residency unknown ({pc.reason})")
