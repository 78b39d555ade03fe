"""A second process on the shared server: reads commands on stdin, answers on stdout.

``put KEY VALUE``, ``get KEY``, ``wait KEY VALUE`` (prints ms until it sees VALUE),
``killwrite KEY N`` (uploads N chunks of a large value, then SIGKILLs itself).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from llamacache.engine import framing
from tests.network.helpers import MB, net_settings, network_of, tiered


def main() -> None:
    url, prefix, path = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    cache = tiered(path, net_settings(url, prefix))
    network_of(cache).listener.ready.wait(5)
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "put":
            cache.put(args[0], args[1])
            print("ok", flush=True)
        elif cmd == "get":
            print(cache.get(args[0], "-"), flush=True)
        elif cmd == "wait":
            t0 = time.perf_counter()
            while cache.get(args[0]) != args[1]:
                time.sleep(0.0002)
            print(f"{(time.perf_counter() - t0) * 1000:.3f}", flush=True)
        elif cmd == "killwrite":
            _kill_write(cache, args[0], int(args[1]))


def _kill_write(cache: object, key: str, n: int) -> None:
    tier = network_of(cache)  # type: ignore[arg-type]
    value = os.urandom(8 * MB)
    meta, _ = framing.encode(value, cache.settings, key)  # type: ignore[attr-defined]

    def parts() -> Iterator[bytes]:
        for i in range(8):
            if i == n:
                os.kill(os.getpid(), signal.SIGKILL)
            yield value[i * MB : (i + 1) * MB]

    tier.batch_bytes = MB  # every chunk goes out before the next is produced
    tier.put_chunks(key, meta, len(value), parts())


if __name__ == "__main__":
    main()
