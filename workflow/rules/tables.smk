# Tables: numbers of the supplement computed from the trained models' metrics.


rule table_s1:
    input:
        metrics=all_model_metrics(),
    output:
        csv=report(
            f"{RESULTS}/tables/table_s1.csv",
            caption="../report/table_s1.rst",
            category="Tables",
            labels={
                "table": "S1",
                "content": "parameters, PSNR and bpp per architecture",
            },
        ),
    log:
        f"{LOGS}/tables/table_s1.log",
    conda:
        "../../envs/xinc.yaml"
    script:
        "../scripts/table_s1.py"
