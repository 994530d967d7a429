"""Writing a form's result back into the site file's own text, so that its comments survive.

Site files are commented by hand (configs/*.yaml explain nearly every key). PyYAML drops comments,
and a round-trip YAML library is not among our dependencies; but PyYAML's composer knows where in
the text each value starts and ends. So a change is written as a patch of the original text: a
changed value replaces just its own span (the rest of the line, its comment included, stays), and
a new key is added below the last key of its section. The patched text is used only when it parses
to exactly the intended data; anything the patch cannot do (an item removed from a list, a
section written in flow style, anchors) makes it give up, and the whole file is written anew from
the data, without comments; the page says which of the two happened.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


class _SiteDumper(yaml.SafeDumper):
    """Lists of plain values on one line (`resolution: [640, 480]`), as people write them."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flat = all(not isinstance(item, dict | list) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_SiteDumper.add_representer(list, _represent_list)


def dump_site(mapping: dict[str, Any]) -> str:
    return yaml.dump(mapping, Dumper=_SiteDumper, sort_keys=False, allow_unicode=True, width=100)


def _flow(value: Any) -> str:
    """A scalar or a list of scalars as one line of YAML."""
    text = yaml.dump(
        [value], Dumper=yaml.SafeDumper, default_flow_style=True, width=1 << 30, allow_unicode=True
    )
    return text.strip()[1:-1]


class _Patch:
    def __init__(self, text: str) -> None:
        self.text = text
        self.edits: list[tuple[int, int, int, str]] = []  # start, end, order, replacement

    def replace(self, start: int, end: int, replacement: str) -> None:
        self.edits.append((start, end, len(self.edits), replacement))

    def applied(self) -> str:
        text = self.text
        for start, end, _, replacement in sorted(self.edits, reverse=True):
            text = text[:start] + replacement + text[end:]
        return text

    def value(self, node: Node, old: Any, new: Any) -> bool:
        if (type(old) is type(new) and old == new) or (_number(old) and _number(new) and old == new):
            return True
        if isinstance(old, dict) and isinstance(new, dict) and isinstance(node, MappingNode):
            return self.mapping(node, old, new)
        block_list = isinstance(node, SequenceNode) and not node.flow_style
        if (
            isinstance(old, list)
            and isinstance(new, list)
            and block_list
            and len(old) == len(new) == len(node.value)
        ):
            return all(self.value(item, a, b) for item, a, b in zip(node.value, old, new, strict=True))
        flat = not isinstance(new, dict) and not (
            isinstance(new, list) and any(isinstance(i, dict | list) for i in new)
        )
        if flat and isinstance(node, ScalarNode) and node.style not in ("|", ">"):
            start, end = node.start_mark.index, node.end_mark.index
            self.replace(start, end, (" " if start == end else "") + _flow(new))
            return True
        if flat and isinstance(new, list) and isinstance(node, SequenceNode) and node.flow_style:
            self.replace(node.start_mark.index, node.end_mark.index, _flow(new))
            return True
        return False

    def mapping(self, node: MappingNode, old: dict, new: dict) -> bool:
        pairs = {key.value: value for key, value in node.value if isinstance(key, ScalarNode)}
        if any(key not in new for key in old) or any(key not in pairs for key in old):
            return False
        for key, value in new.items():
            if key in old:
                if not self.value(pairs[key], old[key], value):
                    return False
            elif not self.insert(node, key, value):
                return False
        return True

    def insert(self, node: MappingNode, key: str, value: Any) -> bool:
        """A new key under the last key of a block mapping, at the same indentation."""
        if node.flow_style or not node.value:
            return False
        column = node.value[0][0].start_mark.column
        end = _last_end(node)
        newline = self.text.find("\n", end)
        position = len(self.text) if newline < 0 else newline + 1
        lines = dump_site({key: value}).splitlines()
        block = "".join(" " * column + line + "\n" for line in lines)
        self.replace(position, position, block if newline >= 0 else "\n" + block)
        return True


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _last_end(node: Node) -> int:
    """Where the last value inside a node ends (a block mapping's own end may lie past the comments
    that follow it)."""
    if isinstance(node, MappingNode) and node.value and not node.flow_style:
        return _last_end(node.value[-1][1])
    if isinstance(node, SequenceNode) and node.value and not node.flow_style:
        return _last_end(node.value[-1])
    return node.end_mark.index


def patch_site_text(text: str, mapping: dict[str, Any]) -> str | None:
    """`text` changed so that it holds `mapping`, comments and layout kept; None when it cannot."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        old = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(root, MappingNode) or not isinstance(old, dict):
        return None
    patch = _Patch(text)
    if not patch.mapping(root, old, mapping):
        return None
    patched = patch.applied()
    try:
        return patched if yaml.safe_load(patched) == mapping else None
    except yaml.YAMLError:
        return None


def site_text(original: str, mapping: dict[str, Any]) -> tuple[str, bool]:
    """The new file text, and whether the original's comments and layout were kept."""
    patched = patch_site_text(original, mapping)
    return (patched, True) if patched is not None else (dump_site(mapping), False)
