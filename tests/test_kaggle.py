"""The kaggle/ notebooks and their Kaggle kernel metadata.

Each notebook is valid nbformat, has exactly one `parameters`-tagged cell, its parameters are exactly
those documented in kaggle/README.md, and papermill accepts every one of them (inspect_notebook, then
parameterize_notebook with each documented name, without running anything). Its cells come in Kaggle's
order: the install cell (identical to `install_cell()`), the parameters, the GPU pre-flight first of
all calls, the stage (the training notebooks through `train_stage_auto`), `working_report` last. Each kernel-metadata.json
is in the Kaggle API's form, points at its notebook, runs on "GPU T4 x2" (`machine_shape` NvidiaTeslaT4;
no machine_shape means a P100, which Kaggle's default image cannot use) with Internet off, reads the NIH
data set and the wheel data set that `make kaggle-dataset` builds, and stages 2 and 3 read the previous
kernel's output.

The wheel data set (`cxr_lka.kaggle.kaggle_dataset`, what `make kaggle-dataset` writes) installs without
a package index into a fresh Python environment that sees "Kaggle's image": every package of this
environment except cxr_lka, grad-cam and ttach (the ones Kaggle lacks), linked into a folder that a .pth
file puts on the new environment's path. The install runs through the notebooks' first cell
(`install_cell()`), with the folder mounted where Kaggle's 2026 layout puts a data set; then
`import cxr_lka, pytorch_grad_cam` must load both from the new environment. A folder without grad-cam's
wheel must fail with a message that says what to add. About 30 s (building the wheels: pip's cache or
PyPI for grad-cam's source archive, then two installs).
"""
import re, ast, json, os, shutil, subprocess, sys, sysconfig, inspect
from pathlib import Path
import pytest
import nbformat, papermill
from papermill.parameterize import parameterize_notebook
from papermill.iorw import load_notebook_node
from conftest import ROOT

K = ROOT/'kaggle'
NOTEBOOKS = ['train-stage-1-bceloss', 'train-stage-2-focalloss', 'test-notebook']
PREVIOUS = {'train-stage-1-bceloss': None, 'train-stage-2-focalloss': 'train-stage-1-bceloss',
            'test-notebook': 'train-stage-2-focalloss'}

def documented(nb):
    "Parameter names of `nb` in kaggle/README.md: the table under the heading naming `nb`.ipynb."
    text = (K/'README.md').read_text()
    m = re.search(rf'^###\s+`?{re.escape(nb)}\.ipynb`?\s*$(.*?)(?=^#{{1,3}}\s|\Z)', text, re.M | re.S)
    assert m, f"kaggle/README.md has no parameter table for {nb}.ipynb"
    return re.findall(r'^\|\s*`([A-Za-z_]\w*)`\s*\|', m.group(1), re.M)

@pytest.mark.parametrize('nb', NOTEBOOKS)
def test_notebook_parameters(nb):
    path = K/f'{nb}.ipynb'
    node = nbformat.read(str(path), as_version=4)
    nbformat.validate(node)
    tagged = [c for c in node.cells if 'parameters' in c.metadata.get('tags', [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', expected exactly 1"
    params = papermill.inspect_notebook(str(path))
    names = documented(nb)
    assert sorted(params) == sorted(names), (f"{path.name}: parameters {sorted(params)} but README documents "
                                              f"{sorted(names)}")
    for name in names:
        out = parameterize_notebook(load_notebook_node(str(path)), {name: ast.literal_eval(params[name]['default'])})
        injected = [c for c in out.cells if 'injected-parameters' in c.metadata.get('tags', [])]
        assert len(injected) == 1 and name in injected[0].source, name
    for c in node.cells:
        if c.cell_type == 'code': assert not c.get('outputs'), f"{path.name} is committed with outputs"

@pytest.mark.parametrize('nb', NOTEBOOKS)
def test_cells_in_kaggles_order(nb):
    "Install (exactly `install_cell()`'s source), parameters, the GPU pre-flight before anything else runs, ..., `working_report` last."
    from cxr_lka.kaggle import install_cell
    code = [c for c in nbformat.read(str(K/f'{nb}.ipynb'), as_version=4).cells if c.cell_type == 'code']
    assert code[0].source == install_cell(), f"{nb}.ipynb: the first cell is not install_cell()'s source (paste it again)"
    assert 'parameters' in code[1].metadata.get('tags', [])
    calls = [l for l in code[2].source.splitlines() if not l.startswith(('from ', 'import ', '#'))]
    assert calls and 'gpu_preflight(' in calls[0], code[2].source
    assert code[-1].source.startswith('working_report('), code[-1].source
    if nb.startswith('train'):
        assert any('train_stage_auto(cfg, n_gpus=n_gpus)' in c.source for c in code), f"{nb}: not trained through train_stage_auto"

@pytest.mark.parametrize('nb', NOTEBOOKS)
def test_kernel_metadata(nb):
    folder = K/nb
    m = json.loads((folder/'kernel-metadata.json').read_text())
    for k in ['id', 'title', 'code_file', 'language', 'kernel_type', 'is_private', 'enable_gpu', 'enable_internet',
              'dataset_sources', 'kernel_sources']: assert k in m, f"{nb}/kernel-metadata.json lacks {k}"
    assert (folder/m['code_file']).resolve() == (K/f'{nb}.ipynb').resolve()    # the API joins folder and code_file
    assert (m['language'], m['kernel_type']) == ('python', 'notebook')
    assert m['enable_gpu'] is True and m.get('enable_tpu') is False
    assert m['machine_shape'] == 'NvidiaTeslaT4', "GPU T4 x2; without machine_shape Kaggle gives a P100, unusable on its image"
    assert m['enable_internet'] is False, "Internet off: the wheel data set installs cxr_lka"
    owner, slug = m['id'].split('/')
    from cxr_lka.kaggle import kaggle_dataset
    wheels = f"{owner}/{inspect.signature(kaggle_dataset).parameters['slug'].default}"
    assert m['dataset_sources'] == ['nih-chest-xrays/data', wheels], m['dataset_sources']
    assert slug == re.sub(r'[^a-z0-9]+', '-', m['title'].lower()).strip('-'), "Kaggle derives the slug from the title"
    assert len(m['title']) >= 5
    prev = PREVIOUS[nb]
    want = [json.loads((K/prev/'kernel-metadata.json').read_text())['id']] if prev else []
    assert m['kernel_sources'] == want, f"{nb} should read the output of {prev}"

def test_readme_says_why_not_p100():
    text = (K/'README.md').read_text()
    for needle in ['P100', 'sm_60', 'GPU T4 x2', 'NvidiaTeslaT4', 'make kaggle-dataset', 'enable_internet']:
        assert needle in text, f"kaggle/README.md does not mention {needle}"

# ---------------------------------------------------------------- the wheel data set, installed offline
LACKS = re.compile(r'^(cxr_lka|__editable__|pytorch_grad_cam|grad_cam|ttach)', re.I)

@pytest.fixture(scope="module")
def wheel_folder(tmp_path_factory):
    from cxr_lka.kaggle import kaggle_dataset
    return kaggle_dataset(tmp_path_factory.mktemp("kds")/"cxr-lka-wheels", download=False, quiet=True)

def test_wheel_folder(wheel_folder):
    out = Path(wheel_folder['out'])
    names = sorted(p.name for p in out.iterdir())
    assert [n.split('-')[0] for n in names if n.endswith('.whl')] == ['cxr_lka', 'grad_cam', 'ttach'], names
    meta = json.loads((out/'dataset-metadata.json').read_text())
    assert meta['id'] == 'your-kaggle-username/cxr-lka-wheels' and 6 <= len(meta['title']) <= 50
    assert 20 <= len(meta['subtitle']) <= 80 and len(meta['licenses']) == 1
    for name in ['vgg16_bn-6c64b313.pth', 'densenet121-a639ec97.pth']:     # not downloaded here: one line says how to add each
        assert name in names or any(m.startswith(name) and 'make kaggle-dataset' in m for m in wheel_folder['missing'])

def _image_env(tmp, exclude=LACKS):
    "A fresh venv that sees this environment's packages (but not `exclude`), as a Kaggle notebook sees Kaggle's image."
    site = Path(sysconfig.get_paths()['purelib'])
    image = tmp/'image'; image.mkdir()
    for e in site.iterdir():
        if not (exclude.match(e.name) or e.suffix == '.pth'): (image/e.name).symlink_to(e)
    venv = tmp/'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    py = venv/'bin'/'python'
    vsite = subprocess.run([str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                           capture_output=True, text=True, check=True).stdout.strip()
    (Path(vsite)/'kaggle_image.pth').write_text(f"{image}\n")
    return py, Path(vsite)

def _run_clean(cmd, **env):
    "Run outside the repository and without PYTHONPATH (either would import the repository's cxr_lka), with `env` added."
    e = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**e, **env}, cwd=Path(cmd[0]).parents[2])

def test_offline_install(wheel_folder, tmp_path):
    from cxr_lka.kaggle import install_cell
    py, vsite = _image_env(tmp_path)
    assert _run_clean([str(py), '-c', 'import pytorch_grad_cam']).returncode != 0    # grad-cam really is missing
    kroot = tmp_path/'kaggle'
    shutil.copytree(wheel_folder['out'], kroot/'input'/'datasets'/'someone'/'cxr-lka-wheels')
    (kroot/'input'/'datasets'/'nih-chest-xrays'/'data'/'images_001'/'images').mkdir(parents=True)
    p = _run_clean([str(py), '-c', install_cell()], CXR_LKA_KAGGLE_ROOT=str(kroot), PIP_NO_INDEX='1')
    assert p.returncode == 0, p.stdout + p.stderr
    assert 'cxr_lka: wheels in' in p.stdout and 'cxr-lka-wheels' in p.stdout, p.stdout
    p = _run_clean([str(py), '-c', 'import json, cxr_lka, cxr_lka.kaggle, pytorch_grad_cam, ttach; '
                    'print(json.dumps([m.__file__ for m in (cxr_lka, pytorch_grad_cam, ttach)]))'])
    assert p.returncode == 0, p.stderr
    for f in json.loads(p.stdout): assert Path(f).is_relative_to(vsite), f"{f} was not installed from the wheel folder"
    p = _run_clean([str(py), '-c', install_cell()], CXR_LKA_KAGGLE_ROOT=str(kroot))   # a second run: nothing to do
    assert p.returncode == 0 and 'cxr_lka: installed' in p.stdout, p.stdout + p.stderr

def test_offline_install_without_gradcam_says_what_to_add(wheel_folder, tmp_path):
    from cxr_lka.kaggle import install_cell
    py, _ = _image_env(tmp_path)
    kroot = tmp_path/'kaggle'
    folder = kroot/'input'/'cxr-lka-wheels'
    shutil.copytree(wheel_folder['out'], folder, ignore=shutil.ignore_patterns('grad_cam-*'))
    p = _run_clean([str(py), '-c', install_cell()], CXR_LKA_KAGGLE_ROOT=str(kroot))
    assert p.returncode != 0
    last = p.stderr.strip().splitlines()[-1]
    assert 'RuntimeError: Installing cxr_lka from wheels in' in last and 'make kaggle-dataset' in last, last
