"""Load the workflow config (config.yaml + presets) with the schema's defaults filled in.

Needs only PyYAML and jsonschema (both Snakemake dependencies), so the Snakefile validates with
it before any job runs, in the main Snakemake process, without xinc's other dependencies.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path("workflow/schemas/config.schema.yaml")
MAX_ERRORS = 5  # problems listed per message; the rest are counted


class ConfigError(ValueError):
    """A configuration problem: each line names the key, what is wrong and what is allowed."""


def project_root(start: Path | None = None) -> Path:
    """The folder holding config.yaml: the current directory, else the source tree of xinc."""
    for candidate in (start or Path.cwd(), Path(__file__).resolve().parents[1]):
        if (candidate / "config.yaml").is_file() and (candidate / SCHEMA_PATH).is_file():
            return candidate
    raise FileNotFoundError(
        "config.yaml and workflow/schemas/ not found here; run xinc from the xinc project folder"
    )


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


def load_schema(root: Path | None = None) -> dict[str, Any]:
    root = project_root(root) if root is None or not (root / SCHEMA_PATH).is_file() else root
    return yaml.safe_load((root / SCHEMA_PATH).read_text())


def validate(config: dict[str, Any], root: Path | None = None) -> dict[str, Any]:
    """Validate against the schema and fill defaults; `ConfigError` lists each problem on one
    line (key, reason, allowed values)."""
    schema = load_schema(root)
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


def load_config(preset: str | None = None, root: Path | None = None) -> dict[str, Any]:
    """config.yaml, overridden by presets/<preset>.yaml (or a YAML path), validated."""
    root = project_root(root)
    config = yaml.safe_load((root / "config.yaml").read_text())
    if preset:
        path = Path(preset)
        if not path.suffix:
            path = root / "presets" / f"{preset}.yaml"
        if not path.is_file():
            presets = sorted(p.stem for p in (root / "presets").glob("*.yaml"))
            raise FileNotFoundError(f"preset {preset!r}: {path} does not exist "
                                    f"(presets: {', '.join(presets)}; or a YAML file's path)")
        config = merge(config, yaml.safe_load(path.read_text()) or {})
    return validate(config, root)


def write_config(path: str | Path, config: dict[str, Any]) -> None:
    """Write a resolved config as YAML, atomically (what `results/<run>/config.yaml` holds)."""
    from xinc.io import write_text

    header = "# The resolved configuration of this run (config files + schema defaults).\n"
    write_text(path, header + yaml.safe_dump(dict(config), sort_keys=False))
