"""The kaggle/ notebooks and their Kaggle kernel metadata.

Each notebook is valid nbformat, has exactly one `parameters`-tagged cell, its parameters are exactly
those documented in kaggle/README.md, and papermill accepts every one of them (inspect_notebook, then
parameterize_notebook with each documented name, without running anything). Each kernel-metadata.json
is in the Kaggle API's form, points at its notebook, runs on a GPU with Internet and the NIH data set,
and stages 2 and 3 read the previous kernel's output.
"""
import re, ast, json
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
def test_kernel_metadata(nb):
    folder = K/nb
    m = json.loads((folder/'kernel-metadata.json').read_text())
    for k in ['id', 'title', 'code_file', 'language', 'kernel_type', 'is_private', 'enable_gpu', 'enable_internet',
              'dataset_sources', 'kernel_sources']: assert k in m, f"{nb}/kernel-metadata.json lacks {k}"
    assert (folder/m['code_file']).resolve() == (K/f'{nb}.ipynb').resolve()    # the API joins folder and code_file
    assert (m['language'], m['kernel_type']) == ('python', 'notebook')
    assert m['enable_gpu'] is True and m['enable_internet'] is True
    assert m['dataset_sources'] == ['nih-chest-xrays/data']
    owner, slug = m['id'].split('/')
    assert slug == re.sub(r'[^a-z0-9]+', '-', m['title'].lower()).strip('-'), "Kaggle derives the slug from the title"
    assert len(m['title']) >= 5
    prev = PREVIOUS[nb]
    want = [json.loads((K/prev/'kernel-metadata.json').read_text())['id']] if prev else []
    assert m['kernel_sources'] == want, f"{nb} should read the output of {prev}"
