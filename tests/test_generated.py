"""completions/ and man/ match the app, load in real shells, and render cleanly with man."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llamacache.cli import _generate
from tests.cli.helpers import llamacache_exe

ROOT = Path(__file__).resolve().parent.parent
COMPLETIONS = ROOT / "completions"
MAN = ROOT / "man"


def test_committed_files_match_the_app() -> None:
    stale = _generate.stale(ROOT)
    assert not stale, f"regenerate with `python -m llamacache.cli._generate`: {stale}"


def test_check_mode_notices_drift_and_extra_pages(tmp_path: Path) -> None:
    _generate.write(tmp_path)
    assert _generate.main([str(tmp_path), "--check"]) == 0
    page = tmp_path / "man" / "llamacache-backup.1"
    page.write_text(page.read_text() + '.\\" edited by hand\n')
    (tmp_path / "man" / "llamacache-gone.1").write_text(".TH X 1\n")
    assert _generate.stale(tmp_path) == ["man/llamacache-backup.1", "man/llamacache-gone.1"]
    assert _generate.main([str(tmp_path), "--check"]) == 1
    _generate.write(tmp_path)
    assert _generate.stale(tmp_path) == []


def test_every_command_has_a_page_and_completion_entry() -> None:
    cmds = _generate.commands()
    bash = (COMPLETIONS / "llamacache.bash").read_text()
    fish = (COMPLETIONS / "llamacache.fish").read_text()
    for cmd in cmds:
        assert (MAN / f"{cmd.page}.1").is_file()
        if cmd.path:
            assert f'"{" ".join(cmd.path)}")' in bash
            assert f"-a {cmd.path[-1]} " in fish


def test_generator_runs_as_a_module(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llamacache.cli._generate", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "man" / "llamacache.1").is_file()
    assert (tmp_path / "completions" / "_llamacache").is_file()


def _shell(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed (scripts/install-test-deps.sh installs it)")
    return exe


def _env() -> dict[str, str]:
    """PATH with this interpreter's llamacache first: cache names are asked of it."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(llamacache_exe()[0]).parent), env["PATH"]])
    return env


def _run(argv: list[str]) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env=_env(), check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


BASH = """
source completions/llamacache.bash
complete -p llamacache
COMP_WORDS=(llamacache ba); COMP_CWORD=1; _llamacache; echo "sub: ${COMPREPLY[*]}"
COMP_WORDS=(llamacache config sh); COMP_CWORD=2; _llamacache; echo "nested: ${COMPREPLY[*]}"
COMP_WORDS=(llamacache restore --rep); COMP_CWORD=2; _llamacache; echo "opt: ${COMPREPLY[*]}"
COMP_WORDS=(llamacache backup --cache mo); COMP_CWORD=3; _llamacache; echo "cache: ${COMPREPLY[*]}"
"""


def test_bash_completes_subcommands_options_and_cache_names() -> None:
    out = _run([_shell("bash"), "--norc", "-c", BASH])
    assert "complete -o bashdefault -o default -F _llamacache llamacache" in out
    assert "sub: backup\n" in out
    assert "nested: show\n" in out
    assert "opt: --replace\n" in out
    assert "cache: model\n" in out


def test_cache_names_follow_the_config_on_the_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[caches.embeddings]\nsize = "1GB"\n')
    script = (
        "source completions/llamacache.bash\n"
        f"COMP_WORDS=(llamacache --config {cfg} backup -c em); COMP_CWORD=5; _llamacache\n"
        'echo "${COMPREPLY[*]}"'
    )
    assert _run([_shell("bash"), "--norc", "-c", script]).strip() == "embeddings"


ZSH = """
fpath=(completions $fpath)
autoload -U compinit && compinit -u -D
print "registered: $_comps[llamacache]"
source completions/_llamacache
words=(llamacache ba); CURRENT=2; _llamacache_candidates | grep '^sub:backup:'
words=(llamacache schedule ""); CURRENT=3; _llamacache_candidates | cut -d: -f1,2
words=(llamacache backup --cache mo); CURRENT=4; _llamacache_candidates
"""


def test_zsh_script_loads_via_fpath_and_completes() -> None:
    out = _run([_shell("zsh"), "-f", "-c", ZSH])
    assert "registered: _llamacache" in out
    assert "sub:backup:Write a consistent" in out
    assert "sub:cron\nsub:systemd\n" in out
    assert "cache:model\n" in out


def test_fish_completes_with_its_own_engine() -> None:
    fish = _shell("fish")
    script = (
        "source completions/llamacache.fish\n"
        'complete -C "llamacache ba"; echo ---\n'
        'complete -C "llamacache config sh"; echo ---\n'
        'complete -C "llamacache backup --cache mo"'
    )
    out = _run([fish, "--no-config", "-c", script]).split("---\n")
    assert out[0].startswith("backup\t")
    assert out[1].startswith("show\t")
    assert out[2].startswith("model")


def test_install_completion_still_works(isolated_env: Path) -> None:
    done = subprocess.run(
        [*llamacache_exe(), "--install-completion", "bash"],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    script = isolated_env / ".bash_completions" / "llamacache.sh"
    assert "_LLAMACACHE_COMPLETE" in script.read_text()


def test_man_pages_render_without_warnings() -> None:
    man = shutil.which("man")
    if man is None or shutil.which("groff") is None:
        pytest.skip("man/groff not installed (scripts/install-test-deps.sh installs them)")
    pages = sorted(MAN.glob("*.1"))
    assert len(pages) == len(_generate.commands())
    env = {**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "0"}
    for page in pages:
        done = subprocess.run(
            [man, "--warnings", "-l", str(page)], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, page
        assert done.stderr == "", f"{page.name}: {done.stderr}"
        assert "EXIT STATUS" in _plain(done.stdout)
    text = subprocess.run(
        [man, "-l", str(MAN / "llamacache-restore.1")], capture_output=True, text=True, env=env
    ).stdout
    assert "EXAMPLES" in _plain(text) and "--replace" in _plain(text)


def _plain(text: str) -> str:
    """Drop man's overstrike bold/underline (``X\\bX``, ``_\\bX``)."""
    return re.sub(".\x08", "", text)


def test_the_package_installs_every_generated_file() -> None:
    import glob

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = {
        os.path.relpath(path, ROOT)
        for patterns in data["data-files"].values()
        for pattern in patterns
        for path in glob.glob(str(ROOT / pattern))
    }
    # the docs (command reference, settings table) are generated too, but are not installed
    assert {f for f in _generate.render_all() if not f.startswith("docs/")} <= shipped


ZPTY = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "fpath=(completions \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z "print -r -- READY\$((40+2))"
zpty -r z out "*READY42*"
zpty -w -n z "llamacache schedule c"$'\t'
zpty -r z out "*ron*"
print -r -- "completed: cron"
zpty -w -n z $'\C-u'"llamacache backup --cache tr"$'\t'
zpty -r z out "*aining*"
print -r -- "completed: training"
zpty -d z
"""


def test_zsh_widget_completes_in_an_interactive_shell() -> None:
    """TAB in a real interactive zsh (on a pseudo-terminal): compinit finds and runs _llamacache."""
    out = _run([_shell("zsh"), "-f", "-c", ZPTY])  # zpty -r blocks until the completion shows
    assert out.split() == ["completed:", "cron", "completed:", "training"]
