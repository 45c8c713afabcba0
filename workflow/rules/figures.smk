# Figures: pure plotting from statistics, tables and flow files (seconds; no model is touched).
# One rule and target per figure of xinc.figure_plan.FIGURES, drawn by xinc.plots.<module>;
# each rule's params hold only the settings that figure uses.


for _name in SELECTIONS:

    rule:
        name:
            _name
        input:
            unpack(figure_inputs(_name)),
        output:
            **figure_outputs(_name),
        log:
            f"{LOGS}/figures/{_name}.log",
        benchmark:
            f"{BENCHMARKS}/figures/{_name}.tsv"
        localrule: True
        conda:
            "../../envs/xinc.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            **figure_params(_name),
        script:
            "../scripts/figure.py"
