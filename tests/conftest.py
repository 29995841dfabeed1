"Shared fixtures for the end-to-end tests (the unit tests live in the notebooks)."
import os, sys, shutil, subprocess
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
os.environ.setdefault("MPLBACKEND", "Agg")

def run(cmd, cwd=ROOT, timeout=1800, env=None, check=True):
    "Run a command, return CompletedProcess; on failure show its output in the assertion."
    e = {**os.environ, **(env or {})}
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=e)
    if check: assert p.returncode == 0, f"{cmd} failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-6000:]}"
    return p

def script(name):
    "The installed console script `name` (settings.ini console_scripts; `make install` puts them in the venv)."
    exe = BIN/name
    assert exe.exists(), f"{exe} is missing: run `make install` (pip install -e .) to install the console scripts"
    return str(exe)

# The files in the order `make test` hands them to its pytest-xdist workers (one file per worker at a time):
# the longest first, so that the two workers finish together. Files not named run after these, in name order.
LONGEST_FIRST = ["test_docs", "test_study", "test_pipeline", "test_cli", "test_kaggle_sim", "test_datasets",
                 "test_reliability", "test_distributed", "test_oddities", "test_compare", "test_kaggle", "test_nbdev"]

def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda it: rank.get(Path(str(it.fspath)).stem, len(rank)))   # stable: a file's tests keep their order

@pytest.fixture(scope="session")
def root(): return ROOT

@pytest.fixture(scope="session")
def shared_data():
    "../shared/data when present (real NIH metadata and images), else None."
    p = Path(os.environ.get("CXR_LKA_SHARED_DATA", ROOT.parent/"shared"/"data"))
    return p if p.exists() else None
