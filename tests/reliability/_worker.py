"""Worker processes for the reliability tests, run as ``python _worker.py MODE ...``.

``stress``: threads doing get/put/remove on one cache; prints one JSON summary line.
``writer``: puts values (or, with ``--large``, streamed files) forever, printing
``ACK key`` after each put returns — the parent kills it with SIGKILL at a random moment.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _util import check_value, make_value  # noqa: E402

from llamacache.config import resolve  # noqa: E402
from llamacache.errors import LlamacacheError  # noqa: E402
from llamacache.manager import CacheManager  # noqa: E402


def manager(root: str, config: str) -> CacheManager:
    settings = resolve(config_file=Path(config), env={}, overrides={"cache.disk.path": root})
    return CacheManager(settings)


def stress(args: argparse.Namespace) -> None:
    mgr = manager(args.root, args.config)
    cache = mgr.cache("default")
    lock = threading.Lock()
    ops = {"get": 0, "hit": 0, "put": 0, "remove": 0, "errors": 0}
    anomalies: list[str] = []
    latencies: list[float] = []
    deadline = time.monotonic() + args.seconds

    def run(tid: int) -> None:
        rng = random.Random(f"{args.seed}-{tid}")
        seq = 0
        mine = {"get": 0, "hit": 0, "put": 0, "remove": 0, "errors": 0}
        lat: list[float] = []
        bad: list[str] = []
        while time.monotonic() < deadline:
            key = f"key{rng.randrange(args.keys)}"
            r = rng.random()
            t0 = time.perf_counter()
            try:
                if r < 0.6:
                    got = cache.get(key)
                    mine["get"] += 1
                    if got is not None:
                        mine["hit"] += 1
                        problem = check_value(key, got)
                        if problem:
                            bad.append(f"get {key}: {problem}")
                elif r < 0.9:
                    seq += 1
                    size = rng.choice((64, 900, 3000, 6000, 20_000, 60_000))
                    cache.put(key, make_value(key, seq * 100 + tid, size))
                    mine["put"] += 1
                else:
                    cache.remove(key)
                    mine["remove"] += 1
            except LlamacacheError as exc:
                mine["errors"] += 1
                bad.append(f"{type(exc).__name__}: {exc}")
            lat.append(time.perf_counter() - t0)
        with lock:
            for k, v in mine.items():
                ops[k] += v
            latencies.extend(lat)
            anomalies.extend(bad)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = cache.stats()["disk"]
    mgr.close()
    print(
        json.dumps(
            {
                "ops": ops,
                "anomalies": anomalies[:20],
                "anomaly_count": len(anomalies),
                "latencies": sorted(latencies),
                "evictions": stats.evictions,
            }
        )
    )


def writer(args: argparse.Namespace) -> None:
    mgr = manager(args.root, args.config)
    cache = mgr.cache("default")
    rng = random.Random(args.seed)
    out = sys.stdout
    for i in range(10**9):
        key = f"w{args.seed}-{i}"
        if args.large:
            body = make_value(key, i, args.large)
            cache.put_file(key, io.BytesIO(body))
            digest = hashlib.sha256(body).hexdigest()
        else:
            value = make_value(key, i, rng.choice((50, 2000, 9000, 70_000)))
            cache.put(key, value)
            digest = hashlib.sha256(value).hexdigest()
        out.write(f"ACK {key} {digest}\n")
        out.flush()
        if args.pause:
            time.sleep(args.pause)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("stress", "writer"))
    parser.add_argument("--root", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--seed", default="0")
    parser.add_argument("--large", type=int, default=0)
    parser.add_argument("--pause", type=float, default=0.0)  # seconds between a writer's puts
    args = parser.parse_args()
    stress(args) if args.mode == "stress" else writer(args)


if __name__ == "__main__":
    main()
