"""The docs site: built without Quarto (`python -m cxr_lka.docsite`), opened in headless Chromium.

Every module page loads, carries its notebook's H1 as title and a show_doc entry for each public
function/class of the module (`__all__`), internal links resolve, and screenshots are saved
(in the test's tmp dir, and in $CXR_LKA_ARTIFACTS when set). Chromium is Debian's `chromium`
(`apt-get install -y chromium`); without it the browser part is skipped, unless
CXR_LKA_REQUIRE_BROWSER=1 (CI), where its absence fails.
"""
import os, re, sys, json, html, shutil, inspect, importlib, subprocess
from pathlib import Path
import pytest
from conftest import ROOT, run

sys.path.insert(0, str(ROOT))
from cxr_lka.docsite import page_name, broken_links

CHROME_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
                '--disable-component-update', '--disable-sync']

def _chromium():
    exe = shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')
    if exe: return exe
    msg = "Chromium not found: apt-get install -y chromium"
    if os.environ.get('CXR_LKA_REQUIRE_BROWSER') == '1': pytest.fail(msg)
    pytest.skip(msg)

def _browser(exe, profile, *args, timeout=90):
    p = subprocess.run([exe, *CHROME_FLAGS, f'--user-data-dir={profile}', *args],
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"chromium {args} failed ({p.returncode}): {p.stderr[-2000:]}"
    return p.stdout

def _modules():
    "(module name, its notebook) for every exported module, read from the 'File to edit' header nbdev writes."
    out = []
    for f in sorted((ROOT/'cxr_lka').glob('*.py')):
        m = re.search(r'File to edit: \.\./(nbs/\S+\.ipynb)', f.read_text()[:600])
        if m and not f.name.startswith('_'): out.append((f.stem, ROOT/m.group(1)))
    return out

def _h1(nb):
    for c in json.loads(nb.read_text())['cells']:
        if c['cell_type'] == 'markdown':
            m = re.search(r'^#\s+(.+)$', ''.join(c['source']), re.M)
            if m: return m.group(1).strip()

def _public(mod):
    "Functions and classes of `__all__` that `mod` defines itself (what show_doc documents)."
    m = importlib.import_module(f'cxr_lka.{mod}')
    return [n for n in getattr(m, '__all__', []) if (inspect.isfunction(getattr(m, n)) or inspect.isclass(getattr(m, n)))
            and getattr(getattr(m, n), '__module__', '') == m.__name__]

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('docs')/'_site'
    p = run([sys.executable, '-m', 'cxr_lka.docsite', '--out', str(out), '--quick'], check=False, timeout=900)
    assert p.returncode == 0, f"docs build failed:\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}"
    return out

def test_every_module_has_a_page_and_links_resolve(site):
    mods = _modules()
    assert len(mods) >= 5, mods
    for mod, nb in mods: assert (site/page_name(nb)).is_file(), f"no page for cxr_lka.{mod} ({nb.name})"
    assert (site/'index.html').is_file()
    home = (site/'index.html').read_text()
    for mod, nb in mods: assert f'href="{page_name(nb)}"' in home, f"index.html does not link {page_name(nb)}"
    assert broken_links(site) == []

def test_pages_in_chromium(site, tmp_path):
    exe = _chromium()
    problems = []
    for mod, nb in _modules():
        page = site/page_name(nb)
        dom = _browser(exe, tmp_path/'profile', '--dump-dom', page.as_uri())
        title = re.search(r'<title>(.*?)</title>', dom, re.S)
        want = _h1(nb)
        if not title or html.unescape(title.group(1)).strip() != want:
            problems.append(f"{page.name}: title {title and title.group(1)!r}, expected the notebook's H1 {want!r}")
        ids = set(re.findall(r'<h[1-6][^>]*\bid="([^"]+)"', dom))
        missing = [n for n in _public(mod) if n.lower() not in ids]
        if missing: problems.append(f"{page.name}: no show_doc entry for {missing}")
    assert not problems, '\n'.join(problems)

def test_screenshots(site, tmp_path):
    exe = _chromium()
    shots = []
    for page in ['index.html', page_name(_modules()[0][1])]:
        png = tmp_path/f"{Path(page).stem}.png"
        _browser(exe, tmp_path/'profile', f'--screenshot={png}', '--window-size=1280,1600', (site/page).as_uri())
        assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size > 10_000, png
        shots.append(png)
    art = os.environ.get('CXR_LKA_ARTIFACTS')
    if art:
        Path(art).mkdir(parents=True, exist_ok=True)
        for s in shots: shutil.copy(s, Path(art)/f"docs-{s.name}")

def test_readme_from_index(tmp_path):
    dest = tmp_path/'README.md'
    run([sys.executable, '-c', f"from cxr_lka.docsite import write_readme; write_readme({str(dest)!r})"], timeout=600)
    md = dest.read_text()
    assert md.startswith(f"# {_h1(ROOT/'nbs'/'index.ipynb')}\n"), md[:200]
    assert '#| hide' not in md and '#|' not in md
    assert 'Quick start' in md

def test_benchmarks_page_shows_bench_readme(site, tmp_path):
    "The docs' benchmarks page carries bench/README.md's tables as they stand (bench/run_all.py copies them)."
    import importlib.util
    spec = importlib.util.spec_from_file_location('bench_run_all', ROOT/'bench'/'run_all.py')
    run_all = importlib.util.module_from_spec(spec); spec.loader.exec_module(run_all)
    nb = tmp_path/run_all.DOCS_NB.name
    shutil.copy(run_all.DOCS_NB, nb)
    assert not run_all.sync_docs_page(ROOT/'bench'/'README.md', nb), \
        f"{run_all.DOCS_NB.name} differs from bench/README.md: run `python bench/run_all.py --sync-docs`"
    page = (site/page_name(run_all.DOCS_NB)).read_text()
    for heading in re.findall(r'^### (.+)$', (ROOT/'bench'/'README.md').read_text(), re.M):
        assert html.escape(heading.strip(), quote=False) in page, f"benchmarks page lacks the table {heading!r}"
