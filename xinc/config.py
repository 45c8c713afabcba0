"""Load the workflow config (config.yaml + presets) with the schema's defaults filled in."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path("workflow/schemas/config.schema.yaml")


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


def validate(config: dict[str, Any], root: Path) -> dict[str, Any]:
    """Validate against the schema and fill defaults; errors name the offending key."""
    schema = yaml.safe_load((root / SCHEMA_PATH).read_text())
    config = copy.deepcopy(config)
    try:
        _with_defaults(jsonschema.Draft202012Validator)(schema).validate(config)
    except jsonschema.ValidationError as err:
        key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        raise ValueError(f"config key {key}: {err.message}") from err
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
            raise FileNotFoundError(f"preset {preset!r}: {path} does not exist")
        config = merge(config, yaml.safe_load(path.read_text()) or {})
    return validate(config, root)
