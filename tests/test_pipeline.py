"""End-to-end: the three kaggle/ notebooks run headless (papermill) and LEARN; the demo job; parameter checks.

The synthetic task (`cxr_lka.synthetic`: 14 drawn lesion patterns on chest-like noise) is sized so that
VGG16-BN + LKA from random weights reaches a mean test AUC >= 0.80 after both stages on 2 CPU cores:
150 patients (about 380 images), 32-px images, stage 1 six epochs, stage 2 four epochs.
"""
import json, sys, time
from pathlib import Path
import pandas as pd
import pytest
from conftest import ROOT, BIN, run, script

PY = str(BIN/"python")

def _script(name, func, *args):
    "The installed console script (cxr-lka-demo / cxr-lka-pipeline) with its arguments."
    return [script(name), *args]

@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from cxr_lka.synthetic import make_synthetic_nih
    return make_synthetic_nih(tmp_path_factory.mktemp("syn")/"data", n_patients=150, image_size=32, seed=0)

def test_pipeline_learns_synthetic(synthetic, tmp_path):
    "Both stages + evaluation through the papermill notebooks: mean test AUC >= 0.80, on every test image."
    from cxr_lka.pipeline import run_notebooks
    out = tmp_path/"run"
    t0 = time.time()
    run_notebooks(out, synthetic, image_size=32, batch_size=32, pretrained=False, use_cache=True, num_workers=0,
                  stage1=dict(lr=6e-3, freeze_epochs=3, epochs=6), stage2=dict(epochs=4, lr_max=[1e-3, 3e-3]),
                  test=dict(gradcam_n=4))
    secs = time.time() - t0
    for f in ["train-stage-1-bceloss.ipynb", "train-stage-2-focalloss.ipynb", "test-notebook.ipynb",
              "stage1/model.pth", "stage1/history.csv", "stage1/split.csv", "stage2/model.pth", "stage2/history.csv",
              "test/metrics.json", "test/per_class.csv", "test/predictions.csv", "test/roc_curves.png", "test/gradcam.png"]:
        assert (out/f).exists(), f
    m = json.loads((out/"test"/"metrics.json").read_text())
    split = pd.read_csv(out/"stage1"/"split.csv")
    n_test = int((split["split"] == "test").sum())
    assert m["n_test_images"] == n_test == len(pd.read_csv(out/"test"/"predictions.csv"))
    # the same partition in every stage (fault 1 of the original notebooks)
    assert split.equals(pd.read_csv(out/"stage2"/"split.csv")) and split.equals(pd.read_csv(out/"test"/"split.csv"))
    h1, h2 = pd.read_csv(out/"stage1"/"history.csv"), pd.read_csv(out/"stage2"/"history.csv")
    assert list(h1.phase) == ["unfrozen"]*6 and len(h2) == 4       # pretrained=False: no frozen phase
    print(f"\nsynthetic pipeline: mean test AUC {m['mean_auc']:.3f} on {n_test} test images, {secs:.0f}s")
    assert m["mean_auc"] >= 0.80, f"mean test AUC {m['mean_auc']:.3f} < 0.80 (per class: {m['per_class_auc']})"

def test_unknown_parameter_fails_before_running(tmp_path):
    "A mistyped papermill parameter stops the pipeline at once, naming it; nothing runs."
    out = tmp_path/"run"
    p = run(_script("cxr-lka-pipeline", "pipeline_cli", str(out), "--data_dir", str(ROOT/"sample"/"nih14-sample"),
                    "--p", "image_size=32", "stage1.epoch=1"), check=False, timeout=300)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "['epoch']" in p.stderr and "epochs" in p.stderr, p.stderr
    assert not (out/"train-stage-1-bceloss.ipynb").exists() and not (out/"stage1").exists()
    p = run(_script("cxr-lka-pipeline", "pipeline_cli", str(out), "--p", "imagesize=32"), check=False, timeout=300)
    assert p.returncode == 2 and "imagesize" in p.stderr, p.stderr

SAMPLE = ROOT/"sample"/"nih14-sample"

@pytest.mark.parametrize("args,want", [
    (["--data_dir", "{tmp}/nope"], "nope does not exist"),
    (["--data_dir", "{tmp}"], "lacks Data_Entry_2017.csv"),
    (["--data_dir", str(SAMPLE), "--p", "image_size=big", "epochs=1", "--only", "stage1"], "image_size='big'"),
    (["--data_dir", str(SAMPLE), "--p", "protocol=oficial", "--only", "stage1"], "Unknown protocol 'oficial'"),
    (["--data_dir", str(SAMPLE), "--only", "test", "--p", "image_size=32"], "test starts from the stage2 weights"),
])
def test_bad_values_fail_before_running(args, want, tmp_path):
    "A bad value, data folder or missing weights: exit 2, one line on stderr (no FutureWarning), no notebook started."
    out = tmp_path/"run"
    p = run(_script("cxr-lka-pipeline", "pipeline_cli", str(out), *[a.format(tmp=tmp_path) for a in args]), check=False, timeout=300)
    assert p.returncode == 2, p.stdout + p.stderr
    assert len(p.stderr.splitlines()) == 1 and p.stderr.startswith("cxr-lka-pipeline: error: ") and want in p.stderr, p.stderr
    assert not out.exists() and "running" not in p.stdout

def test_help_is_quiet():
    "--help of both pipeline commands: usage on stdout, nothing on stderr (the torch.jit FutureWarning is filtered)."
    for name in ("cxr-lka-pipeline", "cxr-lka-demo"):
        p = run([script(name), "--help"], timeout=300)
        assert p.stdout.startswith("usage:") and p.stderr == "", (name, p.stderr)

def test_demo_leaves_its_files(tmp_path):
    "The main job on the bundled 123 real images: executed notebooks, checkpoints, metrics, figures."
    out = tmp_path/"demo"
    t0 = time.time()
    p = run(_script("cxr-lka-demo", "demo_cli", "--out", str(out)), timeout=1500)
    for f in ["train-stage-1-bceloss.ipynb", "train-stage-2-focalloss.ipynb", "test-notebook.ipynb",
              "stage1/model.pth", "stage1/lr_find.png", "stage2/model.pth", "test/metrics.json",
              "test/roc_curves.png", "test/gradcam.png"]:
        assert (out/f).exists(), f
    m = json.loads((out/"test"/"metrics.json").read_text())
    split = pd.read_csv(out/"test"/"split.csv")
    assert m["n_test_images"] == int((split["split"] == "test").sum()) > 0
    assert "mean NOTHING" in p.stdout and "Kaggle" in p.stdout
    print(f"\ndemo: {time.time() - t0:.0f}s")

def _stage1_cmd(data, out, epochs=3):
    code = ("import torch; torch.set_num_threads(1)\n"
            "from cxr_lka.train import TrainConfig, train_stage1\n"
            f"train_stage1(TrainConfig.stage1(data_dir={str(data)!r}, out_dir={str(out)!r}, image_size=32, batch_size=8,"
            f" pretrained=False, lr=2e-3, epochs={epochs}, use_cache=False, num_workers=0))")
    return [PY, "-c", code]

def test_killed_process_resumes_to_the_same_result(tmp_path):
    "A training process killed (SIGKILL) mid-epoch resumes from its last saved epoch and ends exactly like an uninterrupted run."
    import subprocess, torch
    from cxr_lka.synthetic import make_synthetic_nih
    data = make_synthetic_nih(tmp_path/"syn", n_patients=24, image_size=32, seed=0)
    run(_stage1_cmd(data, tmp_path/"ref"), timeout=900)
    out = tmp_path/"killed"; state = out/"stage1"/"resume.pth"
    p = subprocess.Popen(_stage1_cmd(data, out), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        while time.time() - t0 < 600:                 # wait for the checkpoint of epoch 0 (written atomically)
            if state.exists():
                try: s = torch.load(state, map_location="cpu", weights_only=False); break
                except Exception: pass               # renamed in between: read again
            assert p.poll() is None, "training ended before the checkpoint was seen"
            time.sleep(0.2)
        assert p.poll() is None, "training finished before it could be interrupted"
        p.kill(); p.wait()
    finally:
        if p.poll() is None: p.kill(); p.wait()
    assert s["epoch"] == 0 and not s["done"]
    assert not (out/"stage1"/"model.pth").exists()
    r = run(_stage1_cmd(data, out), timeout=900)
    assert "resuming from" in r.stdout
    ref, res = torch.load(tmp_path/"ref"/"stage1"/"model.pth", weights_only=True), torch.load(out/"stage1"/"model.pth", weights_only=True)
    assert all(torch.equal(v, res["model"][k]) for k, v in ref["model"].items())
    h_ref = pd.read_csv(tmp_path/"ref"/"stage1"/"history.csv").drop(columns="seconds")
    h_res = pd.read_csv(out/"stage1"/"history.csv").drop(columns="seconds")
    assert h_ref.equals(h_res), (h_ref, h_res)
