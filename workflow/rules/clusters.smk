# Neuron clusters across seeds (Figs 10, 12-14): per layer, the alive neurons' feature vectors
# of a set of seeds embedded by UMAP and clustered by k-means (with the trust measures:
# silhouettes, agreement with raw-feature clusters, stability under UMAP seeds, and the seed
# mixing of the untrained models); then a few members of each shown cluster with their maps,
# and the trust table.


rule cluster_layer:
    input:
        unpack(cluster_inputs),
    output:
        npz=f"{RESULTS}/clusters/{{ds}}/{{vid}}/f{{f}}/{{arch}}/{{layer}}/seeds_{{seedset}}.npz",
        csv=f"{RESULTS}/clusters/{{ds}}/{{vid}}/f{{f}}/{{arch}}/{{layer}}/seeds_{{seedset}}.csv",
    log:
        f"{LOGS}/clusters/{{ds}}/{{vid}}/f{{f}}/{{arch}}/{{layer}}/seeds_{{seedset}}.log",
    benchmark:
        f"{BENCHMARKS}/clusters/{{ds}}/{{vid}}/f{{f}}/{{arch}}/{{layer}}/seeds_{{seedset}}.tsv"
    wildcard_constraints:
        arch="nerv|ffn|joint",
        layer=r"head|b\d+|l\d+|all",
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, threads: 2000 + 2000 * threads,  # B1 at paper size: ~2 GB a run
        runtime=60,
    params:
        settings=cluster_settings,
        feature=config["clusters"]["feature"],
        mix=lambda wildcards: "arch" if wildcards.arch == "joint" else "seed",
    script:
        "../scripts/cluster_layer.py"


# One job per model set and architecture: every layer's members from one load of the models.
for _arch in ARCHS:
    if not member_layers(_arch):
        continue

    rule:
        name:
            f"cluster_members_{_arch}"
        input:
            unpack(member_inputs(_arch)),
        output:
            npz=expand(
                f"{RESULTS}/clusters/{{{{ds}}}}/{{{{vid}}}}/f{{{{f}}}}/{_arch}/{{layer}}/"
                "seeds_{{seedset}}_members.npz",
                layer=member_layers(_arch),
            ),
            csv=expand(
                f"{RESULTS}/clusters/{{{{ds}}}}/{{{{vid}}}}/f{{{{f}}}}/{_arch}/{{layer}}/"
                "seeds_{{seedset}}_members.csv",
                layer=member_layers(_arch),
            ),
        log:
            f"{LOGS}/clusters/{{ds}}/{{vid}}/f{{f}}/{_arch}/seeds_{{seedset}}_members.log",
        benchmark:
            f"{BENCHMARKS}/clusters/{{ds}}/{{vid}}/f{{f}}/{_arch}/seeds_{{seedset}}_members.tsv"
        conda:
            "../../envs/xinc.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=20,
        params:
            draw={
                key: config["clusters"][key]
                for key in ("shown", "members", "draw", "seed")
            },
            canvas=canvas_params(),
        script:
            "../scripts/cluster_members.py"


rule cluster_table:
    input:
        clusters=TRUST_CLUSTERS,
    output:
        csv=report(
            f"{RESULTS}/tables/clusters.csv",
            caption="../report/clusters.rst",
            category="Tables",
            labels={
                "table": "clusters",
                "content": "seed mixing, silhouettes, agreement and stability per cluster",
            },
        ),
    log:
        f"{LOGS}/tables/clusters.log",
    benchmark:
        f"{BENCHMARKS}/tables/clusters.tsv"
    localrule: True
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/cluster_table.py"
