"""Every figure rule: xinc.plots.<module>.render of the figure's inputs (xinc.figure_plan).

The rule's name is the figure; its spec says which module draws it and from which inputs:
`frame` figures from per-frame statistics (and frames), `objects` from FFN and NeRV statistics
and instance tables, `motion` from contribution changes, flows and frames, `clusters` from
cluster files, `members` from cluster members (and frames).
"""

import importlib

from _rule import start

start(snakemake)

from xinc.figure_plan import FIGURES
from xinc.plots import by_key, pair_inputs

spec = FIGURES[snakemake.rule]
module = importlib.import_module(f"xinc.plots.{spec.module}")
labels, files = snakemake.params.labels, snakemake.input
if spec.kind == "frame":
    inputs = [pair_inputs(files.stats, labels["panels"])]
elif spec.kind == "objects":
    inputs = [
        pair_inputs(files.ffn_stats, labels["ffn_panels"]),
        pair_inputs(files.nerv_stats, labels["nerv_panels"]),
        by_key(labels["videos"], files.tables),
    ]
elif spec.kind == "clusters":
    inputs = [files.clusters]
elif spec.kind == "members":
    inputs = [files.members]
else:
    inputs = [files.pairs, by_key(labels["flows"], files.flows)]
if spec.frames:
    inputs.append(by_key(labels["videos"], files.frames))
options = dict(snakemake.params.options)
if spec.summary:
    options["summary_csv"] = snakemake.output.summary
module.render(*inputs, snakemake.output.png, snakemake.output.csv, **options)
