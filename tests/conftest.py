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

@pytest.fixture(scope="session")
def root(): return ROOT

@pytest.fixture(scope="session")
def shared_data():
    "../shared/data when present (real NIH metadata and images), else None."
    p = Path(os.environ.get("CXR_LKA_SHARED_DATA", ROOT.parent/"shared"/"data"))
    return p if p.exists() else None
