"""An HTML form generated from a pydantic model, and the way back from the submitted form.

The Settings page must follow the site file's models (edge/config.py) as they grow, without a form
to keep in step by hand: every field of the model becomes an input chosen by its type (nested
models: fieldsets; lists of models: one fieldset per item, with add and remove; Literal: a select;
bool: a checkbox; numbers: number inputs with the Field's bounds; tuples of numbers: one input per
element; lists of plain values: a comma-separated line), with the Field's description as help.
What it cannot express (an optional nested model such as `simulator.board`, any other union)
falls back to a small YAML text area for that one field.

Reading the form back keeps the file as small as the technician wrote it: a key that was not in
the file and still has its default value is left out (this also matters for validation, since
some models look at which keys were set), and the file's own key order is kept.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from edge.config import redact_credentials
from edge.panel.site_file import restore_secrets

COUNT = "__count"  # hidden input: how many items a list had when the form was drawn
REMOVE = "__remove"  # checkbox of a list item: leave it out
ADD = "__add"  # button value: the list that gets one more (empty) item
_MISSING = object()
_SYMBOLS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}


@dataclass
class Input:
    """One leaf of the form: `name` is the dotted path in the file (`cameras.0.fps`)."""

    name: str
    label: str
    kind: str  # text, number, checkbox, select, pair, list, yaml
    value: Any = ""
    help: str = ""
    limits: str = ""  # bounds, default, "empty: not set"
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: str = "any"
    optional: bool = False
    error: str | None = None

    @property
    def id(self) -> str:
        return "f-" + self.name.replace(".", "-")


@dataclass
class Group:
    """A nested model: a fieldset (an item of a list when `item`)."""

    name: str
    label: str
    help: str = ""
    children: list[Input | Group | Items] = field(default_factory=list)
    item: bool = False
    removed: bool = False
    error: str | None = None
    kind: str = "group"

    @property
    def has_error(self) -> bool:
        return self.error is not None or any(
            child.has_error if isinstance(child, Group | Items) else child.error is not None
            for child in self.children
        )


@dataclass
class Items:
    """A list of models: one Group per item, and a button for one more."""

    name: str
    label: str
    help: str = ""
    items: list[Group] = field(default_factory=list)
    error: str | None = None
    kind: str = "items"

    @property
    def has_error(self) -> bool:
        return self.error is not None or any(item.has_error for item in self.items)


@dataclass(frozen=True)
class _Spec:
    kind: str  # group, items, or an Input kind
    model: type[BaseModel] | None = None
    options: tuple[str, ...] = ()
    element: type | None = None  # number type of a number, of each element of a pair or list
    size: int = 0
    optional: bool = False


def _is_model(kind: object) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _is_text(kind: object) -> bool:
    return kind in (str, Path) or (
        get_origin(kind) is Literal and all(isinstance(value, str) for value in get_args(kind))
    )


def _scalar(kind: object) -> _Spec | None:
    if kind is bool:
        return _Spec("checkbox")
    if kind in (int, float):
        return _Spec("number", element=kind)
    if get_origin(kind) is Literal:
        return _Spec("select", options=tuple(str(value) for value in get_args(kind)))
    if kind in (str, Path):
        return _Spec("text")
    return None


def spec_of(annotation: object) -> _Spec:
    """The input that fits a field's type."""
    members = [annotation]
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(get_args(annotation))
    if len(members) > 1:
        return (
            _Spec("text", optional=optional)
            if all(map(_is_text, members))
            else _Spec("yaml", optional=optional)
        )
    kind = members[0]
    origin, args = get_origin(kind), get_args(kind)
    if _is_model(kind):
        return _Spec("yaml", optional=True) if optional else _Spec("group", model=kind)
    if origin is list and args and _is_model(args[0]) and not optional:
        return _Spec("items", model=args[0])
    if (
        origin is list
        and args
        and _scalar(args[0]) is not None
        and _scalar(args[0]).kind in ("text", "select", "number")
    ):
        element = _scalar(args[0])
        return _Spec("list", options=element.options, element=element.element, optional=optional)
    if origin is tuple and args and Ellipsis not in args and all(arg in (int, float) for arg in args):
        return _Spec("pair", element=int if all(arg is int for arg in args) else float, size=len(args))
    scalar = _scalar(kind)
    if scalar is None or (scalar.kind == "checkbox" and optional):
        return _Spec("yaml", optional=optional)
    return _Spec(scalar.kind, options=scalar.options, element=scalar.element, optional=optional)


def field_defaults(model: type[BaseModel], given: object = None) -> dict[str, Any]:
    """Each field's default as it reads in a file (JSON types); a nested section's own default
    instance wins over its class's defaults. Required fields have none."""
    found: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if isinstance(given, dict) and name in given:
            found[name] = given[name]
        elif info.default is not PydanticUndefined:
            found[name] = to_jsonable_python(info.default)
        elif info.default_factory is not None:
            found[name] = to_jsonable_python(info.default_factory())  # type: ignore[call-arg]
    return found


def _bounds(info: FieldInfo) -> dict[str, float]:
    found = {}
    for constraint in info.metadata:
        for key in _SYMBOLS:
            value = getattr(constraint, key, None)
            if isinstance(value, int | float):
                found[key] = value
    return found


def _first_paragraph(text: str | None) -> str:
    return " ".join((text or "").strip().split("\n\n")[0].split())


def _shown(spec: _Spec, value: Any) -> Any:
    """A file value as its input shows it (passwords redacted)."""
    if spec.kind == "checkbox":
        return bool(value)
    if spec.kind == "pair":
        values = list(value) if isinstance(value, list | tuple) else []
        return [str(values[i]) if i < len(values) else "" for i in range(spec.size)]
    if value is None:
        return ""
    if spec.kind == "list" and isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if spec.kind == "yaml":
        return redact_credentials(yaml.safe_dump(value, default_flow_style=False, sort_keys=False).strip())
    return redact_credentials(str(value))


def _limits(info: FieldInfo, spec: _Spec, default: Any) -> str:
    parts = []
    bounds = _bounds(info)
    if bounds:
        parts.append(" and ".join(f"{_SYMBOLS[key]} {value:g}" for key, value in bounds.items()))
    if default is not _MISSING and default is not None and spec.kind not in ("yaml",):
        shown = _shown(spec, default)
        shown = (
            ", ".join(shown)
            if isinstance(shown, list)
            else ("on" if shown is True else "off" if shown is False else shown)
        )
        parts.append(f"default {shown}" if shown != "" else "default empty")
    if spec.optional:
        parts.append("empty: not set")
    if spec.kind == "list" and spec.options:
        parts.append("comma-separated, in order, of " + ", ".join(spec.options))
    elif spec.kind == "list":
        parts.append("comma-separated")
    if spec.kind == "yaml":
        parts.append("YAML (the form has no inputs for this field)")
    return " · ".join(parts)


def build_form(
    model: type[BaseModel], values: object, typed: Mapping[str, str] | None = None, prefix: str = "",
    defaults: object = None,
) -> list[Input | Group | Items]:  # fmt: skip
    """The form's nodes for `values` (the file as parsed, maybe invalid or partial: what is missing
    shows its default); `typed` (the submitted form) overrides what each input shows."""
    given = values if isinstance(values, dict) else {}
    known = field_defaults(model, defaults)
    nodes: list[Input | Group | Items] = []
    for name, info in model.model_fields.items():
        spec = spec_of(info.annotation)
        key = prefix + name
        value = given.get(name, known.get(name))
        if spec.kind == "group":
            help_text = info.description or _first_paragraph(spec.model.__dict__.get("__doc__"))
            children = build_form(spec.model, value, typed, key + ".", known.get(name))
            nodes.append(Group(key, name, help_text, children))
        elif spec.kind == "items":
            items = value if isinstance(value, list) else []
            groups = []
            for index, item in enumerate(items):
                children = build_form(spec.model, item, typed, f"{key}.{index}.")
                removed = typed is not None and f"{key}.{index}.{REMOVE}" in typed
                groups.append(
                    Group(f"{key}.{index}", f"{name} #{index + 1}", "", children, item=True, removed=removed)
                )
            help_text = info.description or _first_paragraph(spec.model.__dict__.get("__doc__"))
            nodes.append(Items(key, name, help_text, groups))
        else:
            nodes.append(_input(key, name, info, spec, value, known.get(name, _MISSING), typed))
    return nodes


def _input(key: str, name: str, info: FieldInfo, spec: _Spec, value: Any, default: Any, typed) -> Input:
    bounds = _bounds(info)
    shown = _shown(spec, value)
    if typed is not None:
        if spec.kind == "checkbox":
            shown = key in typed
        elif spec.kind == "pair":
            shown = [typed.get(f"{key}.{i}", "") for i in range(spec.size)]
        elif key in typed:
            shown = typed[key]
    options = spec.options
    if spec.kind == "select" and (spec.optional or default is _MISSING):
        options = ("", *options)  # "not set", or "choose one" for a new item
    return Input(
        key, name, spec.kind, shown, info.description or "", _limits(info, spec, default), options,
        bounds.get("ge", bounds.get("gt")), bounds.get("le", bounds.get("lt")),
        "1" if spec.element is int else "any", spec.optional,
    )  # fmt: skip


def _number(text: str, kind: type | None) -> int | float:
    text = text.strip()
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected a whole number, got {text!r}") from None
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {text!r}")
    return number


def _leaf(spec: _Spec, form: Mapping[str, str], key: str, original: Any) -> Any:
    """One submitted input as the value the file gets (ValueError: why it cannot be)."""
    if spec.kind == "checkbox":
        return key in form
    if spec.kind == "pair":
        texts = [form.get(f"{key}.{i}", "") for i in range(spec.size)]
        if not all(text.strip() for text in texts):
            raise ValueError(f"{spec.size} numbers are needed")
        return [_number(text, spec.element) for text in texts]
    text = form.get(key, "")
    if spec.kind == "yaml":
        before = (
            "" if original is None else yaml.safe_dump(original, default_flow_style=False, sort_keys=False)
        )
        text = restore_secrets(before.strip(), text.strip())
        try:
            return yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as error:
            raise ValueError(f"not valid YAML: {getattr(error, 'problem', error)}") from None
    text = text.strip()
    if text == "" and spec.optional:
        return None
    if spec.kind == "number":
        if text == "":
            raise ValueError("a number is needed")
        return _number(text, spec.element)
    if spec.kind == "list":
        items = [item.strip() for item in text.split(",") if item.strip()]
        return [_number(item, spec.element) for item in items] if spec.element else items
    if spec.kind == "select":
        if text not in spec.options:
            raise ValueError("choose one of " + ", ".join(spec.options))
        return text
    if isinstance(original, str) and text == redact_credentials(original):
        return original  # shown redacted and left as it was: the real secret stays
    return restore_secrets("", text)  # refuses a redacted password typed back in a changed value


def _count(form: Mapping[str, str], key: str) -> int:
    try:
        return max(0, min(int(form.get(f"{key}.{COUNT}", "0")), 1000))
    except ValueError:
        return 0


def read_form(
    model: type[BaseModel], form: Mapping[str, str], original: object, prefix: str = "",
    defaults: object = None, removals: bool = True,
) -> tuple[dict[str, Any], dict[str, str]]:  # fmt: skip
    """The submitted form as the site file's mapping, and the inputs that could not be read.

    A key is written when the file had it, when the model requires it, or when its value is not the
    default; keys come in the file's order, new ones after in the model's order."""
    given = original if isinstance(original, dict) else {}
    known = field_defaults(model, defaults)
    order = [name for name in given if name in model.model_fields]
    order += [name for name in model.model_fields if name not in given]
    mapping: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name in order:
        info = model.model_fields[name]
        spec = spec_of(info.annotation)
        key = prefix + name
        if spec.kind == "group":
            section, found = read_form(
                spec.model, form, given.get(name), key + ".", known.get(name), removals
            )
            problems |= found
            if section or name in given:
                mapping[name] = section
            continue
        if spec.kind == "items":
            before = given.get(name) if isinstance(given.get(name), list) else []
            items = []
            for index in range(_count(form, key)):
                if removals and f"{key}.{index}.{REMOVE}" in form:
                    continue
                item_before = before[index] if index < len(before) else None
                item, found = read_form(spec.model, form, item_before, f"{key}.{index}.", None, removals)
                problems |= found
                items.append(item)
            if name in given or info.is_required() or items != known.get(name):
                mapping[name] = items
            continue
        try:
            value = _leaf(spec, form, key, given.get(name))
        except ValueError as error:
            problems[key] = str(error)
            continue
        if name in given or info.is_required() or value != known.get(name, _MISSING):
            mapping[name] = value
    return mapping, problems


def add_item(mapping: dict[str, Any], key: str) -> bool:
    """One more (empty) item at the end of the list `key` (a dotted path); False if there is none."""
    *parents, last = key.split(".")
    node: Any = mapping
    for part in parents:
        node = node[int(part)] if isinstance(node, list) and part.isdigit() else node.setdefault(part, {})
        if not isinstance(node, dict | list):
            return False
    if not isinstance(node, dict):
        return False
    node.setdefault(last, [])
    if not isinstance(node[last], list):
        return False
    node[last].append({})
    return True


def error_reason(error: dict) -> str:
    """pydantic's words, as load_config says them (our validators' own words, unknown keys)."""
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "value_error":
        return redact_credentials(str(error["ctx"]["error"]))
    return redact_credentials(error["msg"])


def _nodes_by_name(nodes: list) -> dict[str, Input | Group | Items]:
    found: dict[str, Input | Group | Items] = {}
    for node in nodes:
        found[node.name] = node
        if isinstance(node, Group):
            found |= _nodes_by_name(node.children)
        elif isinstance(node, Items):
            found |= _nodes_by_name(node.items)
    return found


def attach_errors(
    nodes: list, problems: Mapping[str, str], error: ValidationError | None = None
) -> list[str]:
    """Put each problem next to its input (or the nearest fieldset holding it); what belongs to no
    input (the whole file) comes back as lines for the top of the form."""
    named = _nodes_by_name(nodes)
    general: list[str] = []
    found = [(key.split("."), reason) for key, reason in problems.items()]
    if error is not None:  # a value that could not be read is missing for pydantic: said once
        located = [([str(part) for part in item["loc"]], error_reason(item)) for item in error.errors()]
        found += [(parts, reason) for parts, reason in located if ".".join(parts) not in problems]
    for parts, reason in found:
        where = list(parts)
        while where and ".".join(where) not in named:
            where.pop()
        if not where:
            general.append(f"{'.'.join(parts) or 'the file'}: {reason}")
            continue
        node = named[".".join(where)]
        said = reason if where == parts else f"{'.'.join(parts[len(where) :])}: {reason}"
        node.error = said if node.error is None else f"{node.error}; {said}"
    marked = [name for name, node in named.items() if node.error is not None]
    if marked:  # the sections are folded: say where to look
        general.insert(0, "needs a fix (marked below): " + ", ".join(marked))
    return general
