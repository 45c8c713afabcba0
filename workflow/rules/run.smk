# The run's record: its resolved config beside its results (results/<run>/config.yaml).


localrules:
    run_config,


rule run_config:
    output:
        CONFIG_RECORD,
    log:
        f"{LOGS}/run_config.log",
    conda:
        "../../envs/xinc.yaml"
    params:
        config=config,
    script:
        "../scripts/run_config.py"
