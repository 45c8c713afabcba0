"""Every rule states its threads, memory, runtime and benchmark; GPU jobs ask for a GPU on CUDA."""

import re

import pytest

from tests.conftest import ROOT, snakemake

RULES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))


def rule_blocks() -> dict[str, str]:
    """{rule name (or its name expression): directive text} of every rule in the .smk files."""
    blocks = {}
    for path in RULES:
        parts = re.split(r"\n(?=[ \t]*rule\b[^\n]*:[ \t]*\n)", path.read_text())
        for block in parts[1:]:
            named = re.match(r"\s*rule\s+(\w+):", block)
            name = named.group(1) if named else re.search(r"name:\s*\n\s*(.+)", block).group(1)
            blocks[f"{path.name}: {name}"] = block
    return blocks


def test_every_rule_declares_threads_resources_and_a_benchmark():
    blocks = rule_blocks()
    headers = sum(len(re.findall(r"^[ \t]*rule\b[^\n]*:[ \t]*$", path.read_text(), re.M))
                  for path in RULES)
    names = {name.split(": ", 1)[1] for name in blocks}
    assert len(blocks) == headers and {  # named and loop-made rules of several files
        "download_archive", "train_nerv", "pixel_groups", "pair_stats", "cluster_layer",
        "table_s1", "run_config", 'f"canvas_stats_{_arch}_untrained"'} <= names, names
    for name, block in blocks.items():
        for directive in ("log:", "benchmark:", "threads:", "resources:"):
            assert directive in block, (name, directive)
        resources = block.split("resources:")[1].split(":\n")[0]
        assert ("mem_mb=" in resources and "runtime=" in resources) or "**canvas_resources" in (
            resources), (name, resources)


def _job_resources(result, rule: str) -> list[str]:
    """The `resources:` lines of every planned job of `rule` in a dry run's output."""
    jobs = result.stdout.split("\nrule ")
    return [re.search(r"resources: (.*)", job).group(1) for job in jobs
            if job.startswith(f"{rule}:")]


@pytest.mark.slow  # Snakemake dry runs
def test_gpu_jobs_request_a_gpu_only_on_cuda(tmp_path):
    gpu_rules = ("train_nerv", "train_ffn_vipseg", "canvas_stats_nerv_vipseg",
                 "canvas_stats_ffn_vipseg", "pair_stats", "canvas_stats_nerv_untrained")
    for device, wanted in (("cuda", True), ("cpu", False)):
        result = snakemake("-n", "--configfile", str(ROOT / "presets" / "smoke.yaml"),
                           "--config", f"device={device}", "--directory", str(tmp_path))
        assert result.returncode == 0, result.stderr
        for rule in gpu_rules:
            lines = _job_resources(result, rule)
            assert lines, (device, rule)
            assert all(("gpu=1" in line) == wanted for line in lines), (device, rule, lines)
        assert not any("gpu=" in line for line in _job_resources(result, "pixel_groups"))
