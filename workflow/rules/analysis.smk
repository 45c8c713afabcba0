# Analyses: pixel groupings of each analysed frame (instances, RGB and Gabor k-means, grid
# cells), shared by every grouping statistic of the canvas jobs.


rule pixel_groups:
    input:
        frames=frames_for,
        panoptic=work_file("panoptic.npy"),
        meta=work_file("meta.json"),
    output:
        groups=f"{RESULTS}/pixel_groups/{{arch}}/{{ds}}/{{vid}}/f{{f}}.npz",
    log:
        f"{LOGS}/pixel_groups/{{arch}}/{{ds}}/{{vid}}/f{{f}}.log",
    conda:
        "../../envs/xinc.yaml"
    params:
        stats=config["stats"],
    script:
        "../scripts/pixel_groups.py"
