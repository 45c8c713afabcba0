"""Rule table_s1: parameters, PSNR (mean ± std) and bits per pixel per architecture."""

from _rule import start

start(snakemake)

from xinc.tables import write_table_s1

write_table_s1(snakemake.input.metrics, snakemake.output.csv)
