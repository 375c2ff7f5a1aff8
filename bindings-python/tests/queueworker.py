"""A writer process of the queue tests: ``queueworker.py CONFIG_JSON``.

Opens the store the config's ``spec`` names and a ``writelane.Lane`` with owner
``owner``, prints ``{"ready": OWNER}``, and waits for a line ``go`` on stdin before it runs
one write to ``key``. Inside the write it prints ``{"writing": OWNER, "fence": F, "t": T}``
(``T``: ``time.time()``); with ``"hold": true`` it then waits for a line ``release`` on
stdin before the write returns (the holder the others queue behind). It ends with
``{"done": OWNER, "fence": F, "takeovers": N}``, or ``{"gave_up": REASON}``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Dict

from storekit import open_store

import writelane


def out(obj: Dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    owner = cfg["owner"]
    lane = writelane.Lane(writelane.Policy.preset("iam", **cfg["policy"]), store=open_store(cfg["spec"]),
                          owner=owner, holder=f"queueworker {owner}")
    out({"ready": owner})
    if sys.stdin.readline().strip() != "go":
        return

    def write(attempt: writelane.Attempt) -> int:
        out({"writing": owner, "fence": attempt.fence, "t": time.time()})
        if cfg.get("hold"):
            sys.stdin.readline()
        return attempt.fence or 0

    try:
        fence = lane.run(cfg["key"], write)
    except writelane.GaveUp as exc:
        out({"gave_up": exc.reason})
        return
    takeovers = sum(1 for e in lane.events() if e.type == "lease_acquired" and getattr(e, "takeover", False))
    out({"done": owner, "fence": fence, "takeovers": takeovers})


if __name__ == "__main__":
    main()
