"""The commented starter config that ``llamacache config init`` writes.

Generated from the settings table so it cannot drift from what ``resolve`` reads;
a test checks that loading it gives exactly the built-in defaults.
"""

from __future__ import annotations

import tomli_w

from llamacache.config.schema import (
    CACHE_KEYS_BY_NAME,
    SEED_CACHES,
    SEED_DEFAULTS,
    SETTINGS,
    MachineShare,
    cache_env,
)

HEADER = """\
# llamacache configuration. Each key shows its built-in default; delete what you keep as is.
# Sizes: "4GB" (decimal), "4GiB" (binary), "30%" (of RAM for memory, of the disk for disk),
# or a bare number of megabytes. Durations: seconds, or "30s", "15m", "1h", "7d".
# Precedence: defaults < this file < environment variables < command-line flags.
# Relative paths here are relative to this file's folder.
"""

# Optional settings have no default to write; show an example, commented out.
EXAMPLES: dict[str, object] = {
    "cache.max_age": "7d",
    "cache.disk.path": "~/.cache/llamacache",
    "cache.network.url": "redis://127.0.0.1:6379/0",
    "cache.network.ttl": "7d",
    "cache.network.signing_key": "a long random secret",
    "cache.object.url": "s3://bucket/llamacache",
    "cache.object.endpoint": "https://minio.internal:9000",
    "cache.object.region": "us-east-1",
    "cache.object.signing_key": "a long random secret",
    "temp_dir": ".cache/temp",
}
_NOT_WRITTEN = ("cache.disk.path",)  # its default depends on $XDG_CACHE_HOME


FORMATS = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}  # file suffix -> format


def format_for(path: str | object) -> str | None:
    """The starter format a file name's suffix names (``.toml``, ``.yaml``/``.yml``), or None."""
    from pathlib import PurePath

    return FORMATS.get(PurePath(str(path)).suffix.lower())


def _line(name: str, value: object, fmt: str) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if fmt == "yaml":
        import yaml

        flow = str(yaml.safe_dump({name: value}, default_flow_style=True, width=1000))
        return flow.strip()[1:-1]  # "{name: value}" -> "name: value"
    return tomli_w.dumps({name: value}).strip()


def _entry(name: str, value: object, help: str, env: str, example_key: str, fmt: str) -> list[str]:
    if isinstance(value, MachineShare):  # measured on this machine: nothing to write back
        example = "50GB" if value.kind == "disk" else "1GB"
        return [f"# {help}; default {value} (env {env})", "# " + _line(name, example, fmt)]
    lines = [f"# {help} (env {env})"]
    if value is None or example_key in _NOT_WRITTEN:
        lines.append("# " + _line(name, EXAMPLES[example_key], fmt))
    else:
        lines.append(_line(name, value, fmt))
    return lines


class _Writer:
    """Sections and entries as TOML tables (``[cache.disk]``) or nested YAML mappings."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.lines: list[str] = []
        self.opened: list[str] = []  # YAML: the mapping path written so far
        self.depth = 0

    def section(self, section: str, commented: bool = False) -> None:
        self.lines.append("")
        mark = "# " if commented else ""
        if self.fmt == "toml":
            self.lines.append(f"{mark}[{section}]")
            return
        parts = section.split(".")
        same = 0
        while same < min(len(parts), len(self.opened)) and parts[same] == self.opened[same]:
            same += 1
        for depth in range(same, len(parts)):
            self.lines.append("  " * depth + mark + parts[depth] + ":")
        self.opened = parts
        self.depth = len(parts)

    def entry(self, lines: list[str], commented: bool = False) -> None:
        indent = "  " * self.depth if self.fmt == "yaml" else ""
        for line in lines:
            if commented and not line.startswith("#"):
                line = "# " + line  # the whole section stays off until its key is set
            self.lines.append(indent + line)

    def comment(self, text: str) -> None:
        self.lines += ["", text]


def _global_sections(w: _Writer) -> None:
    current = ""
    for st in SETTINGS:
        section, name = st.key.rsplit(".", 1)
        network = section in ("cache.network", "cache.object")  # off until a url is set
        if section != current:
            w.section(section, commented=network)
            current = section
        w.entry(_entry(name, st.show(st.default), st.help, st.env[0], st.key, w.fmt), network)


def _cache_sections(w: _Writer) -> None:
    above = "[cache]" if w.fmt == "toml" else "cache:"
    w.comment(
        f"# Named caches. Any key left out inherits the {above} value above. Keys: "
        + ", ".join(CACHE_KEYS_BY_NAME)
    )
    for name in SEED_CACHES:
        w.section(f"caches.{name}")
        for key, value in SEED_DEFAULTS[name].items():
            ck = CACHE_KEYS_BY_NAME[key]
            shown = None if key == "temp_dir" else ck.show(value)  # relative to the cache's folder
            w.entry(_entry(key, shown, ck.help, cache_env(name, key), key, w.fmt))


def render_starter_config(fmt: str = "toml") -> str:
    """A commented file (``fmt`` "toml" or "yaml") holding every global key and the seed
    caches, at their defaults; both load to exactly the built-in defaults."""
    w = _Writer(fmt)
    _global_sections(w)
    _cache_sections(w)
    return HEADER + "\n".join(w.lines) + "\n"
