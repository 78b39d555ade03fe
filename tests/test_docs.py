"""The README's set-up commands are the ones CI runs, and every command is documented."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _readme_test_command() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- test-command:.*?-->\s*```bash\n(.+?)\n```", text, re.S)
    assert match, "README.md lost its marked test command"
    return match.group(1).strip()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_test_command() in [line.strip() for line in ci]


def test_every_command_is_in_the_readme() -> None:
    from typer.main import get_command

    from llamacache.cli.app import app

    readme = (ROOT / "README.md").read_text()
    group = get_command(app)
    names = sorted(group.commands)  # type: ignore[attr-defined]
    assert names, "no commands registered"
    for name in names:
        assert f"llamacache {name}" in readme, f"README has no example of `llamacache {name}`"


def test_readme_code_blocks_are_closed() -> None:
    """An unclosed fence swallows the sections after it when the README is rendered."""
    inside = False
    for number, line in enumerate((ROOT / "README.md").read_text().splitlines(), 1):
        if line.startswith("```"):
            inside = not inside
        elif inside and re.match(r"#{2,} \S", line):
            raise AssertionError(f"README.md:{number}: heading inside a code block: {line}")
    assert not inside, "README.md ends inside a code block"


# -- every example in the docs runs --------------------------------------------------------------

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
GUIDES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
# Languages that are transcripts or illustrations, not programs: console (install lines,
# output shown), text, cron. Every other block runs or is loaded by a test below.
NOT_RUN = {"console", "text", "cron"}


def _blocks(doc: str) -> list[tuple[str, str]]:
    text = (ROOT / doc).read_text()
    text = re.sub(r"<!-- test-command:.*?-->\s*```bash\n.+?\n```", "", text, flags=re.S)
    return [(lang or "text", body) for lang, body in FENCE.findall(text)]


def test_the_guides_exist_and_have_no_internal_jargon() -> None:
    names = {p.rsplit("/", 1)[-1] for p in GUIDES}
    assert {
        "cli.md",
        "configuration.md",
        "python-api.md",
        "sharing.md",
        "performance.md",
        "troubleshooting.md",
    } <= names
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
    for doc in ["README.md", *GUIDES, "docs/reference/commands.md"]:
        text = (ROOT / doc).read_text().lower()
        for word in ("the seed", "seed's", "/work/", "shared/"):
            assert word not in text, f"{doc} says {word!r}"


def test_every_guide_link_points_at_a_file() -> None:
    for doc in ["README.md", *GUIDES]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", (ROOT / doc).read_text()):
            path = (ROOT / doc).parent / target
            if target.endswith("security.md"):  # written alongside, by the security work
                continue
            assert path.exists(), f"{doc} links to {target}, which does not exist"


@pytest.mark.parametrize("doc", ["README.md", *GUIDES])
def test_every_example_in_the_docs_runs(
    doc: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """bash blocks run in order in one scratch folder (a tutorial builds on itself), python
    blocks run as scripts there, toml and yaml blocks load with `config validate`."""
    blocks = [(lang, body) for lang, body in _blocks(doc) if lang not in NOT_RUN]
    assert blocks or doc == "docs/performance.md", f"{doc} has no runnable example"
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    if any("--tier network" in body or "NETWORK_URL" in body for _, body in blocks):
        server = request.getfixturevalue("redis_server")
        env["LLAMACACHE_NETWORK_URL"] = server.url
        env["LLAMACACHE_NETWORK_KEY_PREFIX"] = f"docs-{tmp_path.name}:"
    if any("--tier object" in body or "OBJECT_URL" in body for _, body in blocks):
        from tests.object.conftest import loopback_store_env

        env.update(loopback_store_env(f"docs-{tmp_path.name}"))
    for n, (lang, body) in enumerate(blocks):
        where = f"{doc} block {n + 1} ({lang})"
        if lang in ("bash", "sh"):
            cmd = ["bash", "-euo", "pipefail", "-c", body]
        elif lang == "python":
            cmd = [sys.executable, "-c", body]
        elif lang in ("toml", "yaml"):
            cfg = tmp_path / f"example-{n}.{lang}"
            cfg.write_text(body)
            cmd = [sys.executable, "-m", "llamacache", "--config", str(cfg), "config", "validate"]
        else:
            raise AssertionError(f"{where}: unknown language; mark it console or text")
        proc = subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert proc.returncode == 0, f"{where} failed:\n{body}\n{proc.stdout}\n{proc.stderr}"
