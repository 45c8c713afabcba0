# Training: one NeRV per (dataset, video, seed), one FFN per (dataset, video, frame, seed);
# the FFNs of a video train together as one batched model.
# With config pretrained.<arch> set, the models are imported instead of trained.


if config["pretrained"]["nerv"]:

    rule import_nerv:
        input:
            src=pretrained("nerv"),
            frames=nerv_frames,
            meta=work_file("meta.json"),
        output:
            ckpt=f"{RESULTS}/models/nerv/{{ds}}/{{vid}}/s{{seed}}/ckpt.pt",
            metrics=f"{RESULTS}/models/nerv/{{ds}}/{{vid}}/s{{seed}}/metrics.json",
        log:
            f"{LOGS}/train/nerv/{{ds}}/{{vid}}/s{{seed}}.log",
        benchmark:
            f"{BENCHMARKS}/train/nerv/{{ds}}/{{vid}}/s{{seed}}.tsv"
        conda:
            "../../envs/xinc.yaml"
        threads: 1
        resources:
            **GPU,
            mem_mb=4000,
            runtime=20,
        params:
            model=config["models"]["nerv"],
        script:
            "../scripts/import_model.py"

else:

    rule train_nerv:
        input:
            frames=nerv_frames,
            meta=work_file("meta.json"),
        output:
            ckpt=f"{RESULTS}/models/nerv/{{ds}}/{{vid}}/s{{seed}}/ckpt.pt",
            metrics=f"{RESULTS}/models/nerv/{{ds}}/{{vid}}/s{{seed}}/metrics.json",
        log:
            f"{LOGS}/train/nerv/{{ds}}/{{vid}}/s{{seed}}.log",
        benchmark:
            f"{BENCHMARKS}/train/nerv/{{ds}}/{{vid}}/s{{seed}}.tsv"
        conda:
            "../../envs/xinc.yaml"
        threads: 1
        resources:
            **GPU,
            mem_mb=4000,
            runtime=240,
        params:
            model=config["models"]["nerv"],
            train=config["train"]["nerv"],
        script:
            "../scripts/train_nerv.py"


if config["pretrained"]["ffn"]:

    rule import_ffn:
        input:
            src=pretrained("ffn"),
            frames=work_file("frames_pil.npy"),
            meta=work_file("meta.json"),
        output:
            ckpt=f"{RESULTS}/models/ffn/{{ds}}/{{vid}}/f{{f}}/s{{seed}}/ckpt.pt",
            metrics=f"{RESULTS}/models/ffn/{{ds}}/{{vid}}/f{{f}}/s{{seed}}/metrics.json",
        log:
            f"{LOGS}/train/ffn/{{ds}}/{{vid}}/f{{f}}/s{{seed}}.log",
        benchmark:
            f"{BENCHMARKS}/train/ffn/{{ds}}/{{vid}}/f{{f}}/s{{seed}}.tsv"
        conda:
            "../../envs/xinc.yaml"
        threads: 1
        resources:
            **GPU,
            mem_mb=2000,
            runtime=20,
        params:
            model=config["models"]["ffn"],
        script:
            "../scripts/import_model.py"

else:
    # all FFNs of one video (FFN frames x seeds) train as one batched job
    for ds in DATASETS:
        for _k, (_frames, _videos) in enumerate(ffn_groups(ds).items()):

            rule:
                name:
                    f"train_ffn_{ds}" + (f"_{_k}" if _k else "")
                input:
                    frames=work_path(ds, "{vid}", "frames_pil.npy"),
                    meta=work_path(ds, "{vid}", "meta.json"),
                output:
                    ckpts=ffn_batch_outputs(ds, _frames, "ckpt.pt"),
                    metrics=ffn_batch_outputs(ds, _frames, "metrics.json"),
                log:
                    f"{LOGS}/train/ffn/{ds}/{{vid}}.log",
                benchmark:
                    f"{BENCHMARKS}/train/ffn/{ds}/{{vid}}.tsv"
                wildcard_constraints:
                    vid="|".join(re.escape(v) for v in _videos),
                conda:
                    "../../envs/xinc.yaml"
                threads: 1
                resources:
                    **GPU,
                    mem_mb=2000,
                    runtime=120,
                params:
                    frames=list(_frames),
                    seeds=SEEDS,
                    model=config["models"]["ffn"],
                    train=config["train"]["ffn"],
                script:
                    "../scripts/train_ffn.py"
