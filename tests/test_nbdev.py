"""nbdev discipline: notebooks are clean, `nbdev_export` leaves the tree unchanged.

Each notebook's tests run in tests/test_docs.py (`test_notebook[...]`): the docs build executes every notebook once,
skipping the cells `nbdev_test` skips, and that one execution serves both the tests and the docs page."""
import json, shutil, filecmp
from pathlib import Path
import pytest
from conftest import ROOT, BIN, run

NBS = sorted(p for p in (ROOT/"nbs").glob("*.ipynb") if not p.name.startswith("_"))

def test_there_are_notebooks():
    assert len(NBS) >= 8, [p.name for p in NBS]

def test_export_leaves_tree_unchanged(tmp_path):
    "nbdev_export on a copy of the sources reproduces the committed module byte for byte."
    for f in ["settings.ini", "setup.py"]: shutil.copy(ROOT/f, tmp_path/f)
    shutil.copytree(ROOT/"nbs", tmp_path/"nbs")
    shutil.copytree(ROOT/"cxr_lka", tmp_path/"cxr_lka", ignore=shutil.ignore_patterns("__pycache__"))
    run([str(BIN/"nbdev_export")], cwd=tmp_path)
    committed = sorted(p.relative_to(ROOT) for p in (ROOT/"cxr_lka").rglob("*.py"))
    exported = sorted(p.relative_to(tmp_path) for p in (tmp_path/"cxr_lka").rglob("*.py"))
    assert committed == exported
    changed = [str(p) for p in committed if not filecmp.cmp(ROOT/p, tmp_path/p, shallow=False)]
    assert not changed, f"nbdev_export changes {changed}: run nbdev_export and commit"

@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_notebook_is_clean(nb, tmp_path):
    "nbdev_clean would not change the committed notebook (no outputs, no execution counts, no stray metadata)."
    c = tmp_path/nb.name
    shutil.copy(nb, c)
    run([str(BIN/"nbdev_clean"), "--fname", str(c)], cwd=ROOT)
    assert json.loads(c.read_text()) == json.loads(nb.read_text()), f"{nb.name} is not clean: run nbdev_clean"
