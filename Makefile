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

.PHONY: help install test test-full train run sweep tables bench reproduce-tables clean-runs gpu-prepare gpu-checks \
	gpu-plan gpu-next gpu-land

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
	$(PY) -m octo.analysis.octopus.reproduce run --scale $(SCALE) $(if $(PIECE),--piece $(PIECE)) $(if $(ARGS),-- $(ARGS))

gpu-prepare: .whl  ## before a lent-GPU call: wheels the GPU image lacks (.whl/) and the data (.gpu_data/), both carried
	mkdir -p .gpu_data && cp -r $(OCTO_DATA)/mnist .gpu_data/ && cp $(OCTO_DATA)/cifar10-jpeg-q75.tar.xz .gpu_data/

# The GPU queue (docs/reproduce.md). gpu-next runs the next pending pieces on the GPU machine within BUDGET_S and packs
# them into OUT; DRY=1 runs the same command lines on this CPU with tiny overrides, in an environment like the GPU
# image (octo from the tree, hydra-core/omegaconf from the carried wheels, no wandb). ONLY="P0a P1" picks pieces.
BUDGET_S ?= 540
OUT ?= $(CURDIR)/results/runs/_gpu_out
GPU_PY = PYTHONPATH=$(CURDIR)/.site:$(CURDIR)$(if $(DRY),:$(CURDIR)/octo/gpu/image_site) $(PY)
# Both folders are built under a temporary name and renamed when complete: make takes an existing folder as done, so
# a build that fails half-way must not leave one. Nothing here needs the git metadata (CI's clone may have none).
GPU_WHEELS = "hydra-core>=1.3,<1.4" "omegaconf>=2.3,<2.4" "antlr4-python3-runtime==4.9.3" tabulate
.site: .whl
	rm -rf .site.part && $(PY) -m pip install -q --no-index --no-deps --no-cache-dir --target .site.part .whl/*.whl && mv .site.part .site
.whl:
	rm -rf .whl.part && $(PY) -m pip wheel -q --no-deps -w .whl.part $(GPU_WHEELS) && mv .whl.part .whl

gpu-plan:  ## the GPU queue: ordered pieces, estimates, done/pending from the committed runs.csv files
	$(PY) -m octo.gpu plan --write

gpu-next: .site  ## run the next pending GPU pieces: OUT=dir [BUDGET_S=540] [DRY=1] [ONLY="P0a P1.1"] [K=4]
	$(GPU_PY) -m octo.gpu next --out $(OUT) --budget-s $(BUDGET_S) $(if $(DRY),--dry) $(if $(ONLY),--only $(ONLY)) $(if $(K),-k $(K)) $(if $(RUNS),--runs $(RUNS))

gpu-land:  ## merge a GPU archive into results/ (FILE=...; default every archive in ../shared/gpu-results/)
	$(PY) -m octo.gpu land $(FILE)

# The first prepared call, from before the queue existed; gpu-next P0 measures the same and more.
gpu-checks:  ## on the GPU machine (~10 min): reference FF, benches, FF-standard 10 ep, A21b 30 ep -> $(OUT)/gpu_results.tgz
	-timeout 200 $(PY) -m octo.bench --device cuda --reference-run --recipes octopus_ff_standard octopus_sff bp_cnn_cifar10 --recipe-args trainer=gpu --note "make gpu-checks (bf16)"
	-timeout 150 $(PY) -m octo.train -m experiments=octopus_ff_standard trainer=gpu trainer.max_epochs=10 sweep_name=octopus_ff_standard_10ep
	-timeout 220 $(PY) -m octo.train -m experiments=octopus_a21b trainer=gpu
	tar czf $(OUT)/gpu_results.tgz --exclude='*.ckpt' results/bench results/runs

clean-runs:  ## delete run folders (results/runs is git-ignored; tables under results/ stay)
	rm -rf results/runs
