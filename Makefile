# cxr_lka -- the two quick-start commands are `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= outputs/demo
export MPLBACKEND := Agg

.PHONY: install demo test export clean-nbs docs readme bench

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

# All tests: notebook tests (nbdev_test, one pytest case per notebook) + end-to-end tests.
test: install
	$(BIN)/python -m pytest -q tests

export: install
	$(BIN)/nbdev_export

clean-nbs: install
	$(BIN)/nbdev_clean

# Local docs site without Quarto (the GitHub workflow builds the Quarto site).
docs: install
	$(BIN)/python -m cxr_lka.docsite --out _site

# README.md from nbs/index.ipynb (nbdev_readme needs Quarto).
readme: install
	$(BIN)/python -m cxr_lka.docsite --readme

bench: install
	$(BIN)/python bench/run_all.py

# The wheel data set for installing cxr_lka on Kaggle with Internet off (kaggle/README.md):
# upload with `kaggle datasets create -p outputs/kaggle-dataset`.
.PHONY: kaggle-dataset
kaggle-dataset: install
	$(BIN)/python -m cxr_lka.kaggle --out outputs/kaggle-dataset $(KAGGLE_DATASET_ARGS)
