# The canvas explorer (results/<run>/explorer/index.html; docs/formats.md §11): one data job per
# model, like the canvas jobs (a NeRV over its explored frames; the FFNs of one video and seed),
# streams each layer's maps once for every pixel's top-k neurons and keeps a bounded set of maps;
# then the page, its manifest and the cluster scatters (local, seconds).
include: "explorer_plan.smk"


for _arch, _ds in ((arch, ds) for arch in ARCHS for ds in DATASETS):
    for _k, (_frames, _videos) in enumerate(explorer_groups(_arch, _ds).items()):

        rule:
            name:
                f"explorer_data_{_arch}_{_ds}" + (f"_{_k}" if _k else "")
            input:
                ckpt=canvas_ckpts(_arch, _frames),
                stats=[
                    f"{RESULTS}/stats/{_arch}/{{ds}}/{{vid}}/s{{seed}}/f{f}/{layer}.npz"
                    for f in _frames
                    for layer in LAYERS[_arch]
                ],
                groups=[
                    f"{RESULTS}/pixel_groups/{_arch}/{{ds}}/{{vid}}/f{f}.npz"
                    for f in _frames
                ],
                frames=nerv_frames if _arch == "nerv" else work_file("frames_pil.npy"),
                meta=work_file("meta.json"),
                members=explorer_members(_arch),
            output:
                files=explorer_model_files(_arch, _frames),
            log:
                f"{LOGS}/explorer/{_arch}/{{ds}}/{{vid}}/s{{seed}}.log",
            benchmark:
                f"{BENCHMARKS}/explorer/{_arch}/{{ds}}/{{vid}}/s{{seed}}.tsv"
            wildcard_constraints:
                ds=_ds,
                vid="|".join(re.escape(v) for v in _videos),
            conda:
                "../../envs/xinc.yaml"
            threads: 1  # small models: start-up dominates; --set-threads for large CPU runs
            resources:
                **GPU,
                mem_mb=3000 if _arch == "nerv" else 2000,
                runtime=10 + (20 if _arch == "nerv" else 5) * len(_frames),
            params:
                arch=_arch,
                frames=list(_frames),
                layers=LAYERS[_arch],
                canvas=canvas_params(),
                explorer={
                    key: config["explorer"][key] for key in ("top_k", "maps", "grid")
                },
            script:
                "../scripts/explorer_data.py"


rule explorer:
    input:
        models=[
            f"{EXPLORER}/{explorer_layout.model_dir(arch, ds, vid, seed)}/"
            f"{explorer_layout.MODEL_INDEX}"
            for ds in DATASETS
            for vid in VIDEOS[ds]
            for arch in ARCHS
            for seed in SEEDS
        ],
        clusters=[cluster_path(*key) for key in explorer_cluster_keys()],
    output:
        page=EXPLORER_PAGE,
        scatters=[
            f"{EXPLORER}/"
            + explorer_layout.cluster_file(ds, vid, f, arch, layer, seed_set(seeds))
            for ds, vid, f, arch, layer, seeds in explorer_cluster_keys()
        ],
    log:
        f"{LOGS}/explorer/page.log",
    benchmark:
        f"{BENCHMARKS}/explorer/page.tsv"
    localrule: True
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        run=RUN,
    script:
        "../scripts/explorer_page.py"
