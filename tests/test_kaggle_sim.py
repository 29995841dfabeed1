"""A simulated Kaggle: the three kaggle/ notebooks, run by papermill as Kaggle runs them, in Kaggle's folders.

Every notebook runs in its own "session": a fresh temporary folder laid out like /kaggle (`CXR_LKA_KAGGLE_ROOT`
points at it), with an empty `working` (what Kaggle saves as the output) and `temp` (scratch), and under
`input/` -- read-only, as Kaggle mounts it -- a tiny synthetic NIH set (20 patients, 32 px) and the outputs
of the notebooks it reads. The notebooks get NO data_dir, weights or out_dir: they find the data set and the
previous stage's model.pth wherever they are mounted, write to `working` and cache the images in `temp`.
Stage 2 reads stage 1's output and the test reads stage 2's, each through those mounts. One stage is killed
(SIGKILL to papermill and its kernel) as soon as its first epoch's checkpoint exists; a new session, with the
killed output mounted read-only among the inputs and the data set mounted at another path, continues it and
finishes; its first epoch is the killed session's.

Two layouts, each a full chain of four sessions:
- today's: `input/datasets/nih-chest-xrays/data`, notebook outputs at `input/notebooks/<user>/<slug>/`;
  stage 1 killed and continued;
- the older one: `input/data`, notebook outputs at `input/<slug>/`; stage 2 killed and continued (with stage
  1's finished output mounted beside its own unfinished one); run as on Kaggle (`KAGGLE_KERNEL_RUN_TYPE` set)
  with `device='cpu'`, the way to ask for the CPU there.

Checked in every session: the GPU pre-flight ran, the data set was found under `input/`, the inputs are
unchanged afterwards (files, sizes, times), `working` holds only the stage's folder, the cache is in `temp`,
the time estimate was written, and `working_report` printed the output's share of Kaggle's 20 GB. The
cheapest settings that still show all this: 1 epoch (2 for the killed stage), lr given, batch 8, no Grad-CAM,
no subgroup report. Measured on a busy 2-core machine (load 5): 93 s for today's layout, 110 s for the older
one; most of it is starting eight kernels and importing fastai in each.
"""
import json, os, shutil, stat, subprocess, sys, time
from pathlib import Path
import pandas as pd
import pytest
import torch
from conftest import ROOT

psutil = pytest.importorskip("psutil")     # a dependency of accelerate: kills the kernel with papermill
KAGGLE = ROOT/"kaggle"
NOTEBOOKS = {"stage1": "train-stage-1-bceloss", "stage2": "train-stage-2-focalloss", "test": "test-notebook"}
SLUG = {k: f"cxr-lka-{v}" for k, v in NOTEBOOKS.items()}          # the kernels' slugs (kernel-metadata.json)
LAYOUTS = {
    "today": dict(data="datasets/nih-chest-xrays/data", mount=lambda slug: f"notebooks/someone/{slug}", kill="stage1", kaggle_env=False),
    "older": dict(data="data", mount=lambda slug: slug, kill="stage2", kaggle_env=True),
}

def params(key, killed, cpu):
    p = {"stage1": dict(image_size=32, batch_size=8, pretrained=False, lr=2e-3, freeze_epochs=0, epochs=1, num_workers=0),
         "stage2": dict(batch_size=8, lr_max=[1e-4, 1e-3], epochs=1, num_workers=0),
         "test": dict(batch_size=16, gradcam_n=0, subgroups=False, num_workers=0)}[key]
    if killed: p["epochs"] = 2
    if cpu: p["device"] = "cpu"
    return p

def snapshot(folder):
    "Every entry under `folder` with its size and modification time."
    return sorted((str(p.relative_to(folder)), p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*"))

def set_writable(folder, writable):
    for p in [folder, *folder.rglob("*")]:
        mode = p.stat().st_mode
        w = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
        p.chmod(mode | stat.S_IWUSR if writable else mode & ~w)

class Kaggle:
    "Sessions of one layout under `base`: each a Kaggle root with its inputs mounted read-only."
    def __init__(self, base, data, layout):
        self.base, self.data, self.layout, self.roots = base, data, LAYOUTS[layout], []

    def session(self, name, mounts=()):
        "A new root: input/ holds the data set and the outputs `mounts` [(slug, a session's working folder)]; working/ and temp/ empty."
        root = self.base/name
        (root/"working").mkdir(parents=True); (root/"temp").mkdir()
        shutil.copytree(self.data, root/"input"/self.layout["data"])
        for slug, working in mounts: shutil.copytree(working, root/"input"/self.layout["mount"](slug))
        set_writable(root/"input", False)          # as Kaggle mounts it (root ignores the bits: the snapshot below checks)
        self.roots.append(root)
        return root

    def run(self, root, key, kill=False):
        "papermill the notebook `key` in `root` (no data_dir/weights/out_dir); kill: SIGKILL it once its first epoch is saved."
        env = {**os.environ, "CXR_LKA_KAGGLE_ROOT": str(root), "OMP_NUM_THREADS": "1"}
        env.pop("KAGGLE_KERNEL_RUN_TYPE", None)
        if self.layout["kaggle_env"]: env["KAGGLE_KERNEL_RUN_TYPE"] = "Batch"
        p = params(key, killed=self.layout["kill"] == key, cpu=self.layout["kaggle_env"])
        assert not {"data_dir", "weights", "out_dir", "cache_dir"} & set(p)
        dest = root/f"{NOTEBOOKS[key]}.ipynb"        # the executed notebook, beside (not in) the saved output
        cmd = [sys.executable, "-m", "papermill", str(KAGGLE/f"{NOTEBOOKS[key]}.ipynb"), str(dest), "-k", "python3",
               "--cwd", str(root/"working"), "-y", json.dumps(p), "--no-progress-bar"]
        before, t0 = snapshot(root/"input"), time.time()
        if not kill:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=root/"working")
            assert r.returncode == 0, f"{dest.name} failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
        else:
            state = root/"working"/key/"resume.pth"
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=root/"working")
            try:
                while not state.exists():             # written atomically after the first epoch
                    assert proc.poll() is None and time.time() - t0 < 600, "the stage ended before its first checkpoint"
                    time.sleep(0.05)
            finally:
                tree = [proc, *psutil.Process(proc.pid).children(recursive=True)] if proc.poll() is None else []
                for q in tree:
                    try: q.kill()
                    except psutil.NoSuchProcess: pass
                proc.wait()
            s = torch.load(state, map_location="cpu", weights_only=False)
            assert (s["epoch"], s["done"]) == (0, False) and not (root/"working"/key/"model.pth").exists(), (s["epoch"], s["done"])
        assert snapshot(root/"input") == before, "the session wrote into its inputs"
        print(f"  {root.name}: {NOTEBOOKS[key]} {'killed after epoch 0' if kill else 'done'} in {time.time() - t0:.0f}s")
        return output_text(dest) if not kill else None

def output_text(nb):
    "Everything the executed notebook printed."
    import nbformat
    cells = nbformat.read(str(nb), as_version=4).cells
    return "".join(o.get("text", "") for c in cells for o in c.get("outputs", []) if o.get("output_type") == "stream")

def check_session(k, root, key, text):
    "What every session must show: the pre-flight, the data set found under input/, Kaggle's folders used as they should be."
    w = root/"working"
    assert "GPU pre-flight: torch" in text and "device: cpu" in text, text[:2000]
    assert f"data_dir=None: using {root/'input'/k.layout['data']}, the NIH ChestX-ray14 data set under {root/'input'}" in text, text[:3000]
    assert sorted(os.listdir(w)) == [key], os.listdir(w)                     # the results, nothing else (no cache)
    assert any((root/"temp"/"cxr_lka_cache").iterdir()), "the image cache is not in temp/"
    assert f"{w} holds " in text and "of the 20 GB Kaggle saves as output" in text, text[-2000:]
    if key != "test": assert json.loads((w/key/"time_estimate.json").read_text())[0]["images_per_s"] > 0

@pytest.fixture(scope="module")
def nih(tmp_path_factory):
    from cxr_lka.synthetic import make_synthetic_nih
    return make_synthetic_nih(tmp_path_factory.mktemp("nih")/"data", n_patients=20, image_size=32, seed=0)

@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_kaggle_sessions(layout, nih, tmp_path):
    k = Kaggle(tmp_path, nih, layout)
    t0 = time.time()
    print(f"\nsimulated Kaggle, {layout} layout:")
    try: _chain(k)
    finally:
        for r in k.roots: set_writable(r/"input", True)     # so that pytest can remove the folders
    print(f"  {layout} layout: {time.time() - t0:.0f}s")

def _chain(k):
    killed = k.layout["kill"]
    outputs = {}                                             # stage -> the working folder of the session that finished it
    for key in ("stage1", "stage2"):
        mounts = [(SLUG["stage1"], outputs["stage1"])] if key == "stage2" else []
        if key == killed:
            a = k.session(f"{key}-killed", mounts)
            k.run(a, key, kill=True)
            hist_killed = pd.read_csv(a/"working"/key/"history.csv")
            root = k.session(f"{key}-continued", mounts + [(SLUG[key], a/"working")])   # its own unfinished output attached
            text = k.run(root, key)
            mounted = root/"input"/k.layout["mount"](SLUG[key])/key
            assert f"{key}: continuing the unfinished run in {mounted} (1 epochs logged)" in text, text[-4000:]
            assert "resuming from" in text
            h = pd.read_csv(root/"working"/key/"history.csv")
            assert list(h.epoch) == [0, 1] and h.iloc[:1].equals(hist_killed), (h, hist_killed)   # epoch 0 is the killed session's
        else:
            root = k.session(key, mounts)
            text = k.run(root, key)
        check_session(k, root, key, text)
        assert (root/"working"/key/"model.pth").exists()
        if key == "stage2":
            found = root/"input"/k.layout["mount"](SLUG["stage1"])/"stage1"/"model.pth"
            notes = json.loads((root/"working"/"stage2"/"run.json").read_text())["notes"]
            assert any(f"using {found}, the only stage1/model.pth under {root/'input'}" in n for n in notes), notes
        outputs[key] = root/"working"
    root = k.session("test", [(SLUG["stage2"], outputs["stage2"])])
    text = k.run(root, "test")
    check_session(k, root, "test", text)
    found = root/"input"/k.layout["mount"](SLUG["stage2"])/"stage2"/"model.pth"
    assert f"using {found}, the only stage2/model.pth under {root/'input'}" in text, text[-3000:]
    m = json.loads((root/"working"/"test"/"metrics.json").read_text())
    splits = [pd.read_csv(w/s/"split.csv") for w, s in ((outputs["stage1"], "stage1"), (outputs["stage2"], "stage2"), (root/"working", "test"))]
    assert splits[0].equals(splits[1]) and splits[0].equals(splits[2])       # one partition through the whole chain
    assert m["n_test_images"] == int((splits[2]["split"] == "test").sum()) > 0
