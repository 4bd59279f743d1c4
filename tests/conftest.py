"""Test set-up: make the pack importable as ``wan_animate_kit`` whatever its folder is called."""
from __future__ import annotations

import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
TESTS = pathlib.Path(__file__).resolve().parent
PACK = "wan_animate_kit"

for _p in (TESTS, TESTS / "unit"):  # test helper modules (tiny model factories, skeleton builders)
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


def _register_pack() -> None:
    if PACK in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(PACK, ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK] = module
    spec.loader.exec_module(module)


_register_pack()


# --- host fixtures ----------------------------------------------------------------------------
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def host():
    """The real ComfyUI host, imported in this process on the CPU. Returns its folder."""
    from host_harness import host_dir, import_in_process

    path = host_dir()
    import_in_process(path)
    return path


@pytest.fixture(scope="session")
def tiny_models(host):
    """Paths of the tiny official-layout models (cached between runs): a ComfyUI models tree."""
    import comfy_host
    import tiny_models as factory

    folder = comfy_host.cache_dir() / "tiny-models"
    paths = factory.write_all(folder)
    paths.update(factory.write_pose_models(folder))
    paths.update(factory.write_sam2(folder))
    paths["root"] = folder
    return paths


@pytest.fixture(scope="session")
def server(tiny_models, tmp_path_factory):
    """A real ComfyUI server with this pack loaded; stopped at the end of the session."""
    from host_harness import HostServer

    srv = HostServer(tiny_models["host_dir"] if "host_dir" in tiny_models else _host_path(),
                     tmp_path_factory.mktemp("comfy-base"), tiny_models["root"])
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


def _host_path():
    from host_harness import host_dir

    return host_dir()
