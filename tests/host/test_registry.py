"""A missing optional dependency disables only the nodes that need it, with an install hint."""
import importlib.util
import logging

import pytest

pytestmark = pytest.mark.host


def test_missing_sam2_disables_only_the_sam2_nodes(host, monkeypatch, caplog):
    from wan_animate_kit import nodes

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sam2" else real(name, *a))
    with caplog.at_level(logging.WARNING, logger="wan_animate_kit"):
        ids = {c.GET_SCHEMA().node_id for c in nodes.node_classes()}
    assert "WAK_Sam2Loader" not in ids and "WAK_CharacterSegmentation" not in ids
    assert {"WAK_PoseExtract", "WAK_AnimateSampler", "WAK_MaskShape", "WAK_RelightLoRA"} <= ids
    assert "sam2==1.1.0" in caplog.text and "segment" in caplog.text


def test_pack_import_is_cheap_and_registers_through_the_entrypoint(host):
    import subprocess
    import sys

    import wan_animate_kit

    assert callable(wan_animate_kit.comfy_entrypoint)

    code = ("import importlib.util, sys, pathlib; root = pathlib.Path(sys.argv[1]);"
            "spec = importlib.util.spec_from_file_location('wak', root / '__init__.py', "
            "submodule_search_locations=[str(root)]); m = importlib.util.module_from_spec(spec);"
            "sys.modules['wak'] = m; spec.loader.exec_module(m);"
            "heavy = [n for n in ('torch', 'onnxruntime', 'sam2', 'cv2', 'comfy') if n in sys.modules];"
            "print(','.join(heavy))")
    from conftest import ROOT

    out = subprocess.run([sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""  # importing the pack loads none of the heavy modules
