# cxr_lka -- the two quick-start commands are `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= outputs/demo
export MPLBACKEND := Agg

.PHONY: install demo test export clean-nbs docs readme lab bench

# Create the virtual environment and install cxr_lka (editable) with the tested pins.
$(BIN)/nbdev_export: settings.ini setup.py constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=23" setuptools wheel
	$(BIN)/pip install -q -c constraints.txt torch torchvision
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $@

install: $(BIN)/nbdev_export

# Main job: the whole two-stage pipeline + evaluation + Grad-CAM on the bundled real sample (CPU).
demo: install
	$(BIN)/cxr-lka-demo --out $(OUT)

# All tests: the docs build executes every notebook once (that run is the notebook tests, one pytest case
# per notebook) and the browser checks its site; the end-to-end tests run beside it. Two pytest-xdist
# workers, one test file at a time each (longest first: tests/conftest.py), one torch thread per process so
# that they do not fight over the cores. TEST_JOBS=1 runs them one after the other.
TEST_JOBS ?= 2
test: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder tests

export: install
	$(BIN)/nbdev_export

clean-nbs: install
	$(BIN)/nbdev_clean

# The docs site in _site/ (Sphinx + MyST-NB; notebooks executed once, unchanged ones taken from _proc/cache).
# The deploy workflow publishes exactly this. Preview: $(BIN)/python -m http.server -d _site 8000
docs: install
	$(BIN)/python docs/build.py --out _site

# README.md (+ README_files/) from nbs/index.ipynb, with its executed outputs.
readme: install
	$(BIN)/python docs/build.py --readme

# JupyterLab on the chapter (nbs/) and kaggle/ notebooks, with the project's kernel (this checkout's cxr_lka).
lab: install
	$(BIN)/python -m ipykernel install --sys-prefix --name cxr_lka --display-name "Python 3 (cxr_lka)" --env PYTHONPATH "$(CURDIR)" >/dev/null
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --MappingKernelManager.default_kernel_name=cxr_lka --LabApp.default_url=/lab/tree/nbs

bench: install
	$(BIN)/python bench/run_all.py

# The wheel data set for installing cxr_lka on Kaggle with Internet off (kaggle/README.md):
# upload with `kaggle datasets create -p outputs/kaggle-dataset`.
.PHONY: kaggle-dataset
kaggle-dataset: install
	$(BIN)/python -m cxr_lka.kaggle --out outputs/kaggle-dataset $(KAGGLE_DATASET_ARGS)
