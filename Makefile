# xinc: `make demo` runs the embedded synthetic workflow end to end; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all

.PHONY: demo test lint report clean slurm-deps browser-deps

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

# tests/test_slurm.py's one-node cluster: Debian's slurm-wlm and munge, where root and apt-get
# are (elsewhere the test skips and says why)
slurm-deps:
	@if [ ! -x /usr/sbin/slurmctld ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null; \
	fi

# the explorer's browser test (tests/test_workflow.py): Debian's chromium, driven by Playwright
# (never `playwright install`), where root and apt-get are (elsewhere the test skips and says why)
browser-deps:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	fi

test: $(STAMP) lint slurm-deps browser-deps
	# one worker per core, each test file on one worker (module fixtures run once)
	$(BIN)/python -m pytest -q -n auto --dist loadfile
	# the torch/numpy fallback a node without a C compiler uses, held to the same tests
	XINC_NATIVE=off $(BIN)/python -m pytest -q tests/test_canvas.py \
		tests/test_stats.py tests/test_stats_tau.py tests/test_stats_precision.py

clean:
	rm -rf data results logs benchmarks .snakemake
