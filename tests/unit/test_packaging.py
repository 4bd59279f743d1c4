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
