"""docs/nodes.md is generated from the node definitions and must be current."""
import pathlib
import sys

import pytest

pytestmark = pytest.mark.host
ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_node_reference_is_current(host):
    sys.path.insert(0, str(ROOT / "scripts"))
    import gen_node_docs
    from wan_animate_kit.nodes import node_classes

    expected = gen_node_docs.render(node_classes())
    assert (ROOT / "docs" / "nodes.md").read_text() == expected, "run: python scripts/gen_node_docs.py"
