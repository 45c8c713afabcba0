"""Rules import_nerv / import_ffn: a checkpoint trained elsewhere → xinc's format + metrics."""

from _rule import start

start(snakemake)

from xinc.workflow_steps import import_model

arch = "nerv" if snakemake.rule == "import_nerv" else "ffn"
frame = int(snakemake.wildcards.f) if arch == "ffn" else None
import_model(
    arch,
    snakemake.input.src,
    snakemake.input.frames,
    snakemake.input.meta,
    snakemake.output.ckpt,
    snakemake.output.metrics,
    seed=int(snakemake.wildcards.seed),
    frame=frame,
    settings=snakemake.params.model,
    device=snakemake.config["device"],
)
