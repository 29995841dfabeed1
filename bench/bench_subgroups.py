"""Subgroup and calibration report: CPU time on NIH's test-split size, next to evaluate's bootstrap.

The test split of the paper protocol (22,356 images of 6,161 patients; real NIH labels, sex, age and
view when ../shared/data/nih14-meta is present, else a simulated set of the same size) with simulated
predictions (cxr_lka.subgroups.simulate_predictions: women's positives 0.3 logits weaker). All on one
core (BLAS limited to one thread), timed round-robin in one run, best of --repeat calls:
  bootstrap_ci             cxr_lka.evaluate's headline bootstrap (all images, 14 classes)
  subgroup_metrics         AUC, underdiagnosis and FNR of 3 attributes (9 subgroups + all images), gaps to the rest
  calibration_metrics      ECE and Brier score with CIs
  write_subgroup_report    all of it: thresholds, subgroups, calibration before and after temperature
                           scaling, the six files and two figures
and, with fewer resamples (--naive-resamples), the subgroup AUCs computed the plain way -- one
weighted_auc per subgroup and per rest, each on its own images -- against the shared arrangement that
subgroup_metrics uses (both without thresholds: AUCs only).
"""
import sys, tempfile, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import *

import numpy as np, pandas as pd

def test_sets(seed=0):
    "(test frame, test probs, valid probs, valid targets, description): real NIH metadata if present, else simulated."
    from cxr_lka.data import LABELS, shared_data_dir, load_nih_metadata, split_nih
    from cxr_lka.subgroups import simulate_predictions, simulate_test_set
    meta = shared_data_dir()/"nih14-meta"/"Data_Entry_2017.csv" if shared_data_dir() else None
    if meta is not None and meta.exists():
        df = split_nih(load_nih_metadata(meta), "paper")
        te, va = (df[df.split == s].reset_index(drop=True) for s in ("test", "valid"))
        what = f"NIH's real metadata ({meta.parent.name}/{meta.name}), paper protocol"
    else:
        te, _, _ = simulate_test_set(6161, seed=seed, max_images=6)
        va, _, _ = simulate_test_set(1800, seed=seed + 1, max_images=6)
        what = "a simulated NIH-like set (no real metadata found)"
    sim = lambda f, s: simulate_predictions(f[LABELS].to_numpy(), f["Patient ID"], (f["Patient Gender"] == "F").to_numpy(), gap=.3, seed=s)
    return te, sim(te, seed), va, sim(va, seed + 1), what

def naive_subgroup_aucs(t, p, parts, patients, n_resamples, seed=0, chunk=50):
    "Subgroup and rest AUCs the plain way: weighted_auc on each group's and each rest's own images, per class and resample block."
    from cxr_lka.evaluate import weighted_auc, patient_resamples
    out = {}
    for s, w in patient_resamples(patients, n_resamples, seed, chunk):
        for q in parts:
            for k in range(len(q.groups)):
                for side, m in (("group", q.codes == k), ("rest", (q.codes >= 0) & (q.codes != k))):
                    if not m.any(): continue
                    wm, tm, pm = w[:, m], t[m], p[m]
                    for c in range(t.shape[1]):
                        if 0 < tm[:, c].sum() < len(tm):
                            out[(q.name, k, side, c, s)] = weighted_auc(tm[:, c], pm[:, c], wm)
    return out

def main():
    p = base_parser(__doc__)
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the full report")
    p.add_argument("--naive-resamples", type=int, default=100, help="resamples of the plain-vs-shared subgroup AUC comparison")
    p.add_argument("--repeat", type=int, default=2, help="timed calls per variant (best is kept)")
    a = p.parse_args()
    from threadpoolctl import threadpool_limits
    threadpool_limits(a.threads or 1)
    warnings.filterwarnings("ignore"); silence_progress()
    import matplotlib; matplotlib.use("Agg")
    from cxr_lka.data import LABELS
    from cxr_lka.evaluate import bootstrap_ci, youden_thresholds
    from cxr_lka.subgroups import subgroup_metrics, make_partitions, Partition
    from cxr_lka.calibration import calibration_metrics, write_subgroup_report
    te, probs, va, vprobs, what = test_sets()
    t, vt = te[LABELS].to_numpy(), va[LABELS].to_numpy()
    pid = te["Patient ID"].to_numpy()
    thr = youden_thresholds(vt, vprobs)
    B, Bn = a.resamples, a.naive_resamples
    tmp = Path(tempfile.mkdtemp())
    parts = [Partition("All", np.zeros(len(t), np.int64), ["all images"])] + make_partitions(te)
    fns = {
        "bootstrap_ci (evaluate: all images, 14 classes)": (B, lambda: bootstrap_ci(t, probs, pid, n_resamples=B)),
        "subgroup_metrics (AUC, underdiagnosis, FNR; 3 attributes)": (B, lambda: subgroup_metrics(te, probs, t, thr, n_resamples=B)),
        "calibration_metrics (ECE, Brier)": (B, lambda: calibration_metrics(t, probs, pid, n_resamples=B)),
        "write_subgroup_report (everything, files and figures)": (B, lambda: write_subgroup_report(tmp, te, probs, t, vprobs, vt, n_resamples=B)),
        "subgroup AUCs, shared arrangement (subgroup_metrics, no thresholds)": (Bn, lambda: subgroup_metrics(te, probs, t, n_resamples=Bn)),
        "subgroup AUCs, plain (weighted_auc per subgroup and per rest)": (Bn, lambda: naive_subgroup_aucs(t, probs, parts, pid, Bn)),
    }
    # the two ways give the same AUCs (checked on 4 resamples before timing)
    from cxr_lka.evaluate import patient_resamples
    from cxr_lka.subgroups import _Engine
    plain = naive_subgroup_aucs(t, probs, parts, pid, 4, chunk=4)
    st = _Engine(parts, t, probs, None).stats(next(patient_resamples(pid, 4, 0, 4))[1])
    names = [q.name for q in parts]
    diff = max(np.nanmax(abs(st[names.index(name)]["auc" if side == "group" else "auc_rest"][:, c, k] - v))
               for (name, k, side, c, s), v in plain.items())
    secs = interleaved({k: f for k, (n, f) in fns.items()}, {k: 1 for k in fns}, warmup=0, repeat=a.repeat, clock=a.clock)
    secs = {k: 1/v for k, v in secs.items()}
    print(header("Subgroup and calibration report: CPU time on NIH's test-split size", a))
    unit = "CPU seconds of this process" if a.clock == "cpu" else "seconds (wall clock)"
    print(f"{len(te):,} test images of {te['Patient ID'].nunique():,} patients ({what}), 14 classes, simulated predictions; "
          f"subgroups: sex (2), age bands (5; {parts[2].n_excluded} impossible ages left out), view (2), plus all images. "
          f"{unit}, one thread, best of {a.repeat} round-robin calls (no warm-up: each call takes seconds).\n")
    full = [k for k in fns if fns[k][0] == B and not k.startswith("subgroup AUCs")]
    print(md_table([{"variant": k, "resamples": B, "seconds": secs[k], "× bootstrap_ci": secs[k]/secs[full[0]]} for k in full]))
    sh, pl = (k for k in fns if k.startswith("subgroup AUCs"))
    print(f"\nSubgroup AUCs only (no thresholds), {Bn:,} resamples, the same draws:\n")
    print(md_table([{"variant": k, "resamples": Bn, "seconds": secs[k], "× shared": secs[k]/secs[sh]} for k in (sh, pl)]))
    rep = secs[full[3]]
    print(f"\n| result | value | goal |\n|---|---|---|\n"
          f"| whole report, {B:,} resamples | {rep:.1f} s | well under 60 s on one core |\n"
          f"| plain / shared subgroup AUCs (same resamples) | {secs[pl]/secs[sh]:.2g} | > 1 means the shared arrangement is faster |\n"
          f"| largest difference of the two ways' AUCs | {diff:.1e} | 0 up to rounding |")

if __name__ == "__main__": main()
