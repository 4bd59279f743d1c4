"""Smoke e2e: the real host, started as a server, loads the pack and lists every node."""
import re

import pytest

pytestmark = pytest.mark.host


def pack_node_ids():
    from wan_animate_kit.nodes import node_classes

    return sorted(cls.GET_SCHEMA().node_id for cls in node_classes())


def test_pack_loads_without_import_failure(server):
    log = server.log()
    assert "IMPORT FAILED" not in log, log[-3000:]
    assert re.search(r"\d+\.\d+ seconds: .*wan_animate_kit", log), "the host did not report importing the pack"
    assert "Wan-Animate Kit:" not in log or "disabled" not in log, log[-3000:]


def test_object_info_lists_every_pack_node_with_tooltips(server):
    info = server.get_json("/object_info")
    expected = pack_node_ids()
    assert expected, "the pack registered no node"
    listed = sorted(k for k in info if k.startswith("WAK_"))
    assert listed == expected
    for node_id in expected:
        node = info[node_id]
        assert node["python_module"].startswith("custom_nodes"), node["python_module"]
        assert node["category"].startswith("Wan-Animate Kit")
        for section in ("required", "optional"):
            for name, spec in node["input"].get(section, {}).items():
                opts = spec[1] if len(spec) > 1 else {}
                assert opts.get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_model_folders_registered(server):
    import json
    import urllib.request

    with urllib.request.urlopen(server.url + "/models") as r:
        folders = json.loads(r.read())
    assert "detection" in folders and "sam2" in folders
