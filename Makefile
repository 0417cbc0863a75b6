# octo: make help lists the targets.
PY ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
OCTO_DATA ?= $(abspath ../shared/data)
export OCTO_DATA
SWEEP ?= ff_width_threshold
EXP ?= ff_reference
SCALE ?= full
# reproduce-tables: PIECE = comma-separated sweeps (default all), ARGS = Hydra overrides for every sweep
PIECE ?=
ARGS ?=

.PHONY: help install test test-full train run sweep tables bench reproduce-tables clean-runs

help:  ## list targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

install:  ## create .venv and install octo with dev tools and launchers
	python3 -m venv .venv && .venv/bin/pip install -e ".[dev,launchers]"

test:  ## the test suite (CPU, offline, a few minutes)
	$(PY) -m pytest -q -m "not gpu"

test-full:  ## every test, GPU ones included (needs a GPU)
	$(PY) -m pytest -q

train:  ## the main job: a small FF network on MNIST
	$(PY) -m octo.train

run:  ## a named experiment: make run EXP=ff_reference
	$(PY) -m octo.train experiments=$(EXP)

sweep:  ## a sweep as a multirun (skips finished jobs): make sweep SWEEP=ff_width_threshold
	$(PY) -m octo.train -m sweeps=$(SWEEP)

tables:  ## aggregate every sweep under results/runs into results/<sweep>/{runs.csv,table.md,figure.png}
	$(PY) -m octo.analysis.tables --all results/runs

bench:  ## training images/s of FF vs BP on the same MLP (+ device) into results/bench/
	$(PY) -m octo.bench

reproduce-tables:  ## run/resume the OctopusNet study, then tables+figures: [SCALE=smoke] [PIECE=sweep,..] [ARGS="seed=0 ..."]
	$(PY) -m octo.analysis.reproduce run --scale $(SCALE) $(if $(PIECE),--piece $(PIECE)) $(if $(ARGS),-- $(ARGS))

clean-runs:  ## delete run folders (results/runs is git-ignored; tables under results/ stay)
	rm -rf results/runs
