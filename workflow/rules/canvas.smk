# Canvas statistics (rules canvas_stats_*, writing results/stats and results/stats_untrained;
# logs and benchmarks under the same folder names): every layer's contribution maps of one model
# at each of its analysed frames, streamed into per-frame statistics in one job per model (a full
# canvas is never written). Params hold only the settings that change the numbers; the speed
# knobs (canvas.chunk, device) are read from the config by the scripts, so changing them reruns
# nothing.


for _arch, _ds in ((arch, ds) for arch in ARCHS for ds in DATASETS):
    for _k, (_frames, _videos) in enumerate(canvas_groups(_arch, _ds).items()):

        rule:
            name:
                f"canvas_stats_{_arch}_{_ds}" + (f"_{_k}" if _k else "")
            input:
                ckpt=canvas_ckpts(_arch, _frames),
                groups=[
                    f"{RESULTS}/pixel_groups/{_arch}/{{ds}}/{{vid}}/f{f}.npz"
                    for f in _frames
                ],
                meta=work_file("meta.json"),
            output:
                stats=[
                    f"{RESULTS}/stats/{_arch}/{{ds}}/{{vid}}/s{{seed}}/f{f}/{layer}.npz"
                    for f in _frames
                    for layer in LAYERS[_arch]
                ],
            log:
                f"{LOGS}/stats/{_arch}/{{ds}}/{{vid}}/s{{seed}}.log",
            benchmark:
                f"{BENCHMARKS}/stats/{_arch}/{{ds}}/{{vid}}/s{{seed}}.tsv"
            wildcard_constraints:
                ds=_ds,
                vid="|".join(re.escape(v) for v in _videos),
            conda:
                "../../envs/xinc.yaml"
            threads: 2
            resources:
                **canvas_resources(_arch, len(_frames)),
            params:
                frames=list(_frames),
                layers=LAYERS[_arch],
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
        **GPU,
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
            f"canvas_stats_{_arch}_untrained"
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
            f"{LOGS}/stats_untrained/{_arch}/{{ds}}/{{vid}}/s{{seed}}/f{{f}}.log",
        benchmark:
            f"{BENCHMARKS}/stats_untrained/{_arch}/{{ds}}/{{vid}}/s{{seed}}/f{{f}}.tsv"
        conda:
            "../../envs/xinc.yaml"
        threads: 2
        resources:
            **canvas_resources(_arch, 1),
        params:
            frames=wildcard_frame,
            layers=LAYERS[_arch],
            canvas=canvas_params(),
            stats=sample_params(),
            untrained=True,
        script:
            "../scripts/canvas_stats.py"
