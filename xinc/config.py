"""Load the workflow config (config.yaml + presets) with the schema's defaults filled in.

The schema is package data (`xinc/config.schema.yaml`), so an installed xinc finds it anywhere.
Needs only PyYAML and jsonschema (both Snakemake dependencies), so the Snakefile validates with
it before any job runs, in the main Snakemake process, without xinc's other dependencies.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_FILE = "config.schema.yaml"  # in the xinc package
MAX_ERRORS = 5  # problems listed per message; the rest are counted
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(ValueError):
    """A configuration problem: each line names the key, what is wrong and what is allowed."""


@functools.cache
def _schema() -> dict[str, Any]:
    """The config schema, the package's `xinc/config.schema.yaml` (read once; not to be changed)."""
    return yaml.load(resources.files("xinc").joinpath(SCHEMA_FILE).read_text("utf-8"), _LOADER)


def schema_defaults(*section: str) -> dict[str, Any]:
    """The schema's default of every key of a config section, e.g. `("train", "nerv")`."""
    node = _schema()
    for key in section:
        node = node["properties"][key]
    return {name: copy.deepcopy(spec["default"])
            for name, spec in node["properties"].items() if "default" in spec}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict update, as Snakemake merges --configfile over configfile."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _with_defaults(validator_class: type) -> type:
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # noqa: ANN001
        for name, sub in properties.items():
            if "default" in sub and isinstance(instance, dict):
                instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _without_echoes(errors: list[Any]) -> list[Any]:
    """Drop `unevaluatedProperties` errors of an object that has another error inside it: a
    property that fails its own schema counts as unevaluated too, and would be named twice."""
    def inside(error: Any, path: tuple[Any, ...]) -> bool:
        return tuple(error.absolute_path)[:len(path)] == path

    return [e for e in errors
            if e.validator != "unevaluatedProperties"
            or not any(other is not e and other.validator != "unevaluatedProperties"
                       and inside(other, tuple(e.absolute_path)) for other in errors)]


def _key(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """`schema` with a local `$ref` ("#/$defs/...") followed."""
    ref = schema.get("$ref", "")
    if ref.startswith("#/"):
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _allowed(err: jsonschema.ValidationError, root: dict[str, Any]) -> str:
    """What the schema allows at the failing key, in a few words."""
    schema = _resolve(err.schema, root) if isinstance(err.schema, dict) else {}
    if err.validator == "additionalProperties":
        return "allowed keys: " + ", ".join(sorted(schema.get("properties", {})))
    if "enum" in schema:
        return "allowed values: " + ", ".join(map(str, schema["enum"]))
    parent = _resolve(err.parent.schema, root) if err.parent is not None else schema
    description = (schema.get("description") or parent.get("description") or "").strip()
    return description.split(". ")[0].rstrip(".") if description else ""


def _cli_hint(err: jsonschema.ValidationError) -> str:
    """A hint when a value arrived as a string where a number or list was expected, as
    `--config key=value` delivers it."""
    if isinstance(err.instance, str) and err.validator == "type":
        return ("(values of --config arrive as strings: set numbers and lists in a YAML file "
                "and pass it with --configfile, which overlays config.yaml key by key)")
    return ""


def describe(err: jsonschema.ValidationError, root: dict[str, Any]) -> str:
    """One line: the offending key, the reason, what is allowed (and a hint)."""
    message = err.message if len(err.message) <= 200 else err.message[:197] + "..."
    parts = [f"config key {_key(err.absolute_path)}: {message}", _allowed(err, root)]
    return "; ".join(p for p in parts if p)


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Validate against the schema (package data) and fill defaults; `ConfigError` lists each
    problem on one line (key, reason, allowed values)."""
    schema = _schema()
    config = copy.deepcopy(config)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = _without_echoes(sorted(validator.iter_errors(config),
                                    key=lambda e: _key(e.absolute_path)))
    if errors:
        errors = [jsonschema.exceptions.best_match([e]) for e in errors]
        lines = [describe(e, schema) for e in errors]
        extra = len(lines) - MAX_ERRORS
        lines = lines[:MAX_ERRORS] + ([f"... and {extra} more"] if extra > 0 else [])
        lines += sorted({hint for hint in map(_cli_hint, errors) if hint})
        raise ConfigError("\n".join(lines))
    return config


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from `path` (an empty file is an empty mapping)."""
    content = yaml.safe_load(path.read_text()) or {}
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: holds a {type(content).__name__}, not a mapping of config "
                          "keys; write it as `key: value` lines")
    return content


def preset_path(preset: str, root: Path) -> Path:
    """A preset's file: a name is `<root>/presets/<name>.yaml`, anything with a suffix a path."""
    path = Path(preset)
    if not path.suffix:
        path = root / "presets" / f"{preset}.yaml"
    if not path.is_file():
        folder = root / "presets"
        known = (f"presets: {', '.join(sorted(p.stem for p in folder.glob('*.yaml')))}"
                 if folder.is_dir() else f"no presets/ folder in {root}: run from the xinc "
                 "project folder")
        raise FileNotFoundError(f"preset {preset!r}: {path} does not exist ({known}; or a YAML "
                                "file's path)")
    return path


def load_config(preset: str | None = None, root: Path | None = None) -> dict[str, Any]:
    """The config of the project folder `root` (default: the current directory), validated:
    its config.yaml (none there: the schema's defaults alone), overridden by a preset, either a
    name in `<root>/presets/` or a YAML file's path."""
    root = Path.cwd() if root is None else Path(root)
    base = root / "config.yaml"
    config = read_yaml(base) if base.is_file() else {}
    if preset:
        config = merge(config, read_yaml(preset_path(preset, root)))
    return validate(config)


def write_config(path: str | Path, config: dict[str, Any]) -> None:
    """Write a resolved config as YAML, atomically (what `results/<run>/config.yaml` holds)."""
    from xinc.io import write_text

    header = "# The resolved configuration of this run (config files + schema defaults).\n"
    write_text(path, header + yaml.safe_dump(dict(config), sort_keys=False))
