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


def _line(name: str, value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return tomli_w.dumps({name: value}).strip()


def _entry(name: str, value: object, help: str, env: str, example_key: str) -> list[str]:
    if isinstance(value, MachineShare):  # measured on this machine: nothing to write back
        example = "50GB" if value.kind == "disk" else "1GB"
        return [f"# {help}; default {value} (env {env})", "# " + _line(name, example)]
    lines = [f"# {help} (env {env})"]
    if value is None or example_key in _NOT_WRITTEN:
        lines.append("# " + _line(name, EXAMPLES[example_key]))
    else:
        lines.append(_line(name, value))
    return lines


def _global_sections() -> list[str]:
    out: list[str] = []
    current = ""
    for st in SETTINGS:
        section, name = st.key.rsplit(".", 1)
        network = section in ("cache.network", "cache.object")
        if section != current:
            out += ["", f"# [{section}]" if network else f"[{section}]"]
            current = section
        entry = _entry(name, st.show(st.default), st.help, st.env[0], st.key)
        if network and not entry[-1].startswith("#"):
            entry[-1] = "# " + entry[-1]  # shared-tier sections stay off until a url is set
        out += entry
    return out


def _cache_sections() -> list[str]:
    out = [
        "",
        "# Named caches. Any key left out inherits the [cache] value above. Keys: "
        + ", ".join(CACHE_KEYS_BY_NAME),
    ]
    for name in SEED_CACHES:
        out += ["", f"[caches.{name}]"]
        for key, value in SEED_DEFAULTS[name].items():
            ck = CACHE_KEYS_BY_NAME[key]
            shown = None if key == "temp_dir" else ck.show(value)  # relative to the cache's folder
            out += _entry(key, shown, ck.help, cache_env(name, key), key)
    return out


def render_starter_config() -> str:
    """A commented TOML file holding every global key and the seed caches, at their defaults."""
    return HEADER + "\n".join(_global_sections() + _cache_sections()) + "\n"
