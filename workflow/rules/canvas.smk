# Canvas: every layer's contribution maps of one model at one frame, streamed into per-frame
# statistics in one job (a full canvas is never written). Params hold only the settings that
# change the numbers; the speed knobs (canvas.chunk, device) are read from the config by the
# scripts, so changing them reruns nothing.


rule canvas_nerv:
    input:
        ckpt=f"{RESULTS}/models/nerv/{{ds}}/{{vid}}/s{{seed}}/ckpt.pt",
        groups=f"{RESULTS}/pixel_groups/nerv/{{ds}}/{{vid}}/f{{f}}.npz",
        meta=work_file("meta.json"),
    output:
        stats=expand(
            f"{RESULTS}/stats/nerv/{{{{ds}}}}/{{{{vid}}}}/s{{{{seed}}}}/f{{{{f}}}}/{{layer}}.npz",
            layer=LAYERS["nerv"],
        ),
    log:
        f"{LOGS}/canvas/nerv/{{ds}}/{{vid}}/s{{seed}}/f{{f}}.log",
    benchmark:
        f"{BENCHMARKS}/canvas/nerv/{{ds}}/{{vid}}/s{{seed}}/f{{f}}.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        layers=LAYERS["nerv"],
        canvas=canvas_params(),
        stats=sample_params(),
    script:
        "../scripts/canvas_stats.py"


rule canvas_ffn:
    input:
        ckpt=f"{RESULTS}/models/ffn/{{ds}}/{{vid}}/f{{f}}/s{{seed}}/ckpt.pt",
        groups=f"{RESULTS}/pixel_groups/ffn/{{ds}}/{{vid}}/f{{f}}.npz",
        meta=work_file("meta.json"),
    output:
        stats=expand(
            f"{RESULTS}/stats/ffn/{{{{ds}}}}/{{{{vid}}}}/s{{{{seed}}}}/f{{{{f}}}}/{{layer}}.npz",
            layer=LAYERS["ffn"],
        ),
    log:
        f"{LOGS}/canvas/ffn/{{ds}}/{{vid}}/s{{seed}}/f{{f}}.log",
    benchmark:
        f"{BENCHMARKS}/canvas/ffn/{{ds}}/{{vid}}/s{{seed}}/f{{f}}.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        layers=LAYERS["ffn"],
        canvas=canvas_params(),
        stats=sample_params(),
    script:
        "../scripts/canvas_stats.py"


rule pair_stats:
    input:
        ckpt=f"{RESULTS}/models/nerv/{{ds}}/{{vid}}/s{{seed}}/ckpt.pt",
        meta=work_file("meta.json"),
    output:
        delta=expand(
            f"{RESULTS}/pair/nerv/{{{{ds}}}}/{{{{vid}}}}/s{{{{seed}}}}/t{{{{t}}}}/{{layer}}.npz",
            layer=PAIR_LAYERS,
        ),
    log:
        f"{LOGS}/pair/nerv/{{ds}}/{{vid}}/s{{seed}}/t{{t}}.log",
    benchmark:
        f"{BENCHMARKS}/pair/nerv/{{ds}}/{{vid}}/s{{seed}}/t{{t}}.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        layers=PAIR_LAYERS,
        canvas=canvas_params(("mode", "bias", "neuron")),
    script:
        "../scripts/pair_stats.py"


# The untrained models (each seed's initialisation, rebuilt from the trained checkpoint's
# settings and seed): their statistics at the clustered frames are the null model of the
# neuron clusters (clusters.null_model).
for _arch in ARCHS:

    rule:
        name:
            f"canvas_{_arch}_untrained"
        input:
            ckpt=lambda wildcards, arch=_arch: model_ckpt(
                arch, wildcards.ds, wildcards.vid, wildcards.seed, wildcards.f
            ),
            groups=f"{RESULTS}/pixel_groups/{_arch}/{{ds}}/{{vid}}/f{{f}}.npz",
            meta=work_file("meta.json"),
        output:
            stats=expand(
                f"{RESULTS}/stats_untrained/{_arch}/{{{{ds}}}}/{{{{vid}}}}/s{{{{seed}}}}/"
                "f{{f}}/{layer}.npz",
                layer=LAYERS[_arch],
            ),
        log:
            f"{LOGS}/canvas/{_arch}_untrained/{{ds}}/{{vid}}/s{{seed}}/f{{f}}.log",
        benchmark:
            f"{BENCHMARKS}/canvas/{_arch}_untrained/{{ds}}/{{vid}}/s{{seed}}/f{{f}}.tsv"
        conda:
            "../../envs/xinc.yaml"
        threads: 2
        resources:
            mem_mb=3000,
            runtime=30,
        params:
            layers=LAYERS[_arch],
            canvas=canvas_params(),
            stats=sample_params(),
            untrained=True,
        script:
            "../scripts/canvas_stats.py"
