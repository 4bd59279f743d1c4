"""Test set-up: make the pack importable as ``wan_animate_kit`` whatever its folder is called."""
from __future__ import annotations

import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
TESTS = pathlib.Path(__file__).resolve().parent
PACK = "wan_animate_kit"

if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


def _register_pack() -> None:
    if PACK in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(PACK, ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK] = module
    spec.loader.exec_module(module)


_register_pack()
