"""End-to-end: the three kaggle/ notebooks run headless (papermill) and LEARN; both recipes; the demo job; parameter checks.

The synthetic task (`cxr_lka.synthetic`: 14 drawn lesion patterns on chest-like noise) is sized so that
VGG16-BN + LKA from random weights reaches a mean test AUC >= 0.80 after both stages on 2 CPU cores with
the default recipe ('paper', the authors' optimisation): 150 patients (about 380 images), 32-px images,
stage 1 fine_tune(3, 6), stage 2 four epochs. The other recipe ('fastai') runs end to end on the
smallest set that still has a frozen phase (a random "pretrained" body file), on the original's leaky
partition ('paper-original'), one epoch per phase. The model the first test trains is then scored on a synthetic
CheXpert folder (its shared findings drawn as NIH's) on the seven labels the two share: external validation, in this
process (a few seconds).
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
    "Both stages + evaluation through the papermill notebooks, recipe 'paper': mean test AUC >= 0.80 on every test image; run.json shows the authors' optimisation."
    from cxr_lka.pipeline import run_notebooks
    out = tmp_path/"run"
    t0 = time.time()
    run_notebooks(out, synthetic, image_size=32, batch_size=32, pretrained=False, use_cache=True, num_workers=0,
                  stage1=dict(lr=6e-3, freeze_epochs=3, epochs=6), stage2=dict(epochs=4, lr_max=[1e-4, 1e-3]),
                  test=dict(gradcam_n=4))
    secs = time.time() - t0
    for f in ["train-stage-1-bceloss.ipynb", "train-stage-2-focalloss.ipynb", "test-notebook.ipynb",
              "stage1/model.pth", "stage1/history.csv", "stage1/split.csv", "stage2/model.pth", "stage2/history.csv",
              "test/metrics.json", "test/per_class.csv", "test/predictions.csv", "test/roc_curves.png", "test/gradcam.png",
              "test/subgroups.csv", "test/subgroups.md", "test/subgroups_forest.png", "test/calibration.png"]:   # subgroups=True by default
        assert (out/f).exists(), f
    m = json.loads((out/"test"/"metrics.json").read_text())
    assert set(m["subgroups"]["mean_auc"]) >= {"All", "Patient Gender"} and m["calibration"]["mean_ece"] is not None, m.get("subgroups")
    assert all(type(g["n_classes"]) is int for a in m["subgroups"]["mean_auc"].values() for g in a.values()), m["subgroups"]["mean_auc"]
    split = pd.read_csv(out/"stage1"/"split.csv")
    n_test = int((split["split"] == "test").sum())
    assert m["n_test_images"] == n_test == len(pd.read_csv(out/"test"/"predictions.csv"))
    # the same partition in every stage (fault 1 of the original notebooks)
    assert split.equals(pd.read_csv(out/"stage2"/"split.csv")) and split.equals(pd.read_csv(out/"test"/"split.csv"))
    h1, h2 = pd.read_csv(out/"stage1"/"history.csv"), pd.read_csv(out/"stage2"/"history.csv")
    assert list(h1.phase[:3]) == ["freeze_epochs"]*3 and set(h1.phase[3:]) == {"epochs"} and 1 <= len(h2) <= 4
    # recipe 'paper': one parameter group training every parameter in every phase, at lr, lr/2, then lr_max's upper end
    r1, r2 = (json.loads((out/s/"run.json").read_text()) for s in ("stage1", "stage2"))
    assert r1["recipe"] == r2["recipe"] == "paper" and r1["n_params"] == r2["n_params"] == 15_418_702
    for p in r1["phases"] + r2["phases"]:
        assert len(p["groups"]) == 1 and p["trainable_params"] == p["groups"][0]["n_params"] == r1["n_params"], p
    got = [(p["name"], p["groups"][0]["lr"], p["groups"][0]["wd"]) for p in r1["phases"] + r2["phases"]]
    assert [g[0] for g in got] == ["freeze_epochs", "epochs", "epochs"], got
    assert [g[1:] for g in got] == [pytest.approx((6e-3, 1e-3)), pytest.approx((3e-3, 1e-3)), pytest.approx((1e-3, 1e-2))], got
    assert [c["min_delta"] for c in r1["callbacks"]] == [1e-4, 1e-3] and r1["callbacks"][1]["patience"] == 5
    print(f"\nsynthetic pipeline: mean test AUC {m['mean_auc']:.3f} on {n_test} test images, {secs:.0f}s")
    assert m["mean_auc"] >= 0.80, f"mean test AUC {m['mean_auc']:.3f} < 0.80 (per class: {m['per_class_auc']})"
    # across data sets: the NIH-trained model scored on CheXpert-layout data (its shared findings drawn as NIH's), in this process
    from cxr_lka.synthetic_chexpert import make_synthetic_chexpert
    from cxr_lka.pipeline import evaluate_run
    from cxr_lka.train import TrainConfig
    chx = make_synthetic_chexpert(tmp_path/"chx", n_patients=60, image_size=32, seed=1, valid_frac=0.4)
    evaluate_run(TrainConfig.test(data_dir=str(chx), dataset="chexpert", protocol="official", frontal_only=True, out_dir=str(tmp_path/"x"),
                                  weights=str(out/"stage2"/"model.pth"), batch_size=32, num_workers=0, gradcam_n=0, subgroups=False))
    x = json.loads((tmp_path/"x"/"test"/"metrics.json").read_text())
    assert (x["cross_dataset"]["shared"]["Effusion"], len(x["labels"]), x["dataset"]) == ("Pleural Effusion", 7, "chexpert"), x
    print(f"NIH-trained, scored on synthetic CheXpert (7 shared labels, {x['n_test_images']} frontal images): mean AUC {x['mean_auc']:.3f}")
    assert x["mean_auc"] >= 0.65, f"across data sets: mean AUC {x['mean_auc']:.3f} < 0.65 (per class: {x['per_class_auc']})"

def _fake_body(path):
    "A torchvision-format VGG16-BN body with random weights (no network here): `pretrained` as a file, so 'fastai' has a frozen phase."
    import torch, torchvision
    sd = {k: v for k, v in torchvision.models.get_model("vgg16_bn", weights=None).state_dict().items() if not k.startswith("classifier.")}
    torch.save(sd, path)
    return str(path)

def test_fastai_recipe_on_paper_original_end_to_end(tmp_path, capsys):
    "Recipe 'fastai' through the three notebooks (1 epoch per phase) on the original's leaky partition: the frozen phase trains fewer parameters than the model has; the leak is printed before training and stated in every output; stage 2 and the test notebook, told no image size, train and score at stage 1's."
    from cxr_lka.synthetic import make_synthetic_nih
    from cxr_lka.pipeline import run_notebooks
    data = make_synthetic_nih(tmp_path/"data", n_patients=40, image_size=32, seed=0)
    out = tmp_path/"run"
    t0 = time.time()
    run_notebooks(out, data, batch_size=8, use_cache=True, num_workers=0, recipe="fastai",
                  protocol="paper-original", pretrained=_fake_body(tmp_path/"body.pth"),
                  stage1=dict(image_size=32, lr=1e-3, freeze_epochs=1, epochs=1), stage2=dict(epochs=1), test=dict(gradcam_n=0))
    # the image size is stage 1's everywhere, read from the weights (the notebooks' default would be 224)
    assert [json.loads((out/s/"config.json").read_text())["image_size"] for s in ("stage1", "stage2", "test")] == [32, 32, 32]
    assert sorted(p.name for p in (out/"cache").iterdir()) == ["32px"]
    printed = capsys.readouterr().out
    assert "Leaky by design (protocol 'paper-original'" in printed
    assert printed.index("Leaky by design") < printed.index("running train-stage-1-bceloss.ipynb")    # before anything trains
    r1, r2 = (json.loads((out/s/"run.json").read_text()) for s in ("stage1", "stage2"))
    assert r1["recipe"] == r2["recipe"] == "fastai"
    frozen, unfrozen = r1["phases"]
    assert (frozen["name"], unfrozen["name"], len(frozen["groups"]), len(r2["phases"][0]["groups"])) == ("frozen", "unfrozen", 2, 2)
    assert frozen["trainable_params"] < r1["n_params"] == unfrozen["trainable_params"] == 15_418_702, r1["phases"]
    assert [g["lr"] for g in r2["phases"][0]["groups"]] == pytest.approx([2e-5, 8e-5]) and r2["wd"] == pytest.approx(1e-3)
    assert [c["min_delta"] for c in r1["callbacks"]] == [0.0, 0.0]
    # the leak, in every output of the run
    assert r1["leaky"] and r1["leak"]["statement"].startswith("Leaky by design") and r2["leak"] == r1["leak"]
    assert "split_stage1" in pd.read_csv(out/"stage1"/"split.csv")
    assert r1["leak"]["test_images_in_stage1"] > 0            # (14 of 25 test images on this set)
    n_seen = r1["leak"]["test_images_in_stage1"]              # stage 2 starts from weights whose stage 1 saw them: said, not refused
    assert any(n.startswith(f"leaky by design: {n_seen} of this run's") for n in r2["notes"]), r2["notes"]
    m = json.loads((out/"test"/"metrics.json").read_text())
    assert m["protocol"] == "paper-original" and m["leaky"] and m["leak"]["statement"] == r1["leak"]["statement"]
    assert f"**{r1['leak']['statement']}" in (out/"test"/"results.md").read_text()
    assert m["n_test_images"] == int((pd.read_csv(out/"test"/"split.csv")["split"] == "test").sum())
    print(f"\nfastai recipe on paper-original: {time.time() - t0:.0f}s")

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

WHEEL_SRC = ["setup.py", "settings.ini", "README.md", "MANIFEST.in", "LICENSE", "NOTICE", "CONTRIBUTING.md", "cxr_lka", "kaggle", "sample"]

def test_demo_from_the_wheel_outside_a_clone(tmp_path):
    "The main job from an installed wheel: built from this tree, installed into a clean target, cxr-lka-demo run from a temporary folder (no clone above it) leaves the executed notebooks, checkpoints, metrics and figures."
    import shutil
    src, dist, target, cwd = (tmp_path/n for n in ("src", "dist", "target", "elsewhere"))
    src.mkdir(); cwd.mkdir()
    for f in WHEEL_SRC:    # a copy: building in place would leave build/ and *.egg-info in the tree
        (shutil.copytree(ROOT/f, src/f, ignore=shutil.ignore_patterns("__pycache__", "_bundle")) if (ROOT/f).is_dir() else shutil.copy2(ROOT/f, src/f))
    run([PY, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dist), str(src)], timeout=600)
    run([PY, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), *map(str, dist.glob("*.whl"))], timeout=600)
    env = {"PYTHONPATH": str(target)}
    p = run([PY, "-c", "import cxr_lka.pipeline as p; print(p.__file__); print(p.kaggle_dir())"], cwd=cwd, env=env, timeout=300)
    mod, nbs = p.stdout.split()[-2:]
    assert Path(mod).is_relative_to(target) and Path(nbs) == target/"cxr_lka"/"_bundle"/"kaggle", p.stdout
    assert (target/"cxr_lka"/"_bundle"/"sample"/"nih14-sample"/"Data_Entry_2017.csv").is_file()
    out = cwd/"demo"
    t0 = time.time()
    p = run([str(target/"bin"/"cxr-lka-demo"), "--out", "demo"], cwd=cwd, env=env, timeout=1500)
    for f in ["train-stage-1-bceloss.ipynb", "train-stage-2-focalloss.ipynb", "test-notebook.ipynb",
              "stage1/model.pth", "stage1/lr_find.png", "stage2/model.pth", "test/metrics.json",
              "test/roc_curves.png", "test/gradcam.png"]:
        assert (out/f).exists(), f
    m = json.loads((out/"test"/"metrics.json").read_text())
    split = pd.read_csv(out/"test"/"split.csv")
    assert m["n_test_images"] == int((split["split"] == "test").sum()) > 0
    assert "mean NOTHING" in p.stdout and "Kaggle" in p.stdout
    assert str(target/"cxr_lka"/"_bundle"/"sample"/"nih14-sample") in json.loads((out/"stage1"/"config.json").read_text())["data_dir"]
    print(f"\ndemo from the wheel: {time.time() - t0:.0f}s")

def _stage1_cmd(data, out, epochs=3):
    code = ("import torch; torch.set_num_threads(1)\n"
            "from cxr_lka.train import TrainConfig, train_stage1\n"
            f"train_stage1(TrainConfig.stage1(data_dir={str(data)!r}, out_dir={str(out)!r}, image_size=32, batch_size=8,"
            f" pretrained=False, lr=2e-3, freeze_epochs=0, epochs={epochs}, use_cache=False, num_workers=0))")
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

# Every value the test notebook's parameters document (kaggle/README.md), through the notebook at least once:
# the other tests run it with the defaults, gradcam_n=0, 'paper-original', weights=None; these runs take the rest.
TEST_NOTEBOOK_RUNS = [
    dict(arch="resnet50", attention=None, stages=[], protocol="official", tta=True, use_cache=False, subgroups=False, gradcam_n=2,
         max_images=40, num_workers=0),
    dict(arch="densenet121", attention="cbam", stages=[4], protocol="paper-images", tta=False, use_cache=True, subgroups=True,
         gradcam_n=0, batch_size=16),
    dict(arch="vgg16_bn", attention="se", stages=[5], protocol="paper", tta=True, use_cache=True, subgroups=True, gradcam_n=1,
         valid_pct=0.25, seed=0),
]

def test_test_notebook_runs_every_documented_value(tmp_path):
    """The test notebook (papermill) with every documented non-default value, on a stage-2 checkpoint made in-process
    (random weights, 32 px, 20 synthetic patients): tta=True no longer fails on models/best.pth (issue 14 item 10);
    subgroups=False writes no subgroup files, True writes them; each run evaluates every test image of its split."""
    import torch
    from cxr_lka.synthetic import make_synthetic_nih
    from cxr_lka.models import build_model, save_checkpoint
    from cxr_lka.pipeline import run_notebooks
    data = make_synthetic_nih(tmp_path/"data", n_patients=20, image_size=32, seed=0)
    t0 = time.time()
    for i, p in enumerate(TEST_NOTEBOOK_RUNS):
        torch.manual_seed(i)
        w = save_checkpoint(build_model(p["arch"], p["attention"], p["stages"] or None, image_size=32), tmp_path/f"w{i}.pth")
        out = tmp_path/f"run{i}"
        run_notebooks(out, data, only=["test"], image_size=32, weights=str(w), **{k: v for k, v in p.items() if k != "stages"},
                      test=dict(stages=p["stages"] or [5]))
        m = json.loads((out/"test"/"metrics.json").read_text())
        split = pd.read_csv(out/"test"/"split.csv")
        assert m["n_test_images"] == int((split["split"] == "test").sum()) == len(pd.read_csv(out/"test"/"predictions.csv")) > 0
        assert (m["tta"], m["protocol"]) == (p["tta"], p["protocol"]), m
        assert (out/"test"/"gradcam.png").exists() == bool(p["gradcam_n"])
        for f in ("subgroups.csv", "subgroups.md", "subgroups_forest.png", "calibration.png"):
            assert (out/"test"/f).exists() == p["subgroups"], (i, f)
        assert ("subgroups" in m) == ("calibration" in m) == p["subgroups"], list(m)
    print(f"\ntest notebook, {len(TEST_NOTEBOOK_RUNS)} runs: {time.time() - t0:.0f}s")
