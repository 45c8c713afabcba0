"""Neuron types across seeds and architectures (docs/method.md §9, Figs 10, 12–14).

`points` reads the per-neuron feature vectors of the statistics files (dead neurons dropped),
`embed` runs UMAP and k-means on them, `trust` measures how far the clusters can be trusted
(seed mixing, silhouettes, agreement with raw-feature clusters, stability under UMAP seeds),
`layer` ties these into one layer's cluster file (docs/formats.md §9) and `members` draws
neurons per cluster and computes just their maps from the checkpoint.

Importing this package loads neither UMAP nor torch; the modules that need them do.
"""
