#!/usr/bin/env python3
"""Starts the IAM contention lab, ``writelane.lab`` of the Python package.

The lab itself lives in ``bindings-python/python/writelane/lab``; this launcher keeps the
command line every binding's tests use::

    python3 tests/iamlab/iamlab.py --port 0 --service-ms 20 [--trail DIR] [--verbose]

prints ONE JSON line ``{"endpoint": "http://127.0.0.1:PORT", "moto": "http://127.0.0.1:PORT2"}``
on stdout once ready and serves until SIGTERM or SIGINT (``python -m writelane.lab serve``
with the same flags).

Any Python with moto's server runs it: the lab's modules need only the standard library and
moto, not the compiled extension, so they are loaded by path from the checkout under the
name ``writelane_lab`` (``import writelane.lab`` would import ``writelane/__init__.py`` and
with it ``writelane._native``). Outside a checkout (this file copied alone) the installed
``writelane.lab`` is used.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "..", "bindings-python", "python", "writelane", "lab")


def load_lab() -> ModuleType:
    """The lab package: the checkout's source by path, else the installed one."""
    init = os.path.join(SOURCE, "__init__.py")
    if not os.path.isfile(init):
        return importlib.import_module("writelane.lab")
    name = "writelane_lab"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[os.path.abspath(SOURCE)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: "list[str] | None" = None) -> int:
    """``serve`` with this command line's flags."""
    load_lab()
    cli = importlib.import_module(
        "writelane_lab.cli" if "writelane_lab" in sys.modules else "writelane.lab.cli"
    )
    return int(cli.main(["serve"] + list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
