"""Another "machine": its own cache folder over the shared server, driven over stdin.

Lines are JSON ``[op, key, value]`` with op put|rm; each answer is the monotonic time of
the acknowledgement (the put/remove returned).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tests.network.helpers import net_settings, network_of, tiered


def main() -> None:
    url, prefix, path = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    cache = tiered(path, net_settings(url, prefix))
    network_of(cache).listener.ready.wait(5)
    print("ready", flush=True)
    for line in sys.stdin:
        op, key, value = json.loads(line)
        if op == "put":
            cache.put(key, value)
        elif op == "rm":
            cache.remove(key)
        print(time.monotonic(), flush=True)
    cache.close()


if __name__ == "__main__":
    main()
