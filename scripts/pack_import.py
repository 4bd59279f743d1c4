"""Import this checkout as the package ``wan_animate_kit``, whatever its folder is called (the host
imports it under a mangled name; tests, benches and scripts use this one)."""
from __future__ import annotations

import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACK = "wan_animate_kit"


def register_pack():
    """The pack module, imported once (cheap: no host, no heavy dependency)."""
    if PACK not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACK, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK] = module
        spec.loader.exec_module(module)
    return sys.modules[PACK]
