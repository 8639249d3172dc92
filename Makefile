# diffrep: the two commands (make book, make test) and the maintainers' targets (zoo, bench, claims-seeds).
# Every target sets up what it needs itself and re-uses what is installed, trained and cached.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export DIFFREP_PROGRESS ?= 1
export PYTHONUNBUFFERED := 1

.PHONY: book test setup system zoo zoo-extras bench claims-seeds rehearse unit execute-quick nbval build-strict browser clean

# make book EDITION=student: the student edition, every solution cut, into _build/html-student (beside _build/html)
EDITION ?= default

book: setup
	$(PY) scripts/run_book.py --profile auto
	$(PY) scripts/build_book.py --edition $(EDITION)
	$(PY) scripts/run_book.py --summary

test: setup unit execute-quick nbval build-strict browser
	@echo "make test: all checks passed"

setup: system $(STAMP)

# Debian/Ubuntu packages: Fashion-MNIST and Chromium for the browser check (skipped when present).
system:
	@if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || [ ! -x /usr/bin/chromium ]; then \
	  echo "setup: installing dataset-fashion-mnist and chromium with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist chromium >/dev/null; \
	fi

# The virtual environment: torch 2.13.0 first where no torch is installed, an existing torch (Colab, GPU hosts) is
# kept. Which build: a wheel pip finds locally (--find-links) first; else, with an NVIDIA GPU, PyPI's (CUDA) build;
# else the CPU build from PyTorch's CPU index (PyPI's Linux torch is the multi-GB CUDA build).
TORCH := torch==2.13.0
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
$(STAMP): pyproject.toml
	@# reuse a torch the system already has (Colab, GPU hosts); otherwise an isolated venv
	@[ -x $(PY) ] || { if python3 -c "import torch" 2>/dev/null; then python3 -m venv --system-site-packages $(VENV); \
	  else python3 -m venv $(VENV); fi; }
	@$(PY) -c "import torch" 2>/dev/null || { \
	  if $(PY) -m pip install -q --dry-run --no-index --no-deps --target "$$(mktemp -d)" $(TORCH) >/dev/null 2>&1; then \
	    echo "setup: installing $(TORCH) from a local wheel"; $(PY) -m pip install -q $(TORCH); \
	  elif command -v nvidia-smi >/dev/null 2>&1; then \
	    echo "setup: installing $(TORCH) (CUDA build, for the GPU)"; $(PY) -m pip install -q $(TORCH); \
	  else \
	    echo "setup: installing $(TORCH) (CPU build, from $(TORCH_CPU_INDEX))"; \
	    $(PY) -m pip install -q $(TORCH) --index-url $(TORCH_CPU_INDEX) --extra-index-url https://pypi.org/simple; \
	  fi; }
	$(PY) -m pip install -q -e ".[pinned,book,test]"
	@rm -f $(VENV)/.installed-*; touch $@

zoo: setup
	DIFFREP_PROGRESS=$${DIFFREP_PROGRESS:-1} $(PY) scripts/zoo.py

# the extras: shipped quick recipes beyond make zoo's time budget (chapter 9's k = 50 and 200, chapter 12's sweep)
zoo-extras: setup
	DIFFREP_PROGRESS=$${DIFFREP_PROGRESS:-1} $(PY) scripts/zoo.py --extras

unit:
	$(PY) -m pytest -q --durations=15 tests

execute-quick:
	$(PY) scripts/run_book.py --profile quick

nbval:
	$(PY) scripts/nbval_book.py

build-strict:
	$(PY) scripts/build_book.py --strict

browser:
	$(PY) scripts/browser_check.py

bench: setup
	$(PY) scripts/bench.py

claims-seeds: setup
	$(PY) scripts/claims_seeds.py --seeds 0 1 2

# every chapter's full-profile code path on the CPU, with miniature training (what a GPU or Colab run takes)
rehearse: setup
	$(PY) scripts/rehearse.py

clean:
	rm -rf _build
