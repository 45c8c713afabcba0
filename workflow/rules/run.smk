# The run's record: its resolved config beside its results (results/<run>/config.yaml).


rule run_config:
    output:
        CONFIG_RECORD,
    log:
        f"{LOGS}/run_config.log",
    localrule: True
    conda:
        "../../envs/xinc.yaml"
    params:
        config=RECORDED_CONFIG,
    script:
        "../scripts/run_config.py"
