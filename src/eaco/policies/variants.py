"""EaCO settings variants from text: ``eaco simulate --sweep "alpha=0,0.5,1"``.

``NAME=V1,V2,...`` gives one variant per value of one :class:`~eaco.policies.eaco.EacoSettings`
field (names as the fields, dashes allowed: ``util-threshold=0.7,0.9``); several such parts
separated by ``;`` give every combination (``alpha=0,1; reserve=true,false``: 4 variants). Values
are converted to the field's type (numbers, ``true``/``false``, ``inf``); a value the settings
refuse is an error naming the option and the value. Each variant is labelled ``eaco(alpha=0.5)``
(the swept values only), the label its run carries in tables and files (``jobs_eaco_alpha=0.5.csv``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import fields, replace
from typing import Sequence

from eaco.errors import InputError
from eaco.policies.eaco import EacoSettings

OPTION = "--sweep"
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in fields(EacoSettings)}


def _convert(name: str, kind: str, text: str, option: str = OPTION) -> object:
    t = text.strip().lower()
    if kind == "bool":
        if t in _TRUE:
            return True
        if t in _FALSE:
            return False
        raise InputError(option, f"{name}: expected true or false, got {text.strip()!r}")
    try:
        if kind == "int":
            return int(t)
        value = float(t)
    except ValueError:
        raise InputError(option, f"{name}: expected {'an integer' if kind == 'int' else 'a number'}, got {text.strip()!r}") from None
    if math.isnan(value):
        raise InputError(option, f"{name}: expected a number, got {text.strip()!r}")
    return value


def _label_value(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parse_settings(items: Sequence[str], base: EacoSettings, option: str) -> tuple[EacoSettings, dict[str, object]]:
    """``["alpha=0.5", "util-threshold=0.7"]`` (one value each: ``eaco serve --eaco-setting``) ->
    the settings and the changes made. An unknown name, a bad value, a name given twice or a
    value the settings refuse is an error naming ``option``."""
    kinds = _field_types()
    changes: dict[str, object] = {}
    for item in items:
        name, value = _assignment(item, kinds, option, "NAME=VALUE (e.g. alpha=0.5)")
        if name in changes:
            raise InputError(option, f"{name} is given twice")
        changes[name] = _convert(name, kinds[name], value, option)
    try:
        return replace(base, **changes), changes
    except ValueError as exc:
        raise InputError(option, str(exc)) from None


def _assignment(text: str, kinds: dict[str, str], option: str, expected: str) -> tuple[str, str]:
    """``NAME=VALUE(S)`` -> (the setting's field name, the value text); an error naming
    ``option`` when there is no value or no such setting."""
    name, sep, value = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not value.strip():
        raise InputError(option, f"expected {expected}, got {text!r}")
    if name not in kinds:
        raise InputError(option, f"unknown EaCO setting {name!r}; expected one of: {', '.join(sorted(kinds))}")
    return name, value


def describe_changes(changes: dict[str, object], sep: str = ", ") -> str:
    """``alpha=0.5, reserve=false``: the settings changed from the defaults, as given."""
    return sep.join(f"{k}={_label_value(v)}" for k, v in changes.items())


def parse_sweep(text: str, base: EacoSettings) -> list[tuple[str, EacoSettings]]:
    """``text`` -> [(label, settings)], one per combination, in the order given."""
    kinds = _field_types()
    axes: list[tuple[str, list[object]]] = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        name, values = _assignment(part, kinds, OPTION, "NAME=V1,V2,... (e.g. alpha=0,0.5,1)")
        if any(n == name for n, _ in axes):
            raise InputError(OPTION, f"{name} is swept twice")
        axes.append((name, [_convert(name, kinds[name], v) for v in values.split(",") if v.strip()]))
    if not axes:
        raise InputError(OPTION, "expected at least one NAME=V1,V2,...")
    out = []
    for combo in itertools.product(*(values for _, values in axes)):
        changes = dict(zip((n for n, _ in axes), combo))
        try:
            settings = replace(base, **changes)
        except ValueError as exc:
            raise InputError(OPTION, f"{describe_changes(changes)}: {exc}") from None
        label = f"eaco({describe_changes(changes, ',')})"
        out.append((label, settings))
    return out
