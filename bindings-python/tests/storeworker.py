"""A worker process of the store tests: ``storeworker.py cas SPEC_JSON KEY RVN ME START``.

Opens the store the spec names, waits until the wall clock reaches START (so that every
worker fires at once), makes one compare-and-swap from ``RVN`` to a record owned by
``ME``, and prints the reply as one JSON line.
"""

from __future__ import annotations

import json
import sys
import time

from storekit import open_store

from writelane import stores


def main() -> None:
    _, what, spec, key, rvn, me, start = sys.argv
    assert what == "cas"
    store = open_store(json.loads(spec))
    record = {"owner": me, "epoch": 2, "rvn": 1000 + int(me.split("-")[-1]), "lease_ms": 10000,
              "committed_token": None, "holder": me}
    pause = float(start) - time.time()
    if pause > 0:
        time.sleep(pause)
    op = {"op": "compare_and_swap", "key": key, "expected_rvn": int(rvn), "record": record}
    print(json.dumps(stores.apply(store, op)), flush=True)


if __name__ == "__main__":
    main()
