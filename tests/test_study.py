"""cxr-lka-study end to end, as processes (`python -m cxr_lka.study`, what the console script calls): a study
of three configurations (the paper's LKA after stages 3-5 as the reference, SE after 3-5, no attention)
run through the three kaggle/ notebooks and reported, once by the local executor (two configurations at
once, each with its share of the cores) and once as a job array through submitit's local executor (the
SLURM path). Each configuration is as cheap as the pipeline allows: 30 synthetic patients, 32-px images,
one epoch per stage at a given learning rate (no lr_find), no frozen epochs, no Grad-CAM, 200 bootstrap
resamples. The unit tests (validation, the report on fake runs, Kaggle kernels) are in nbs/17a..17d.
"""
import json, sys, time
from pathlib import Path
import pandas as pd
import pytest
from conftest import run

STUDY = """name: tiny
grid:
  attention: [lka, se, none]
params:
  data_dir: {data}
  image_size: 32
  batch_size: 16
  pretrained: false
  use_cache: false
  num_workers: 0
  stage1.lr: 0.002
  stage1.freeze_epochs: 0
  stage1.epochs: 1
  stage1.lr_find_iters: 5
  stage2.epochs: 1
  test.gradcam_n: 0
compare:
  n_resamples: 200
"""
NAMES = ["vgg16_bn_lka_3-4-5", "vgg16_bn_se_3-4-5", "vgg16_bn_none"]

def study(*args, check=True, timeout=900):
    return run([sys.executable, "-m", "cxr_lka.study", *map(str, args)], check=check, timeout=timeout)

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from cxr_lka.synthetic import make_synthetic_nih
    return make_synthetic_nih(tmp_path_factory.mktemp("syn")/"data", n_patients=30, image_size=32, seed=0)

def _study_file(path, data, extra=""):
    path.write_text(STUDY.format(data=data) + extra)
    return path

def _check_report(out):
    "Every configuration finished, compared with the reference; the report's files are there."
    t = pd.read_csv(out/"study.csv").set_index("name")
    assert t.index.tolist() == NAMES and (t.state == "done").all(), t[["state", "stages_done"]]
    assert t.is_reference.tolist() == [True, False, False] and (t.reference == NAMES[0]).all()
    assert t.loc[NAMES[1:], ["delta", "delta_lo", "delta_hi", "p", "p_holm"]].notna().all().all(), t
    assert t.mean_auc.between(0, 1).all() and (t.GFLOPs > 0).all() and t.train_min.notna().all()
    for f in ["study.md", "study_heatmap.png", "study_forest.png", f"comparison/{NAMES[0]}/comparison.md"]:
        assert (out/f).is_file(), f
    md = (out/"study.md").read_text()
    assert "3 of 3 configurations finished" in md and "(reference)" in md
    for n in NAMES:
        st = json.loads((out/n/"status.json").read_text())
        assert st["state"] == "done" and (out/n/"test"/"predictions.csv").is_file(), st
    return t

def test_local_executor_two_at_once_resumes(data, tmp_path):
    "run (two configurations at once) + report; a second run skips everything; a configuration whose test stage was lost reruns that notebook only."
    f, out = _study_file(tmp_path/"tiny.yaml", data), tmp_path/"study"
    t0 = time.time()
    p = study("run", f, "--out", out, "--workers", 2)
    secs = time.time() - t0
    assert "3 to run" in p.stdout and p.stdout.count("finished in") == 3 and "report:" in p.stdout, p.stdout
    assert p.stdout.count("started on the CPU (") == 3, p.stdout
    _check_report(out)
    assert "CUDA_VISIBLE_DEVICES=''" in (out/NAMES[1]/"log.txt").read_text()
    # finished configurations are skipped
    p = study("run", f, "--out", out)
    assert "3 finished (skipped), 0 to run" in p.stdout, p.stdout
    # an interrupted configuration continues from its last finished stage: only the test notebook runs again
    d = out/NAMES[2]
    before = (d/"stage2"/"model.pth").stat().st_mtime_ns
    (d/"test"/"metrics.json").unlink()
    p = study("run", f, "--out", out)
    assert "1 to run (1 continue: vgg16_bn_none)" in p.stdout, p.stdout
    st = json.loads((d/"status.json").read_text())
    assert st["ran"] == ["test"] and (d/"stage2"/"model.pth").stat().st_mtime_ns == before, st
    _check_report(out)
    print(f"\nlocal executor, 3 configurations, 2 at once: {secs:.0f}s")

def test_slurm_executor_through_submitit_local(data, tmp_path):
    "The slurm path: one submitit job per configuration as a job array, run by submitit's local executor; then the report."
    pytest.importorskip("submitit")
    f = _study_file(tmp_path/"tiny.yaml", data, "executor: {type: slurm}\nslurm: {cluster: local, gpus_per_node: 0, cpus_per_task: 1, timeout_min: 30, poll_s: 2}\n")
    out = tmp_path/"study"
    t0 = time.time()
    p = study("run", f, "--out", out)
    assert "submitted 3 job(s) to local" in p.stdout and p.stdout.count("finished, mean test AUC") == 3, p.stdout
    jobs = json.loads((out/"submitit"/"jobs.json").read_text())
    assert sorted(jobs) == sorted(NAMES) and len(set(jobs.values())) == 3
    _check_report(out)
    print(f"\nsubmitit local executor, 3 configurations at once: {time.time() - t0:.0f}s")

def test_bad_study_fails_before_anything_runs(data, tmp_path):
    "A mistyped parameter: exit 2, one line naming it and the grid point, no study folder."
    f = _study_file(tmp_path/"bad.yaml", data, "configurations:\n  - {attention: cbam, stage2.epoch: 3}\n")
    p = study("run", f, "--out", tmp_path/"study", check=False)
    assert p.returncode == 2 and p.stderr.startswith("cxr-lka-study: error: ") and len(p.stderr.splitlines()) == 1, p.stderr
    assert "configurations[0]" in p.stderr and "['epoch']" in p.stderr, p.stderr
    assert not (tmp_path/"study").exists()
