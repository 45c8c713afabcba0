"""Rule instance_table: the segments of one video over its analysed frames (stable track
ids, category, thing/stuff, area per frame), from the per-frame statistics."""

from _rule import start

start(snakemake)

from xinc.instances import video_instance_table, write_instance_table

write_instance_table(
    snakemake.output.table,
    video_instance_table(snakemake.input.stats, snakemake.input.meta),
)
