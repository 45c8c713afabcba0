"""Benchmarks of xinc's own code against plain baselines (`xinc bench ...`).

`xinc.bench.train`: training speed — `train_nerv` against a textbook PyTorch loop (seconds per
epoch), and FFNs trained one by one against `train_ffn_batch` (models per minute).
`xinc.bench.canvas`: one frame's contribution maps — the authors' straightforward algorithm
against our dense maps and the streamed statistics (seconds and peak memory per layer).
`xinc.bench.clusters`: one layer's UMAP + k-means at paper size, ours against umap-learn's
defaults (seconds and peak memory per layer).

This module imports nothing heavy, so `xinc --help` can list the choices below without torch.
"""

NERV_LAYERS = ("head", "b3", "b2", "b1")
FFN_LAYERS = ("all", "l1", "l2", "l3")  # "all": maps of the whole frame; stats per layer
CLUSTER_LAYERS = ("head", "b3", "b2", "b1", "l1", "l2", "l3")  # `xinc bench clusters`
CASES = ("naive", "dense", "reuse", "alloc", "exact", "stats", "job")  # `xinc bench canvas`
