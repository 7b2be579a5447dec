"""``--config FILE``: a command's options from a YAML file (``eaco simulate --config run.yaml``).

The file is a mapping of option names, spelt as on the command line without the dashes
(``util-threshold: 0.7``) or with underscores (``util_threshold: 0.7``), to values; a list
option takes a list (``profiles: [a.json, b.json]``), an on/off option ``true``/``false``
(``reserve: false``). Options given on the command line win over the file. An unknown name,
or a value of the wrong type, is an error naming the file and the key; a relative path in the
file is taken as the command would take it, relative to where it runs (as on the command line).

Implementation: an eager option whose callback fills click's ``default_map`` before the other
options are read, so each value goes through the same type conversion and checks as the
command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

CONFIG_KEY = "_config_values"  # where the values read are kept on the context (for the run's metadata)


def _option_names(command: Any) -> dict[str, tuple[str, bool]]:
    """Every spelling a file may use -> (the parameter's name, whether it is the 'off' switch of
    an on/off pair, ``no-plots``). Typer carries its own copy of click, so parameters are told
    apart by their kind, not by class."""
    out: dict[str, tuple[str, bool]] = {}
    for param in command.params:
        if param.name is None or param.name == "config" or getattr(param, "param_type_name", "") != "option":
            continue
        out[param.name] = (param.name, False)
        out[param.name.replace("_", "-")] = (param.name, False)
        for opt in param.opts:
            if opt.startswith("--"):
                out[opt[2:]] = out[opt[2:].replace("-", "_")] = (param.name, False)
        for opt in param.secondary_opts:
            if opt.startswith("--"):
                out[opt[2:]] = out[opt[2:].replace("-", "_")] = (param.name, True)
    return out


def read_config(path: Path, command: Any) -> dict[str, Any]:
    """The file's values keyed by parameter name; :class:`typer.BadParameter` naming the file and key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise typer.BadParameter(f"{path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path}: expected a mapping of option names to values, got {type(data).__name__}")
    names = _option_names(command)
    out: dict[str, Any] = {}
    for key, value in data.items():
        found = names.get(str(key))
        if found is None:
            known = sorted({n.replace("_", "-") for n, _ in names.values()})
            raise typer.BadParameter(f"{path}: key {key!r} is not an option of this command; expected one of: {', '.join(known)}")
        name, off_switch = found
        if name in out:
            raise typer.BadParameter(f"{path}: key {key!r} sets {name.replace('_', '-')} a second time")
        if isinstance(value, dict):
            raise typer.BadParameter(f"{path}: key {key!r}: expected a value or a list, got a mapping")
        if off_switch:
            if not isinstance(value, bool):
                raise typer.BadParameter(f"{path}: key {key!r}: expected true or false, got {value!r}")
            value = not value
        out[name] = [str(v) for v in value] if isinstance(value, list) else value
    return out


def config_callback(ctx: typer.Context, param: Any, value: Path | None) -> Path | None:
    """The ``--config`` option's callback: check the file's values with each option's own type
    (an error names the file and key), then make them the context's defaults."""
    if value is None or ctx.resilient_parsing:
        return value
    values = read_config(value, ctx.command)
    params = {p.name: p for p in ctx.command.params}
    for name, raw in values.items():
        try:
            params[name].process_value(ctx, raw)
        except typer.BadParameter as exc:
            raise typer.BadParameter(f"{value}: key {name.replace('_', '-')!r}: {exc.message}") from None
    ctx.default_map = {**(ctx.default_map or {}), **values}
    ctx.meta[CONFIG_KEY] = {"file": str(value), "values": values}
    return value


def config_option() -> Any:
    return typer.Option(None, "--config", is_eager=True, callback=config_callback,
                        help="YAML file of option values (names as the options, without dashes); the command line wins")


def config_record(ctx: typer.Context) -> dict[str, Any] | None:
    """What ``--config`` read (file and values), for the run's metadata; None without one."""
    return ctx.meta.get(CONFIG_KEY)
