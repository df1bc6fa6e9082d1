# Set-up and the two everyday commands: `make demo` (the main job) and `make test`.
# Each creates its own virtual environment on first use.

VENV ?= .venv
PYTHON ?= python3
# On a CPU-only machine the CPU wheel must be installed before anything that depends on torch, or pip pulls a
# multi-GB CUDA build. Override for a GPU machine, e.g. `make TORCH_SPEC='torch==2.13.0' ...` from a CUDA index.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python

# Offline data: the LAReQA release folder beside the repository is used when it exists.
SHARED_LAREQA := $(abspath ../shared/datasets/lareqa)
ifneq ($(wildcard $(SHARED_LAREQA)/xquad-r),)
export PYTERRIER_HYBRID_LAREQA_DIR ?= $(SHARED_LAREQA)
endif
# Keep ir_datasets' folders and the rebuilt default model inside the clone unless the caller chose otherwise.
export IR_DATASETS_HOME ?= $(abspath .cache/ir_datasets)
export PYTERRIER_HYBRID_CACHE ?= $(abspath .cache/pyterrier_hybrid)

DEMO_OUT ?= demo-output

.PHONY: install test lint demo clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Lint first (ruff: pyflakes, import order, line length; configured in pyproject.toml), then the tests, one
# pytest-xdist worker per core (tests/conftest.py gives each worker its share of the cores' threads; worksteal: a
# worker that runs out of tests takes some of those queued for another); -rs: a skipped test says why, on one
# line (see docs/datasets.md).
test: install
	$(PY) -m ruff check .
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -rs -n auto --dist worksteal

lint: install
	$(PY) -m ruff check .

# The main job, small: hybrid and monolingual training on MLQA-R, zero-shot evaluation on XQuAD-R with BM25 and the
# untrained embedded default beside them (about 10 minutes on 2 CPU cores), through the packaged command
# (`pyterrier-hybrid compare --preset demo`). Prints the table and where the plots are.
demo: install
	HF_HUB_OFFLINE=1 $(PY) -m pyterrier_hybrid.cli compare --preset demo --out $(DEMO_OUT)

clean:
	rm -rf $(VENV) .cache $(DEMO_OUT)
