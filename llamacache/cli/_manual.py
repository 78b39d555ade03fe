"""Hand-written man page text per command: what ``--help`` is too short to say, and examples.

Keyed by the command path ("", "backup", "config show"). A command without an entry
still gets a page from its help text; add an entry here when adding a command, then run
``python -m llamacache.cli._generate``.
"""

from __future__ import annotations

from dataclasses import dataclass

from llamacache.errors import ExitCode


@dataclass(frozen=True)
class Manual:
    description: str = ""
    examples: tuple[tuple[str, str], ...] = ()  # (what it does, the command lines)
    see_also: tuple[str, ...] = ()


# The one exit-status table: the man pages, docs/reference/commands.md and --help's
# epilogue are generated from it, tests/cli/test_exit_status.py makes each code happen.
EXIT_STATUS: tuple[tuple[int, str], ...] = (
    (ExitCode.OK.value, "Success."),
    (
        ExitCode.PROBLEM.value,
        "The command ran and found a problem: a miss, corruption, a damaged archive, "
        "a warm that does not fit, a verify that checked no entry of a cache that has some.",
    ),
    (ExitCode.USAGE.value, "Usage or configuration error (a bad flag, value or cache name)."),
    (
        ExitCode.BUSY.value,
        "Another clean, evict, repair or restore holds the cache's lock (verify too).",
    ),
    (
        ExitCode.INTERRUPTED.value,
        "Interrupted (Ctrl-C, SIGTERM or SIGHUP); partial files are removed.",
    ),
)

# The same codes in a few words each, for the last lines of ``llamacache --help``.
EXIT_LABELS: dict[int, str] = {
    ExitCode.OK.value: "ok",
    ExitCode.PROBLEM.value: "problem found",
    ExitCode.USAGE.value: "bad usage/config",
    ExitCode.BUSY.value: "lock busy",
    ExitCode.INTERRUPTED.value: "interrupted",
}


def exit_epilog() -> str:
    """``--help``'s closing line: every exit code in a few words, short enough for one
    line of an 80-column terminal (``man llamacache`` says more)."""
    return "Exit: " + ", ".join(f"{code} {EXIT_LABELS[code]}" for code, _ in EXIT_STATUS)


MANUAL: dict[str, Manual] = {
    "": Manual(
        description="""
Each named cache (default, model, training, system and any you configure) is an
in-memory LRU front over a persistent diskcache directory under the cache root
(~/.cache/llamacache by default), optionally backed by a shared Redis tier. Every
stored value carries a checksum; large values are files, and a model's weights
file is stored byte-for-byte so it can be memory-mapped.

Configuration is read from built-in defaults, then the config file (--config,
$LLAMACACHE_CONFIG, ./llamacache.toml, ~/.config/llamacache/config.toml), then
LLAMACACHE_* environment variables, then flags; llamacache config show prints every
value and where it came from.

Human output goes to stdout as tables; talk and progress go to stderr. With --json,
stdout carries exactly one JSON document with "schema" and "schema_version"; the one
streaming command, daemon, writes JSON lines instead (one object a run, on stderr).
""",
        examples=(
            (
                "Store a file and read it back:",
                "llamacache put -c model w --file model.safetensors\nllamacache get -c model w --out copy.safetensors",
            ),
            (
                "Clean every cache every hour from cron:",
                "llamacache schedule cron --every 1h --install",
            ),
            (
                "Fail a CI job when a cache holds corrupt entries:",
                "llamacache verify --json > verify.json || exit 1",
            ),
            (
                "Back up every cache, restore on another machine:",
                "llamacache backup --to caches.tar.zst\nllamacache restore caches.tar.zst --replace",
            ),
        ),
        see_also=("llamacache-config",),
    ),
    "put": Manual(
        description="Keys are data, never paths: a key like ../../etc/passwd is just a key.",
        examples=(
            (
                "Store a string, stdin, and a file (streamed):",
                "llamacache put greeting hello\necho data | llamacache put blob -\nllamacache put -c model weights --file model.safetensors",
            ),
        ),
    ),
    "get": Manual(
        description="A file-backed entry is verified against its checksum as it streams; "
        "with --out the file appears only once it is complete and verified.",
        examples=(
            ("Read a value, or branch on a miss:", "llamacache get greeting || echo missing"),
        ),
    ),
    "rm": Manual(
        examples=(("Remove two keys, ignoring absent ones:", "llamacache rm a b --missing-ok"),)
    ),
    "config": Manual(
        examples=(
            (
                "Where does each value come from?",
                "LLAMACACHE_DISK_SIZE=50GB llamacache config show cache.disk",
            ),
            (
                "Check a config file in CI:",
                "llamacache --config deploy/llamacache.toml config validate",
            ),
        ),
    ),
    "config show": Manual(
        examples=(("Show the model cache's settings:", "llamacache config show caches.model"),)
    ),
    "config validate": Manual(
        examples=(
            (
                "Exit 2 with one line naming a bad value:",
                "llamacache --config bad.toml config validate; echo $?",
            ),
        )
    ),
    "config init": Manual(
        examples=(
            (
                "Write a commented starter file:",
                "llamacache config init ~/.config/llamacache/config.toml",
            ),
        )
    ),
    "config path": Manual(examples=(("Which config file is in use?", "llamacache config path"),)),
    "schedule": Manual(
        description="""
The scheduled command is `llamacache clean --quiet --wait 10m` (half the interval
for schedules of 10 minutes or less), run by the executable's absolute path; a config file in use is passed by absolute path because
cron starts in your home directory with a minimal environment. Installed lines and
units carry the marker "# llamacache-schedule" so --uninstall removes exactly them.
""",
        examples=(
            (
                "Print, install and remove an hourly cron job:",
                "llamacache schedule cron --every 1h\nllamacache schedule cron --every 1h --install\nllamacache schedule cron --uninstall",
            ),
            (
                "A systemd user timer for the model cache, every 6 hours:",
                "llamacache schedule systemd --every 6h -c model --install\nsystemctl --user daemon-reload\nsystemctl --user enable --now llamacache-clean-model.timer",
            ),
        ),
        see_also=("llamacache-daemon", "crontab", "systemd.timer"),
    ),
    "schedule cron": Manual(
        description="Cron can only run intervals that divide an hour or a day evenly "
        "(1m, 2m, 5m, 10m, 15m, 20m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h, 1d, 7d); "
        "other intervals are refused with exit code 2. Output is appended to "
        "$XDG_STATE_HOME/llamacache/clean.log unless --log is given.",
        examples=(
            (
                "Every 15 minutes for the training cache, logging to a file of your choice:",
                "llamacache schedule cron --every 15m -c training --log /var/tmp/clean.log --install",
            ),
            (
                "Edit a crontab file instead of the user's crontab:",
                "llamacache schedule cron --install --crontab-file ./crontab.txt",
            ),
        ),
        see_also=("crontab",),
    ),
    "schedule systemd": Manual(
        description="Writes llamacache-clean[-CACHE].service and .timer into "
        "$XDG_CONFIG_HOME/systemd/user (or --units-dir). Enable the timer with "
        "systemctl --user enable --now; output goes to the journal unless --log is given.",
        examples=(
            (
                "Daily, for every cache:",
                "llamacache schedule systemd --every 1d --install\nsystemctl --user enable --now llamacache-clean.timer",
            ),
        ),
        see_also=("systemd.timer",),
    ),
    "daemon": Manual(
        description="""
For containers without cron. Each configured cache is cleaned at start, then
every cleanup_interval, under its admin lock (a run that finds the lock taken by a cron
clean is skipped). One line per run on stderr; with --json JSON lines: one object
per run ("schema": "llamacache.daemon.run"). SIGTERM or SIGINT stops it between runs; a run in progress finishes first.
""",
        examples=(
            ("As a container's main process:", 'CMD ["llamacache", "daemon"]'),
            (
                "Clean only the training cache, every 10 minutes:",
                "LLAMACACHE_DISK_CLEANUP_INTERVAL=10m llamacache daemon -c training",
            ),
        ),
        see_also=("llamacache-schedule",),
    ),
    "backup": Manual(
        description="""
The archive is a zstd-compressed tar stream: each entry's stored payload, then a
manifest with every entry's key, header (kind, codec, checksum, digest), size and
store/expire times. Entries are read through the engine one index row at a time, so
a backup taken while other processes write never contains half an entry. Payloads
are streamed and checked against their digests as they are archived; a corrupt entry
is left out and reported (exit code 1). The file appears only when complete.
""",
        examples=(
            ("Back up every cache:", "llamacache backup --to /backups/caches-$(date +%F).tar.zst"),
            (
                "Nightly backup of the model cache from cron:",
                "0 2 * * * /usr/local/bin/llamacache backup -c model --to /backups/model.tar.zst --quiet",
            ),
        ),
        see_also=("llamacache-restore",),
    ),
    "restore": Manual(
        description="""
The whole archive is staged under the cache root and every payload is verified
against the manifest before any cache is touched; members that are not plain files
of a llamacache backup (../x, absolute paths, links, devices) are refused. --merge
(the default) adds entries to the existing cache; --replace builds a complete new
cache beside the old one and swaps the directories atomically, so an interrupted
restore leaves the old cache as it was. Entries whose time to live ran out since the
backup are skipped. Pickled values or keys need --allow-pickle (they run code when
loaded: only for archives you trust).
""",
        examples=(
            (
                "Replace the model cache with a backup:",
                "llamacache restore model.tar.zst -c model --replace",
            ),
            (
                "Restore an archived cache under another name, then check it:",
                "llamacache restore caches.tar.zst -c model --into model-old\nllamacache verify -c model-old",
            ),
        ),
        see_also=("llamacache-backup",),
    ),
    "inspect": Manual(
        description="Reads the index only (never values), so it is fast on caches of any size and works on a read-only cache directory.",
        examples=(
            (
                "Overview of every cache, with the ten largest entries:",
                "llamacache inspect --top 10",
            ),
            (
                "Feed a dashboard:",
                "llamacache --json inspect -c model | jq '.caches[0].used_bytes'",
            ),
        ),
        see_also=("llamacache-ls", "llamacache-verify"),
    ),
    "ls": Manual(
        examples=(
            (
                "The biggest entries not read for a month:",
                "llamacache ls -c training --filter 'accessed>30d' --sort size:desc --limit 20",
            ),
            (
                "Keys only, for a pipe:",
                "llamacache ls -c model -q --filter 'key~llama*' | xargs llamacache rm -c model",
            ),
        ),
        see_also=("llamacache-evict",),
    ),
    "evict": Manual(
        description="Selectors combine with AND. The plan is shown first; with no terminal, pass --yes (cron never hangs on a prompt). A plan saved with --plan-out can be reviewed and applied later with --apply.",
        examples=(
            (
                "Bring the training cache under 50 GB in policy order:",
                "llamacache evict -c training --to-size 50GB --yes",
            ),
            (
                "Review, then apply:",
                "llamacache evict --older-than 30d --plan-out plan.json\nllamacache evict --apply plan.json --yes",
            ),
            (
                "Keep the two newest revisions of each model:",
                "llamacache evict -c model --keep-last 2 --dry-run",
            ),
        ),
        see_also=("llamacache-clean", "llamacache-ls"),
    ),
    "repair": Manual(
        description="Corrupt entries are moved to <cache>/quarantine/ with a note of the reason rather than deleted.",
        examples=(
            ("After a failed verify:", "llamacache verify -c model || llamacache repair -c model"),
        ),
        see_also=("llamacache-verify",),
    ),
    "verify": Manual(
        description="Never writes, so it is safe on a cache in use and on a read-only mount.",
        examples=(
            (
                "Gate a CI job (exit 1 on corruption, 2 on bad config, 3 when locked):",
                "llamacache --json verify > verify.json",
            ),
            (
                "A quick nightly check of a large cache within ten minutes:",
                "llamacache verify -c model --sample 10% --max-time 10m",
            ),
        ),
        see_also=("llamacache-repair",),
    ),
    "clean": Manual(
        description="This is what llamacache schedule installs for cron or a systemd timer, and what llamacache daemon runs at each cache's cleanup_interval.",
        examples=(
            ("What cron runs (see llamacache schedule):", "llamacache clean --quiet --wait 10m"),
            ("Preview:", "llamacache clean --dry-run"),
        ),
        see_also=("llamacache-schedule", "llamacache-daemon"),
    ),
    "warm": Manual(
        description="""
Fills a cache (default: model) before a job starts, so the job's first epoch reads from
local disk. Sources are files, folders, globs, a manifest (one path per line, or JSON,
relative to its folder) or a Hugging Face hub cache folder (models--org--name), whose
snapshots are imported as models with their revisions. In the model cache a folder is
a model named after the folder, a file given by itself a model named after the file
without its extension (--name overrides). A file already cached with the same size and
checksum is skipped (a dry run predicts the same skips and writes nothing); paths that
would leave a warmed folder or a manifest's folder are refused. Files are copied in
large sequential blocks, hashed and indexed as they are copied, and never held whole in
memory.
""",
        examples=(
            (
                "Warm a model folder before training:",
                "llamacache warm /data/llama-7b --name llama-7b",
            ),
            (
                "Import a Hugging Face hub cache and pull it into the page cache:",
                "llamacache warm ~/.cache/huggingface/hub/models--org--name --page-cache",
            ),
            (
                "See what would be copied, within a budget:",
                "llamacache warm 'shards/*.safetensors' --budget 50GB --dry-run",
            ),
        ),
        see_also=("llamacache-inspect", "llamacache-verify"),
    ),
    "stats": Manual(
        description="""
Counters are kept in memory by every process that uses a cache and flushed to the
cache's index every few seconds and at exit, so stats shows what yesterday's training
job did. Ghost hits are misses on keys that were recently evicted for room: they say
how many misses a larger disk size would have turned into hits.
""",
        examples=(
            ("Hit rates of every cache as JSON:", "llamacache stats --json"),
            (
                "Export for node_exporter's textfile collector (from cron):",
                "llamacache stats --prometheus /var/lib/node_exporter/textfile/llamacache.prom",
            ),
            ("Start counting afresh:", "llamacache stats --reset"),
        ),
        see_also=("llamacache-inspect", "llamacache-bench"),
    ),
    "bench": Manual(
        description="""
Measures a cache the way redis-benchmark measures a server: a workload of gets and
puts over a key space, reporting ops/s, latency percentiles, hit ratio and bytes/s.
Without --cache it runs on a temporary cache that is removed afterwards. --compare
runs the same workload against raw diskcache (same policy) and cachetools.LRUCache
in the same run and prints the ratios.
""",
        examples=(
            (
                "Zipf reads of 10 KB values, tiered versus raw diskcache:",
                "llamacache bench --workload zipf --value-size 10KB --compare",
            ),
            ("The memory front alone, machine-readable:", "llamacache bench --tier memory --json"),
        ),
        see_also=("llamacache-stats",),
    ),
}
