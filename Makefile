# emergence: `make reproduce` (SCALE=cpu: the MLP claims in <= 60 min on 2 cores; SCALE=cpu-full: the whole CPU
# evidence set; SCALE=paper: the paper protocol on GPUs; JOBS=2 parallel runs on CPU), `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SCALE ?= cpu
JOBS ?= 2
DATA ?= $(or $(EMERGENCE_DATA),data)
RUNS ?= $(or $(EMERGENCE_RUNS),runs)
export EMERGENCE_DATA := $(DATA)
export EMERGENCE_RUNS := $(RUNS)
export PY JOBS

.PHONY: help install system-data chromium data test test-full lint reproduce reproduce-smoke aggregate report bench gpu-check clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

install: $(VENV)/.installed  ## create .venv with the exact versions of requirements.lock (once)

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

system-data: install  ## install the offline Debian data packages when missing (needs root and apt-get)
	@pkgs="$$($(PY) scripts/prepare_data.py --missing-packages --datasets fashion_mnist)"; \
	if [ -z "$$pkgs" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs; \
	else echo "[data] offline packages missing: sudo apt-get install $$pkgs"; fi

chromium:  ## install Debian's chromium for the report's browser test when missing (needs root and apt-get)
	@if command -v chromium >/dev/null || [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "[chromium] missing: sudo apt-get install chromium (tests/test_report_browser.py is skipped without it)"; fi

data: install system-data  ## datasets into $(DATA): torchvision when online, Debian packages offline
	$(PY) scripts/prepare_data.py --root $(DATA) --datasets fashion_mnist $(if $(filter paper,$(SCALE)),mnist cifar10 cifar100,) --required fashion_mnist
	test -f $(DATA)/ding_de_en/meta.json || $(PY) scripts/prepare_ding.py --src de --tgt en --out $(DATA)/ding_de_en
	test -f $(DATA)/gettext_de_en/meta.json || $(PY) scripts/prepare_gettext.py --out $(DATA)/gettext_de_en \
	  || echo "[data] no gettext De-En corpus: the cpu-full translation cells will not run (see README Translation)"

test: install system-data chromium  ## the fast test suite (CPU, no downloads)
	$(PY) -m pytest -m "not slow and not gpu" -q

test-full: install system-data chromium  ## every test, including the slow end-to-end ones
	$(PY) -m pytest -q

lint: install  ## ruff
	$(VENV)/bin/ruff check emergence scripts tests

reproduce: install data  ## run the profile SCALE=cpu|cpu-full|paper (JOBS at once), then tables, plots, verdicts in results/
	@case "$(SCALE)" in cpu|cpu-full|paper) ;; *) echo "SCALE must be cpu, cpu-full or paper; got '$(SCALE)'"; exit 2;; esac
	SCALE=$(SCALE) bash experiments/run_all.sh
	$(MAKE) --no-print-directory aggregate
	$(MAKE) --no-print-directory report

reproduce-smoke: install data  ## the cpu-full chain in minutes (debug=smoke, 1 seed, one architecture per family)
	SCALE=cpu-full SMOKE=1 EMERGENCE_RUNS=$(RUNS)/smoke RESULTS=$(RUNS)/smoke/results bash experiments/run_all.sh
	$(PY) scripts/aggregate.py --runs $(RUNS)/smoke --out $(RUNS)/smoke/results
	$(PY) scripts/plot.py --runs $(RUNS)/smoke --out $(RUNS)/smoke/results
	$(PY) scripts/report.py --runs $(RUNS)/smoke --out $(RUNS)/smoke/results

aggregate:  ## tables and plots from the run dirs
	$(PY) scripts/aggregate.py --runs $(RUNS) --out results
	$(PY) scripts/plot.py --runs $(RUNS) --out results
	@echo "tables: results/summary.md"

report:  ## verdict per paper claim (conf/claims.yaml) and one self-contained page: results/verdict.md, report.html
	$(PY) scripts/report.py --runs $(RUNS) --out results
	@echo "verdicts: results/verdict.md; report: results/report.html"

bench: install  ## every benchmark at full size -> results/bench.md (OFFICIAL=<clone of zhuchen03/gradinit> adds that row)
	$(PY) -m scripts.bench.all --out results/bench.md $(if $(OFFICIAL),--official $(OFFICIAL),)

gpu-check: install  ## the prepared check for a CUDA machine -> results/gpu_check/ (ARGS="--device cpu --smoke" on a CPU)
	$(PY) -m scripts.bench.gpu_check $(ARGS)

clean:  ## remove run outputs (keeps data and .venv)
	rm -rf $(RUNS) outputs multirun
