"""The base of every op's report: a frozen dataclass that knows its JSON form.

Reports carry raw units (bytes as int, times as epoch seconds); only the CLI's
renderers turn them into "4.0 GB". ``to_json()`` adds a schema name and version so
scripts can rely on one stable shape per command.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, ClassVar

from llamacache.errors import ExitCode


def to_jsonable(value: Any) -> Any:
    """Convert report fields (dataclasses, paths, enums, tuples, bytes) into JSON types.

    A field declared with ``metadata={"json": False}`` (how a caller asked, not what
    happened) stays out of the JSON form."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("json", True)
        }
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


@dataclasses.dataclass(frozen=True)
class ReportWarning:
    """A warning a report carries: what kind, which cache (None: the whole setup), and the
    sentence people read (``str()``). Scripts match on ``kind``, never on the words."""

    kind: str  # e.g. "network-filesystem", "unsigned-network", "disk-limit", "unknown-variable"
    cache: str | None
    detail: str

    def __str__(self) -> str:
        return self.detail


@dataclasses.dataclass(frozen=True)
class Report:
    """Base class: subclasses set ``schema`` (e.g. "verify") and bump ``schema_version``.

    ``exit_code`` is the process exit status the result means; the CLI boundary exits
    with it, so no command decides it by hand. A report that can find a problem
    overrides it."""

    schema: ClassVar[str] = "report"
    schema_version: ClassVar[int] = 1

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        body = to_jsonable(self)
        assert isinstance(body, dict)
        return {
            "schema": f"llamacache.{self.schema}",
            "schema_version": self.schema_version,
            **body,
        }
