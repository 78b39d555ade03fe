"""TAB completes keys (from the index, prefix-filtered, capped) and every option's fixed
values, in real bash, zsh and fish shells running the generated scripts."""

from __future__ import annotations

from llamacache.cli.options import KEY_COMPLETIONS
from llamacache.manager import CacheManager
from tests.cli.helpers import cli
from tests.test_generated import _run, _shell


def _fill() -> None:
    with CacheManager() as m:
        for i in range(KEY_COMPLETIONS + 50):
            m.cache("default").put(f"tok/{i:04d}", b"x")
    assert cli("put", "-c", "model", "llama@main/config.json", "{}").exit_code == 0
    assert cli("put", "odd*key?", "v").exit_code == 0


BASH = """
source completions/llamacache.bash
show() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _llamacache; echo "${COMPREPLY[*]}"; }
show llamacache get tok/034
show llamacache get tok/
show llamacache rm -c model ll
show llamacache evict --key odd
show llamacache get 'odd*'
show llamacache inspect --tier ""
show llamacache bench --workload z
show llamacache ls --sort hi
"""


def test_bash_completes_keys_and_option_values() -> None:
    _fill()
    lines = _run([_shell("bash"), "--norc", "-c", BASH]).splitlines()
    assert lines[0].split() == [f"tok/034{i}" for i in range(10)]
    assert len(lines[1].split()) == KEY_COMPLETIONS  # capped
    assert lines[2] == "llama@main/config.json"
    assert lines[3] == "odd*key?"
    assert lines[4] == "odd*key?"  # a glob character typed is matched literally
    assert lines[5] == "local network object"
    assert lines[6] == "zipf"
    assert lines[7] == "hits hits:asc hits:desc"


ZSH = """
fpath=(completions $fpath)
autoload -U compinit && compinit -u -D
source completions/_llamacache
words=(llamacache get tok/0349); CURRENT=3; _llamacache_candidates
words=(llamacache rm -c model ll); CURRENT=5; _llamacache_candidates
words=(llamacache bench --tier ""); CURRENT=4; _llamacache_candidates | tr '\\n' ' '; echo
"""


def test_zsh_completes_keys_and_option_values() -> None:
    _fill()
    out = _run([_shell("zsh"), "-f", "-c", ZSH]).splitlines()
    assert out[0] == "cache:tok/0349"
    assert out[1] == "cache:llama@main/config.json"
    assert out[2].split() == ["opt:memory", "opt:disk", "opt:local", "opt:network", "opt:object"]


def test_fish_completes_keys_and_option_values() -> None:
    _fill()
    script = (
        "source completions/llamacache.fish\n"
        'complete -C "llamacache get tok/0349"; echo ---\n'
        'complete -C "llamacache evict -c model --key ll"; echo ---\n'
        'complete -C "llamacache ls --sort ex"'
    )
    out = [
        [line.split("\t")[0] for line in block.splitlines()]  # fish adds "\tdescription"
        for block in _run([_shell("fish"), "--no-config", "-c", script]).split("---\n")
    ]
    assert out[0] == ["tok/0349"]
    assert out[1] == ["llama@main/config.json"]
    assert out[2] == ["expires", "expires:asc", "expires:desc"]
