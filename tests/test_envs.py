"""The conda environments (envs/*.yaml): channels, exact pins equal to constraints.txt, and
the `conda:` directive of every rule (offline: parsing only, no solve)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import rattler
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
ENVS = sorted((ROOT / "envs").glob("*.yaml"))
RULE_FILES = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
CHANNELS = ["conda-forge", "nodefaults"]
CONDA_TO_PYPI = {  # conda-forge name: PyPI name, where they differ
    "pytorch": "torch",
    "matplotlib-base": "matplotlib",
    "seaborn-base": "seaborn",
}
CONDA_ONLY = {"python", "pip", "c-compiler"}  # pinned in the env, absent from constraints.txt
RULE = re.compile(r"^(?P<indent>\s*)rule(?:\s+(?P<name>\w+))?\s*:\s*(?:#.*)?$")
ACTION = re.compile(r"^\s+(?:script|shell|run|notebook|wrapper|cwl)\s*:")
CONDA = re.compile(r"^\s+conda\s*:\s*(?P<inline>\S.*)?$")
QUOTED = re.compile(r"""^\s*(?P<q>["'])(?P<path>[^"']+)(?P=q)\s*,?\s*(?:#.*)?$""")


def constraints() -> dict[str, str]:
    """constraints.txt as {canonical PyPI name: exact version}."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def load_env(path: Path) -> dict:
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict), f"{path.name}: not a mapping with channels and dependencies"
    return env


def split_deps(path: Path) -> tuple[list[str], list[str]]:
    """The conda specs and the pip requirements of an env file."""
    conda, pip = [], []
    for dep in load_env(path).get("dependencies") or []:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, f"{path.name}: unexpected dependency section {dep}"
            pip.extend(dep["pip"])
        else:
            conda.append(str(dep))
    return conda, pip


def match_spec(path: Path, dep: str) -> rattler.MatchSpec:
    try:
        return rattler.MatchSpec(dep)
    except Exception as err:  # rattler raises its own error types
        pytest.fail(f"envs/{path.name}: {dep!r} is not a conda MatchSpec: {err}")


def pip_requirement(path: Path, entry: str) -> Requirement:
    try:
        return Requirement(entry)
    except InvalidRequirement as err:
        pytest.fail(f"envs/{path.name}: pip entry {entry!r} is not a requirement: {err}")


def exact_conda_version(spec: rattler.MatchSpec) -> str | None:
    """The version of a `name ==X.Y.Z` spec, None for bare names, ranges and wildcards."""
    version = spec.version
    if version is None or not version.startswith("=="):
        return None
    number = version[2:]
    try:
        return number if str(rattler.Version(number)) == number else None
    except Exception:  # rattler raises its own error types for malformed versions
        return None


def anonymous(block: list[str]) -> str:
    """The `name:` expression of a rule declared as `rule:` (in a loop)."""
    for i, text in enumerate(block):
        if re.match(r"^\s+name\s*:", text):
            return next((t.strip() for t in block[i + 1 :] if t.strip()), "?")
    return "(anonymous)"


def rule_envs(path: Path) -> list[tuple[str, str | None]]:
    """(`file:line rule name`, the `conda:` path or None) for each rule that runs something."""
    lines = path.read_text().splitlines()
    found = []
    for start, line in enumerate(lines):
        head = RULE.match(line)
        if not head:
            continue
        end = start + 1
        while end < len(lines) and (
            not lines[end].strip()
            or len(lines[end]) - len(lines[end].lstrip()) > len(head["indent"])
        ):
            end += 1
        block = lines[start + 1 : end]
        label = f"{path.relative_to(ROOT)}:{start + 1} rule {head['name'] or anonymous(block)}"
        env = None
        for i, text in enumerate(block):
            conda = CONDA.match(text)
            if conda:
                value = conda["inline"] or next((t for t in block[i + 1 :] if t.strip()), "")
                quoted = QUOTED.match(value)
                assert quoted, f"{label}: conda: must be a plain quoted path, got {value.strip()!r}"
                env = quoted["path"]
        if any(ACTION.match(text) for text in block):
            found.append((label, env))
    return found


def all_rule_envs() -> list[tuple[Path, str, str | None]]:
    return [(path, label, env) for path in RULE_FILES for label, env in rule_envs(path)]


def test_there_are_env_files_and_rules():
    assert ENVS, "envs/ holds no *.yaml environment"
    assert len(all_rule_envs()) > 10, "found almost no rules in Snakefile and workflow/rules"


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_channels_are_conda_forge_only(path):
    channels = load_env(path).get("channels")
    assert channels == CHANNELS, f"envs/{path.name}: channels {channels}, expected {CHANNELS}"


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_conda_pins_are_exact_and_equal_constraints(path):
    pins = constraints()
    conda, _ = split_deps(path)
    assert conda, f"envs/{path.name}: no conda dependencies"
    for dep in conda:
        spec = match_spec(path, dep)
        version = exact_conda_version(spec)
        assert version, f"envs/{path.name}: {dep!r} is not pinned as `name ==X.Y.Z`"
        name = spec.name.normalized
        if name in CONDA_ONLY:
            continue
        pypi = canonicalize_name(CONDA_TO_PYPI.get(name, name))
        assert pypi in pins, (f"envs/{path.name}: {dep!r} ({pypi} on PyPI) has no pin in "
                              "constraints.txt; add it there, or to CONDA_TO_PYPI if the "
                              "names differ")
        assert version == pins[pypi], (f"envs/{path.name}: {dep!r} but constraints.txt pins "
                                       f"{pypi}=={pins[pypi]}")


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_pip_pins_are_exact_and_equal_constraints(path):
    pins = constraints()
    conda, pip = split_deps(path)
    if pip:
        assert any(match_spec(path, d).name.normalized == "pip" for d in conda), (
            f"envs/{path.name}: has a pip: section but no pip conda dependency")
    for entry in pip:
        req = pip_requirement(path, entry)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, (
            f"envs/{path.name}: pip entry {entry!r} is not pinned as `name==X.Y.Z`")
        name = canonicalize_name(req.name)
        assert pins.get(name) == specs[0].version, (
            f"envs/{path.name}: pip entry {entry!r} but constraints.txt pins "
            f"{name}=={pins.get(name, '(nothing)')}")


def test_envs_cover_the_runtime_dependencies():
    """Every dependency of pyproject.toml's [project] is in an env, by conda or pip name."""
    provided = set()
    for path in ENVS:
        conda, pip = split_deps(path)
        for dep in conda:
            name = match_spec(path, dep).name.normalized
            provided.add(canonicalize_name(CONDA_TO_PYPI.get(name, name)))
        provided.update(canonicalize_name(pip_requirement(path, e).name) for e in pip)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        name = canonicalize_name(Requirement(dep).name)
        assert name in provided, f"pyproject.toml dependency {dep!r} is in no envs/*.yaml"


def test_every_rule_names_an_existing_env():
    envs = {path.resolve() for path in ENVS}
    for path, label, env in all_rule_envs():
        assert env, f"{label}: no conda: directive (add conda: \"../../envs/<env>.yaml\")"
        target = (path.parent / env).resolve()
        assert target in envs, (f"{label}: conda: {env!r} resolves to {target}, which is not "
                                "an envs/*.yaml file (paths are relative to the rule's file)")


def test_every_env_is_used_by_a_rule():
    used = {(path.parent / env).resolve() for path, _, env in all_rule_envs() if env}
    for path in ENVS:
        assert path.resolve() in used, f"envs/{path.name}: no rule names it in conda:"
