"""The command line: ``python -m writelane.lab serve|stress``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any, List, Optional

from .server import LabError, LabServer

PROG = "python -m writelane.lab"


def _serve(args: argparse.Namespace) -> int:
    writer = None
    on_call = None
    if args.trail is not None:
        from .trail import TrailWriter

        try:
            writer = TrailWriter(args.trail)
        except OSError as exc:
            raise LabError(f"--trail {args.trail}: {exc.strerror or exc}") from None
        on_call = writer.add
    try:
        lab = LabServer(port=args.port, service_ms=args.service_ms, verbose=args.verbose,
                        on_call=on_call)
    except BaseException:
        if writer is not None:
            writer.close()
        raise
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ready = json.loads(lab.ready_line())
    if args.trail is not None:
        ready["trail"] = args.trail
    print(json.dumps(ready), flush=True)
    while not stop.wait(0.5):
        pass
    lab.stop()
    if writer is not None:
        writer.close()
    return 0


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stress(args: argparse.Namespace) -> int:
    from .stress import render, stress

    # SIGTERM ends the stress as Ctrl-C does: the runs (in sessions of their own) and the
    # lab it started are stopped on the way out (status 130).
    signal.signal(signal.SIGTERM, _interrupted)

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    report = stress(
        command,
        runs=args.n,
        role=args.role,
        policy=args.policy,
        endpoint=args.endpoint,
        service_ms=args.service_ms,
        trail=args.trail,
        timeout_s=args.timeout,
        check=not args.no_check,
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return 0 if report["ok"] else 1


def parser() -> argparse.ArgumentParser:
    """The argument parser of both commands."""
    top = argparse.ArgumentParser(prog=PROG, description="A local IAM that refuses overlapping "
                                  "writes with IAM's ConcurrentModification, and a harness "
                                  "that runs your automation against it concurrently.")
    sub = top.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="run the lab until SIGTERM or SIGINT")
    serve.add_argument("--port", type=int, default=0, help="listen port (0: any free)")
    serve.add_argument("--service-ms", type=int, default=20, help="hold time of a write (20)")
    serve.add_argument("--trail", metavar="DIR", help="write every call as CloudTrail records in DIR")
    serve.add_argument("--verbose", action="store_true", help="log requests to stderr")
    st = sub.add_parser("stress", help="run COMMAND N times at once against a lab")
    st.add_argument("-n", type=int, default=8, help="concurrent runs (8)")
    st.add_argument("--role", default="lab-stress", help="the role the runs change (lab-stress)")
    st.add_argument("--policy", default="lab", help="its inline policy (lab)")
    st.add_argument("--endpoint", help="a running lab (default: start one)")
    st.add_argument("--service-ms", type=int, default=20, help="the started lab's write hold time (20)")
    st.add_argument("--trail", metavar="DIR", help="the started lab writes CloudTrail records in DIR")
    st.add_argument("--timeout", type=float, default=300.0, help="seconds before runs are killed (300)")
    st.add_argument("--no-check", action="store_true",
                    help="do not check the inline policy for a statement per run")
    st.add_argument("--json", action="store_true", help="the report as JSON")
    st.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND...")
    return top


def main(argv: Optional[List[str]] = None) -> int:
    """Run a command; errors are one line on stderr (status 2), never a traceback."""
    args = parser().parse_args(argv)
    try:
        if args.cmd == "serve":
            return _serve(args)
        return _stress(args)
    except LabError as exc:
        print(f"{PROG} {args.cmd}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): no traceback; stdout's buffer goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
