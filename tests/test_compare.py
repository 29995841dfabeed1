"""cxr-lka-compare as a real process (`python -m cxr_lka.compare`, what the console script calls): a run
against itself gives Δ = 0 and p = 1, a planted improvement is found, runs on different test images
are refused in one line with exit code 2.

The runs are written by `evaluate.evaluate_predictions` + `evaluate.write_report`, the functions the
test notebook uses, on a small synthetic test set (150 patients, about 540 images).
"""
import sys, json, shutil
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, run

sys.path.insert(0, str(ROOT))
from cxr_lka.data import LABELS

def cli(*args, check=False):
    return run([sys.executable, '-m', 'cxr_lka.compare', *map(str, args)], check=check, timeout=600)

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "Three runs on one test set: A, B (another model of the same quality) and C (better on the first five classes)."
    from cxr_lka.evaluate import evaluate_predictions, write_report
    d = tmp_path_factory.mktemp('runs')
    from cxr_lka.paired import clustered_test_set, clustered_probs
    images, pat, t = clustered_test_set(150, prevalence=(0.08, 0.35), seed=0)
    def probs(signal, seed): return clustered_probs(t, pat, signal, seed)
    better = np.where(np.arange(14) < 5, 2.5, 1.0)
    out = {}
    for name, p in (('A', probs(1.0, 1)), ('B', probs(1.0, 2)), ('C', probs(better, 3))):
        ev = evaluate_predictions(p, t, images, pat, labels=LABELS, protocol='paper', seed=85, n_resamples=20)
        write_report(d/name/'test', ev, dpi=50)
        out[name] = d/name
    return out

def test_run_against_itself(runs, tmp_path):
    p = cli(runs['A'], runs['A'], '--out', tmp_path, '--n_resamples', 200, check=True)
    df = pd.read_csv(tmp_path/'comparison.csv')
    assert df.model.unique().tolist() == ['A (2)'] and len(df) == 15
    assert (df.delta == 0).all() and (df.p == 1).all() and (df.p_holm == 1).all()
    assert (df.ci_lo == 0).all() and (df.ci_hi == 0).all()
    assert 'ΔAUC +0.0000' in p.stdout
    md = (tmp_path/'comparison.md').read_text()
    assert '### A (2) vs A' in md and 'clustered by patient' in md
    assert (tmp_path/'forest_plot.png').stat().st_size > 10_000

def test_planted_difference_three_runs(runs, tmp_path):
    "C, better on five classes, is the reference (--reference by name): A and B are found worse there and in the mean."
    p = cli(runs['A'], runs['B'], runs['C'], '--out', tmp_path, '--reference', 'C', '--n_resamples', 300, '--no-clustered', check=True)
    df = pd.read_csv(tmp_path/'comparison.csv')
    assert df.reference.unique().tolist() == ['C'] and df.model.unique().tolist() == ['A', 'B']
    for m in ('A', 'B'):
        sub = df[df.model == m].set_index('label')
        assert (sub.loc[LABELS[:5], 'p_holm'] < 0.05).all() and (sub.loc[LABELS[:5], 'ci_hi'] < 0).all(), sub.loc[LABELS[:5]]
        assert sub.loc['mean', 'ci_hi'] < 0 and sub.loc['mean', 'p_holm'] < 0.05
        assert (sub.drop('mean').method == 'DeLong, images independent').all()
    assert 'treating images as independent' in (tmp_path/'comparison.md').read_text()
    assert 'A vs C: mean AUC' in p.stdout and 'B vs C: mean AUC' in p.stdout

def test_refuses_different_test_images(runs, tmp_path):
    short = tmp_path/'short'
    shutil.copytree(runs['B']/'test', short)
    df = pd.read_csv(short/'predictions.csv').iloc[7:]
    df.to_csv(short/'predictions.csv', index=False)
    m = json.loads((short/'metrics.json').read_text()); m['n_test_images'] = len(df)
    (short/'metrics.json').write_text(json.dumps(m))
    p = cli(runs['A'], short, '--out', tmp_path/'out')
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('cxr-lka-compare: error: '), p.stderr
    assert 'not scored on the same test set' in err[0] and "7 of A's missing from short" in err[0], err[0]
    assert not (tmp_path/'out'/'comparison.csv').exists()

def test_help():
    p = cli('--help', check=True)
    for w in ('--out', '--reference', '--no-clustered', '--n_resamples', '--seed', '--level', 'runs'):
        assert w in p.stdout, (w, p.stdout)
