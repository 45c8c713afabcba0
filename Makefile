# xinc: `make demo` runs the embedded synthetic workflow end to end; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all

.PHONY: demo test lint report clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores $(CORES) --report results/demo/report.html

report: $(STAMP)
	$(BIN)/snakemake --report results/demo/report.html

lint: $(STAMP)
	$(BIN)/ruff check xinc workflow/scripts tests
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf data results logs benchmarks .snakemake
