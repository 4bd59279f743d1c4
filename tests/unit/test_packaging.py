"""Packaging declarations match the tree: a declared web folder exists with content, or none is declared."""
from __future__ import annotations

import ast
import pathlib

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_web_directory_is_declared_only_with_content():
    comfy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["comfy"]
    declared = [comfy["web"]] if "web" in comfy else []
    tree = ast.parse((ROOT / "__init__.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "WEB_DIRECTORY" for t in node.targets):
            declared.append(ast.literal_eval(node.value))
    for web in declared:
        folder = ROOT / web
        assert folder.is_dir() and any(p.suffix == ".js" for p in folder.rglob("*")), \
            f"{web} is declared as the pack's web folder but has no JavaScript in it"


def test_web_extensions_name_nodes_of_the_pack_and_load_as_plain_modules():
    """Each extension in web/ edits a node the pack defines (a renamed node id would silently leave
    its editor off) and imports only the host's own scripts (no build step, no bundler)."""
    import re

    sources = "\n".join(p.read_text() for p in (ROOT / "nodes").glob("*.py"))
    ids = set(re.findall(r'node_id=PREFIX \+ "(\w+)"', sources))
    scripts = sorted((ROOT / "web").glob("*.js"))
    assert scripts
    for js in scripts:
        text = js.read_text()
        for target in re.findall(r'"(WAK_\w+)"', text):
            assert target[len("WAK_"):] in ids, f"{js.name} edits {target}, which the pack does not define"
        for imported in re.findall(r'^import .* from "([^"]+)";', text, flags=re.M):
            assert imported.startswith("../../scripts/"), f"{js.name} imports {imported}"
        assert "app.registerExtension(" in text
