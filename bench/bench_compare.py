"""Paired model comparison (cxr_lka.delong, cxr_lka.paired, cxr_lka.compare) at NIH's size, on one core.

A full comparison of two models on the official test list's size (25,596 images of 2,797 patients,
14 classes): the patient-clustered DeLong test of every class and 1,000 paired patient-bootstrap
resamples for the mean AUC (`compare_runs`), with its parts; the bootstrap's fast kernel against the
same resamples through `evaluate.weighted_auc`; and the fast DeLong (Sun & Xu 2014, O(N log N))
against the plain O(n^2) structural-components formula on subsamples, where both run (their
variances are checked equal). The labels and patients are the real official test list's when
../shared/data/nih14-meta is there (else synthetic with the same sizes), the scores are synthetic
(a class signal, a per-patient effect and image noise). numpy/torch use one thread; all variants
are timed round-robin in one run.
"""
import os
for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"): os.environ.setdefault(v, "1")   # before numpy
import sys, time, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import *

import numpy as np
import pandas as pd

def nih_test_set(seed=0):
    "(targets [N, 14], patients [N], description): the official test list's labels and patients, or a synthetic stand-in."
    from cxr_lka.data import shared_data_dir, load_nih_metadata, split_nih, LABELS
    meta = shared_data_dir()/"nih14-meta" if shared_data_dir() else None
    if meta and (meta/"Data_Entry_2017.csv").exists() and (meta/"test_list.txt").exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = split_nih(load_nih_metadata(meta/"Data_Entry_2017.csv"), protocol="official", lists_dir=meta)
        t = df[df.split == "test"]
        return t[LABELS].to_numpy(int), t["Patient ID"].to_numpy(), "the real official test list's labels and patients"
    g = np.random.default_rng(seed)
    sizes = np.diff(np.r_[0, np.sort(g.choice(np.arange(1, 25596), 2796, replace=False)), 25596])
    pat = np.repeat(np.arange(2797), sizes)
    prev = np.array([.11, .04, .02, .16, .05, .02, .02, .06, .02, .05, .04, .03, .05, .003])
    t = (np.repeat(g.random((2797, 14)) < prev, sizes, axis=0)).astype(int)
    return t, pat, "synthetic labels and patients of the official test list's sizes (no ../shared/data/nih14-meta)"

def naive_delong_var(y, sa, sb):
    "Var(AUC_b - AUC_a) by DeLong's structural components written plainly: the m x n kernel, then np.cov. O(mn)."
    def psi(s):
        x, z = s[y == 1][:, None], s[y == 0][None, :]
        return (x > z) + 0.5*(x == z)
    Pa, Pb = psi(sa), psi(sb)
    S10 = np.cov(np.stack([Pa.mean(1), Pb.mean(1)]))
    S01 = np.cov(np.stack([Pa.mean(0), Pb.mean(0)]))
    c = np.array([-1., 1.])
    return c @ (S10/Pa.shape[0] + S01/Pa.shape[1]) @ c

def main():
    p = base_parser(__doc__)
    p.add_argument("--n-resamples", type=int, default=1000, help="paired bootstrap resamples")
    p.add_argument("--repeat", type=int, default=2, help="timed calls per variant (best is kept)")
    p.add_argument("--naive-n", type=int, nargs="+", default=[1000, 2000, 4000, 8000], help="subsample sizes for the O(n^2) formula")
    a = p.parse_args()
    import torch
    torch.set_num_threads(a.threads or 1)
    warnings.filterwarnings("ignore"); silence_progress()
    from cxr_lka.data import LABELS
    from cxr_lka.evaluate import patient_resamples, weighted_auc
    from cxr_lka.delong import delong_test
    from cxr_lka.paired import bootstrap_aucs, clustered_probs
    from cxr_lka.runs import Run
    from cxr_lka.compare import compare_runs
    t, pat, what = nih_test_set()
    pa, pb = clustered_probs(t, pat, seed=1), clustered_probs(t, pat, seed=2)   # class signal + per-(patient, class) effect + image noise
    N, n_pat, B = len(t), len(np.unique(pat)), a.n_resamples
    images = np.array([f"{i:08d}.png" for i in range(N)])
    def run(name, pr):
        preds = pd.concat([pd.DataFrame({"image": images, "patient": pat.astype(str)}), pd.DataFrame(pr, columns=LABELS),
                           pd.DataFrame(t, columns=["true_" + l for l in LABELS])], axis=1)
        return Run(name, Path(name), dict(labels=list(LABELS), protocol="official", seed=85, n_test_images=N), preds)
    ra, rb = run("A", pa), run("B", pb)
    first = np.unique(pd.factorize(pat)[0], return_index=True)[1]

    def boot_weighted_auc():
        "The same paired resamples with evaluate.weighted_auc (one sort per class, model and block)."
        out = np.empty((2, B, 14))
        for s, w in patient_resamples(pat, B, 0, 50):
            for k, pr in enumerate((pa, pb)):
                for c in range(14): out[k, s:s + len(w), c] = weighted_auc(t[:, c], pr[:, c], w)
        return out
    fns = {
        "full comparison: compare_runs (checks, clustered DeLong x 14, paired bootstrap)": lambda: compare_runs([ra, rb], n_resamples=B),
        "clustered DeLong, 14 classes": lambda: [delong_test(t[:, c], pa[:, c], pb[:, c], clusters=pat) for c in range(14)],
        "unclustered DeLong, 14 classes": lambda: [delong_test(t[:, c], pa[:, c], pb[:, c]) for c in range(14)],
        f"paired bootstrap, {B:,} resamples x 2 models (bootstrap_aucs)": lambda: bootstrap_aucs(t, np.stack([pa, pb]), pat, B),
        f"the same resamples through evaluate.weighted_auc": boot_weighted_auc,
    }
    fast, slow = bootstrap_aucs(t, np.stack([pa, pb]), pat, B), boot_weighted_auc()
    err = np.nanmax(np.abs(fast - slow))
    assert err < 1e-12 and np.array_equal(np.isnan(fast), np.isnan(slow)), err
    tick = CLOCKS[a.clock]
    best = {k: float("inf") for k in fns}
    for _ in range(a.repeat):
        for k, f in fns.items():
            t0 = tick(); f(); best[k] = min(best[k], tick() - t0)
    unit = "CPU-seconds of this process" if a.clock == "cpu" else "seconds (wall clock)"
    print(header("Paired model comparison at NIH's size (cpu)", a))
    print(f"{N:,} test images of {n_pat:,} patients, 14 classes ({what}); two models with synthetic scores. "
          f"Best of {a.repeat} round-robin calls; {unit}, numpy/torch with {torch.get_num_threads()} thread(s).\n")
    full = best[next(iter(fns))]
    print(md_table([{"step": k, "s": v, "× full comparison": v/full} for k, v in best.items()]))
    ks = list(fns)
    print(f"\nThe bootstrap's kernel (patient counts folded into one sparse product per class) gives `weighted_auc`'s AUCs "
          f"(largest difference {err:.1e}) {best[ks[4]]/best[ks[3]]:.3g}× faster. Goal: a full comparison in seconds, "
          f"not minutes: {full:.3g} s.\n")

    # fast vs naive DeLong on subsamples of the most balanced class
    c = int(np.argmin(np.abs(t.mean(0) - 0.5)))
    g = np.random.default_rng(0)
    rows = []
    for n in a.naive_n:
        if n > N: continue
        idx = np.sort(g.choice(N, n, replace=False))
        y, sa, sb = t[idx, c], pa[idx, c], pb[idx, c]
        v_fast = delong_test(y, sa, sb)["se"]**2
        v_naive = naive_delong_var(y, sa, sb)
        assert abs(v_fast - v_naive) < 1e-10*max(1, v_naive), (n, v_fast, v_naive)
        tt = {"fast": float("inf"), "naive": float("inf")}
        for _ in range(a.repeat):
            for k, f in (("fast", lambda: delong_test(y, sa, sb)), ("naive", lambda: naive_delong_var(y, sa, sb))):
                t0 = tick(); f(); tt[k] = min(tt[k], tick() - t0)
        rows.append({"images": f"{n:,}", "positives": f"{int(y.sum()):,}", "fast DeLong s": tt["fast"], "O(n²) formula s": tt["naive"],
                     "naive / fast": tt["naive"]/tt["fast"]})
    tf = float("inf")
    for _ in range(a.repeat):
        t0 = tick(); delong_test(t[:, c], pa[:, c], pb[:, c]); tf = min(tf, tick() - t0)
    if rows:
        n0 = int(rows[-1]["images"].replace(",", ""))
        extrap = rows[-1]["O(n²) formula s"]*(N/n0)**2
        rows.append({"images": f"{N:,} (all)", "positives": f"{int(t[:, c].sum()):,}", "fast DeLong s": tf,
                     "O(n²) formula s": f"≈ {extrap:.3g} (extrapolated as n²)", "naive / fast": f"≈ {extrap/tf:.3g}"})
    print(f"#### Fast DeLong vs the O(n²) formula ({LABELS[c]}, two models, unclustered variance)\n")
    print(f"Random subsamples of the test images; the two variances agree to 1e-10 at every size (checked). {unit}.\n")
    print(md_table(rows))

if __name__ == "__main__": main()
