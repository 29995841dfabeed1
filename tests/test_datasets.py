"""End-to-end on CheXpert's layout with `dataset='chexpert'` under each uncertainty policy.

The data is a synthetic CheXpert folder (`cxr_lka.synthetic_chexpert`: train.csv with uncertain, blank and 0 entries and
lateral views, valid.csv without uncertainty; 24 patients, 32-px JPEGs), the model random VGG16-BN + LKA trained one epoch:
these runs show that every policy trains and evaluates, not that anything is learned. U-Ones goes through the three
kaggle/ notebooks (papermill), given no data_dir: the notebooks find the CheXpert folder under the (simulated) Kaggle
input root by its record. U-Zeros and U-Ignore (U-Ignore with frontal views only and the paper protocol's test split,
which holds uncertain entries) go through the stage-1 and test notebooks, the test scoring stage 1's weights. The
scoring of an NIH-trained model on the labels NIH and CheXpert share is in tests/test_pipeline.py, on the model that
test trains. Each notebook costs a kernel start and a fastai import (~15 s), most of these tests' time.
"""
import json
from pathlib import Path
import numpy as np, pandas as pd
import pytest
from conftest import ROOT

COMMON = dict(dataset='chexpert', image_size=32, batch_size=8, pretrained=False, num_workers=0, valid_pct=0.25)
STAGE1 = dict(lr=3e-3, freeze_epochs=0, epochs=1)

@pytest.fixture(scope="module")
def chexpert(tmp_path_factory):
    from cxr_lka.synthetic_chexpert import make_synthetic_chexpert
    root = tmp_path_factory.mktemp("kaggle")               # a simulated Kaggle root: the data set mounted under input/
    return make_synthetic_chexpert(root/"input"/"chexpert-small", n_patients=24, image_size=32, seed=0)

def _finite_losses(out, stage):
    h = pd.read_csv(out/stage/'history.csv')
    assert len(h) and np.isfinite(h[['train_loss', 'valid_loss']].to_numpy()).all(), h
    return h

def test_u_ones_through_the_three_notebooks(chexpert, tmp_path, monkeypatch):
    "U-Ones, protocol 'official': stage 1 -> stage 2 -> test on CheXpert's 13 labels, the data found under the input root; valid.csv is the test set; Sex/Age/View subgroups."
    from cxr_lka.pipeline import run_notebooks
    from cxr_lka.chexpert import CHEXPERT_LABELS
    monkeypatch.setenv("CXR_LKA_KAGGLE_ROOT", str(chexpert.parent.parent))   # data_dir=None: input/chexpert-small/CheXpert-v1.0-small
    out = tmp_path/"run"
    run_notebooks(out, uncertainty='U-Ones', protocol='official', stage1=STAGE1,
                  stage2=dict(epochs=1, lr_max=[1e-4, 1e-3]), test=dict(gradcam_n=2), **COMMON)
    for s in ('stage1', 'stage2'): _finite_losses(out, s)
    r1 = json.loads((out/'stage1'/'run.json').read_text())
    assert (r1['dataset'], r1['labels'], r1['uncertainty']) == ('chexpert', CHEXPERT_LABELS, 'U-Ones'), r1
    assert any('uncertain read as positive (1) (U-Ones)' in n for n in r1['notes']), r1['notes']
    assert json.loads((out/'stage1'/'config.json').read_text())['data_dir'] == str(chexpert/'CheXpert-v1.0-small')   # found by the record
    m = json.loads((out/'test'/'metrics.json').read_text())
    assert (m['labels'], m['dataset'], m['uncertainty'], m['protocol']) == (CHEXPERT_LABELS, 'chexpert', 'U-Ones', 'official')
    assert 'unlabelled' not in m and 'cross_dataset' not in m and m['mean_auc'] is not None, m
    valid_csv = pd.read_csv(chexpert/'CheXpert-v1.0-small'/'valid.csv')
    pred = pd.read_csv(out/'test'/'predictions.csv')
    assert m['n_test_images'] == len(pred) == len(valid_csv)                      # the test set is valid.csv, every image
    assert set(pred['image']) == set(valid_csv['Path'].str.replace('CheXpert-v1.0-small/', '', regex=False))
    assert set(m['subgroups']['attributes']) == {'Sex', 'Age', 'View'}
    split = pd.read_csv(out/'stage1'/'split.csv')
    assert split.equals(pd.read_csv(out/'stage2'/'split.csv')) and split.equals(pd.read_csv(out/'test'/'split.csv'))
    assert (out/'test'/'gradcam.png').exists() and (out/'test'/'subgroups.md').exists()

@pytest.mark.parametrize("policy,protocol,frontal", [('U-Zeros', 'official', False), ('U-Ignore', 'paper', True)])
def test_policy_through_stage1_and_test(chexpert, tmp_path, policy, protocol, frontal):
    "U-Zeros and U-Ignore through the stage-1 and test notebooks (the test scores stage 1's weights); U-Ignore's unlabelled entries are masked in the loss, left out of the metrics and kept empty in predictions.csv."
    from cxr_lka.pipeline import run_notebooks
    out = tmp_path/"run"
    kw = dict(data_dir=chexpert, uncertainty=policy, protocol=protocol, frontal_only=frontal, use_cache=False, **COMMON)   # U-Ones runs the cache
    run_notebooks(out, only=['stage1'], stage1=STAGE1, **kw)
    run_notebooks(out, only=['test'], test=dict(weights=str(out/'stage1'/'model.pth'), gradcam_n=0, subgroups=False), **kw)
    assert (out/'train-stage-1-bceloss.ipynb').exists() and (out/'test-notebook.ipynb').exists()
    _finite_losses(out, 'stage1')
    r1 = json.loads((out/'stage1'/'run.json').read_text())
    m = json.loads((out/'test'/'metrics.json').read_text())
    assert (r1['uncertainty'], m['uncertainty'], r1['frontal_only']) == (policy, policy, frontal)
    rep = pd.read_csv(out/'stage1'/'label_report.csv', index_col=0)
    pred = pd.read_csv(out/'test'/'predictions.csv')
    truth = pred.filter(like='true_')
    assert m['n_test_images'] == len(pred) > 0
    if policy == 'U-Ignore':      # the paper protocol's test split comes from train.csv, which has uncertain entries
        assert rep.filter(like='_unlabelled').to_numpy()[:13].sum() > 0, rep
        assert sum(m['unlabelled'].values()) == int(truth.isna().sum().sum()) > 0, m.get('unlabelled')
        assert 'left out of their class' in (out/'test'/'results.md').read_text()
        assert pred['image'].str.endswith('_frontal.jpg').all() and any(n.startswith('frontal_only: ') for n in r1['notes'])
    else:
        assert 'unlabelled' not in m and not truth.isna().any().any() and not rep.filter(like='_unlabelled').shape[1]
        assert pred['image'].str.startswith('valid/').all()
