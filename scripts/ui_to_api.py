"""Convert a ComfyUI UI-format workflow (the frontend's saved .json) to an API-format prompt.

The backend has no such converter (the frontend does it), so this follows the host's
``/object_info`` input order: widget values are positional over an input's widget inputs, a seed
with ``control_after_generate`` carries one extra frontend value, linked inputs become
``[source_id, slot]``. Frontend-only nodes (Note, MarkdownNote) are dropped, muted nodes
(mode 2) are dropped, bypassed nodes (mode 4) are wired through, Reroutes are followed.

    python scripts/ui_to_api.py workflow.json --object-info object_info.json > api.json
    python scripts/ui_to_api.py workflow.json --server http://127.0.0.1:8188 > api.json
"""
from __future__ import annotations

import argparse
import json
import sys
import urllib.request

FRONTEND_ONLY = {"Note", "MarkdownNote", "PrimitiveNode"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _is_widget(spec) -> bool:
    kind = spec[0]
    if isinstance(kind, list):
        return True  # a combo given as its option list
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if opts.get("forceInput") or opts.get("force_input"):
        return False
    return kind in WIDGET_TYPES


def _has_control_after_generate(name: str, spec) -> bool:
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if "control_after_generate" in opts:
        return bool(opts["control_after_generate"])
    return spec[0] == "INT" and name in ("seed", "noise_seed")


def input_specs(info: dict) -> list[tuple[str, list]]:
    """[(name, spec)] in the host's input order (required then optional)."""
    order = info.get("input_order") or {s: list(info["input"].get(s, {})) for s in ("required", "optional")}
    out = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            out.append((name, info["input"][section][name]))
    return out


def convert(workflow: dict, object_info: dict) -> dict:
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {}
    for link in workflow.get("links", []):
        if isinstance(link, dict):
            links[link["id"]] = (link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"])
        else:
            links[link[0]] = (link[1], link[2], link[3], link[4])

    def resolve(link_id):
        """Follow Reroutes and bypassed nodes back to a real output: (node_id, slot) or None."""
        seen = set()
        while link_id is not None and link_id not in seen:
            seen.add(link_id)
            origin, slot, _, _ = links[link_id]
            node = nodes.get(origin)
            if node is None or node.get("mode") == 2:
                return None
            if node["type"] == "Reroute":
                link_id = node["inputs"][0].get("link")
                continue
            if node.get("mode") == 4:  # bypass: the first input of the same type passes through
                out_type = node["outputs"][slot]["type"]
                match = [i for i in node.get("inputs", []) if i.get("type") == out_type and i.get("link") is not None]
                if not match:
                    return None
                link_id = match[0]["link"]
                continue
            return str(origin), slot
        return None

    prompt = {}
    for node in sorted(workflow["nodes"], key=lambda n: n["id"]):
        ntype = node["type"]
        if ntype in FRONTEND_ONLY or ntype == "Reroute" or node.get("mode") in (2, 4):
            continue
        if ntype not in object_info:
            raise KeyError(f"node {node['id']} has type {ntype!r}, which the host does not know")
        info = object_info[ntype]
        linked = {i["name"]: i.get("link") for i in node.get("inputs", [])}
        values = list(node.get("widgets_values") or [])
        if isinstance(node.get("widgets_values"), dict):
            values = None  # some nodes save widgets by name
        inputs, pos = {}, 0
        for name, spec in input_specs(info):
            widget = _is_widget(spec)
            if widget and values is not None:
                value = values[pos] if pos < len(values) else None
                pos += 1 + (1 if _has_control_after_generate(name, spec) else 0)
            elif widget:
                value = node["widgets_values"].get(name)
            else:
                value = None
            link_id = linked.get(name)
            if link_id is not None:
                src = resolve(link_id)
                if src is not None:
                    inputs[name] = [src[0], src[1]]
                    continue
            if widget and value is not None:
                inputs[name] = value
        prompt[str(node["id"])] = {"class_type": ntype, "inputs": inputs,
                                   "_meta": {"title": node.get("title") or info.get("display_name", ntype)}}
    return prompt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workflow")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--object-info")
    src.add_argument("--server")
    args = ap.parse_args(argv)
    if args.object_info:
        info = json.load(open(args.object_info))
    else:
        with urllib.request.urlopen(args.server.rstrip("/") + "/object_info") as r:
            info = json.loads(r.read())
    json.dump(convert(json.load(open(args.workflow)), info), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
