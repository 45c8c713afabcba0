# Figures: pure plotting from the per-frame statistics (seconds; no model is touched).


rule fig03:
    input:
        stats=figure_stats,
    output:
        png=report(
            f"{RESULTS}/figures/fig03.png",
            caption="../report/fig03.rst",
            category="Figures",
            labels={"figure": "Fig 3", "content": "sample contribution maps"},
        ),
        csv=f"{RESULTS}/figures/fig03.csv",
    log:
        f"{LOGS}/figures/fig03.log",
    conda:
        "../../envs/xinc.yaml"
    params:
        panels=figure_panels(),
        neurons=config["figures"]["fig03_neurons"],
    script:
        "../scripts/fig03.py"


rule fig04:
    input:
        stats=figure_stats,
    output:
        png=report(
            f"{RESULTS}/figures/fig04.png",
            caption="../report/fig04.rst",
            category="Figures",
            labels={"figure": "Fig 4", "content": "grouping variance"},
        ),
        csv=f"{RESULTS}/figures/fig04.csv",
    log:
        f"{LOGS}/figures/fig04.log",
    conda:
        "../../envs/xinc.yaml"
    params:
        panels=figure_panels(),
        grid=config["figures"]["fig04_grid"],
    script:
        "../scripts/fig04.py"


rule fig06:
    input:
        stats=figure_stats,
    output:
        png=report(
            f"{RESULTS}/figures/fig06.png",
            caption="../report/fig06.rst",
            category="Figures",
            labels={"figure": "Fig 6", "content": "pixels per neuron"},
        ),
        csv=f"{RESULTS}/figures/fig06.csv",
        summary=f"{RESULTS}/figures/fig06_summary.csv",
    log:
        f"{LOGS}/figures/fig06.log",
    conda:
        "../../envs/xinc.yaml"
    params:
        panels=figure_panels(),
    script:
        "../scripts/fig06.py"
