"""Policies of your own: ``FILE.py:Class`` or ``package.module:Class`` wherever a policy is named.

A researcher's scheduler runs on the same simulator, workloads, energy model and reports as the
built-in ones (``eaco simulate -p fifo,eaco,my_policy.py:MyPolicy``), and the same object drives
the live runtime (``eaco serve --policy my_policy.py:MyPolicy``). The class must subclass
:class:`eaco.policies.base.Policy` (``schedule(view) -> list[Decision]``, docs/policies.md); it
is built once per run, with the run's :class:`~eaco.policies.registry.PolicyContext` if its
constructor requires one argument (or its first, optional, is named ``ctx`` or ``context``),
else with none. Its label in tables and file names is its
``name`` attribute when the class sets one, else the class name.

A file is loaded once per process (again if it changed on disk) as a module of its own, so that
helpers, dataclasses and imports in it work as in any module.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eaco.errors import InputError
from eaco.policies.base import Policy

_SPEC = re.compile(r"^(?P<where>[^:]+):(?P<attr>[A-Za-z_][A-Za-z0-9_]*)$")
_LOADED: dict[tuple[str, int, int], Any] = {}  # (file, mtime_ns, size) -> module
CONTEXT_NAMES = ("ctx", "context")  # an optional first parameter so named gets the PolicyContext


@dataclass(frozen=True, slots=True)
class CustomPolicy:
    """A policy class named by ``FILE.py:Class`` or ``module:Class``, ready to build."""

    spec: str  # as given
    cls: type[Policy]
    takes_context: bool

    @property
    def label(self) -> str:
        own = self.cls.__dict__.get("name")
        return own if isinstance(own, str) and own.strip() else self.cls.__name__

    @property
    def manages_node_power(self) -> bool:
        return bool(self.cls.manages_node_power)

    def build(self, ctx: object) -> Policy:
        policy = self.cls(ctx) if self.takes_context else self.cls()  # type: ignore[call-arg]
        if not isinstance(policy, Policy):  # a __new__ that returns something else
            raise InputError(self.spec, f"{self.cls.__name__}(...) did not return a Policy")
        return policy


def is_custom(name: str) -> bool:
    """Whether a policy name is a ``WHERE:Class`` reference rather than a built-in name."""
    return ":" in name


def _load_file(path: Path, spec: str) -> Any:
    if not path.is_file():
        raise InputError(spec, f"no policy file {path} (expected FILE.py:Class)")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    module = _LOADED.get(key)
    if module is not None:
        return module
    name = "eaco_user_policy_" + re.sub(r"\W", "_", path.stem) + f"_{len(_LOADED)}"
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise InputError(spec, f"cannot load {path} as Python")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: any error, named with where it came from
        sys.modules.pop(name, None)
        raise InputError(spec, f"loading {path} failed: {type(exc).__name__}: {exc}") from exc
    _LOADED[key] = module
    return module


def _load_module(where: str, spec: str) -> Any:
    try:
        return importlib.import_module(where)
    except Exception as exc:
        raise InputError(spec, f"cannot import module {where!r}: {type(exc).__name__}: {exc}") from exc


def load_custom_policy(spec: str) -> CustomPolicy:
    """The policy class ``spec`` names (module docs); an error names the spec and what was
    expected."""
    text = spec.strip()
    m = _SPEC.match(text)
    if m is None:
        raise InputError(text, "expected FILE.py:Class or package.module:Class for a policy of your own")
    where, attr = m.group("where").strip(), m.group("attr")
    module = _load_file(Path(where).expanduser(), text) if where.endswith(".py") else _load_module(where, text)
    obj = getattr(module, attr, None)
    if obj is None:
        raise InputError(text, f"{where} has no {attr!r}")
    if not (inspect.isclass(obj) and issubclass(obj, Policy)):
        raise InputError(text, f"{attr} is not a subclass of eaco.policies.base.Policy")
    if inspect.isabstract(obj):
        raise InputError(text, f"{attr} does not implement schedule(view)")
    sig = inspect.signature(obj)
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if len(required) == 1 and required[0] in positional:
        takes = True
    elif not required:
        takes = bool(positional) and positional[0].name in CONTEXT_NAMES
    else:
        raise InputError(text, f"{attr}'s constructor must take no argument or one (the PolicyContext), not {sig}")
    return CustomPolicy(text, obj, takes)
