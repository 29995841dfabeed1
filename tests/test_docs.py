"""The docs site, built in full once per session by docs/build.py (Sphinx + MyST-NB), and read in Chromium.

That build executes every notebook of nbs/ once, in a Jupyter kernel, skipping the cells nbdev_test skips
(`#| slow` and the other tst_flags, `#| eval: false`): `test_notebook[...]` is each notebook's test, the
rest checks the site the same execution produced -- every page loads in headless Chromium without
console errors or failed requests, search finds `build_model`, internal links and images resolve, the
home page has no horizontal overflow at 390 px, the losses page renders its formulas with MathJax --
and saves screenshots in ci-artifacts/screenshots (or $CXR_LKA_ARTIFACTS/screenshots) for a person.
Chromium is Debian's (`apt-get install -y chromium`; .ci/run installs it), driven by Playwright; without
it the browser tests are skipped, unless CXR_LKA_REQUIRE_BROWSER=1 (CI), where its absence fails.
"""
import os, re, sys, json, html, shutil, inspect, importlib, importlib.util, functools, threading, http.server
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, unquote
from html.parser import HTMLParser
import pytest
from conftest import ROOT, run

sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location('cxr_lka_docs_build', ROOT/'docs'/'build.py')
docs_build = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(docs_build)

NBS = docs_build.notebooks()
CHROME_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
                '--disable-component-update', '--disable-sync']
SHOTS = {'index': 'home', 'data': 'data', 'train': 'train', 'evaluate': 'evaluate', 'losses': 'losses', 'benchmarks': 'benchmarks'}

@pytest.fixture(scope='session')
def site(tmp_path_factory):
    "The full site, as `make docs` builds it (notebooks the execution cache holds from an identical earlier run are not run again)."
    out = tmp_path_factory.mktemp('docs')/'_site'
    p = run([sys.executable, str(ROOT/'docs'/'build.py'), '--out', str(out)], check=False, timeout=3600)
    rep = out/'_execution.json'
    return SimpleNamespace(out=out, proc=p, report=json.loads(rep.read_text()) if rep.exists() else None,
                           log=f"{p.stdout[-4000:]}\n{p.stderr[-8000:]}")

@pytest.mark.parametrize('nb', NBS, ids=[p.stem for p in NBS])
def test_notebook(site, nb):
    "The notebook's cells run without error in a kernel, slow cells skipped (its tests: the docs build runs each notebook once)."
    assert site.report, f"the docs build wrote no execution report:\n{site.log}"
    r = site.report['notebooks'][nb.name]
    assert r['status'] in ('executed', 'cached'), r.get('error', r)

def test_build_succeeds(site):
    assert site.proc.returncode == 0, f"docs/build.py failed ({site.proc.returncode}):\n{site.log}"
    assert (site.out/'index.html').is_file() and (site.out/'search.html').is_file() and (site.out/'searchindex.js').is_file()

# --------------------------------------------------------------------------------------- static checks
def _modules():
    "(module name, its notebook) for every exported module, from the 'File to edit' header nbdev writes."
    out = []
    for f in sorted((ROOT/'cxr_lka').glob('*.py')):
        m = re.search(r'File to edit: \.\./(nbs/\S+\.ipynb)', f.read_text()[:600])
        if m and not f.name.startswith('_'): out.append((f.stem, ROOT/m.group(1)))
    return out

def _h1(nb):
    for c in json.loads(Path(nb).read_text())['cells']:
        if c['cell_type'] == 'markdown':
            m = re.search(r'^#\s+(.+)$', ''.join(c['source']), re.M)
            if m: return m.group(1).strip()

def _public(mod):
    "Functions and classes of `__all__` that `mod` defines itself (what show_doc documents)."
    m = importlib.import_module(f'cxr_lka.{mod}')
    return [n for n in getattr(m, '__all__', []) if (inspect.isfunction(getattr(m, n)) or inspect.isclass(getattr(m, n)))
            and getattr(getattr(m, n), '__module__', '') == m.__name__]

def _page(site, name): return site.out/f'{name}.html'

class _Links(HTMLParser):
    "The ids, links and images of an HTML page."
    def __init__(self):
        super().__init__(); self.ids, self.links = set(), []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get('id'): self.ids.add(a['id'])
        for k in ('href', 'src'):
            if a.get(k): self.links.append(a[k])

def broken_links(site_dir) -> list:
    "Relative links and images in the pages of `site_dir` whose file or `#anchor` does not exist."
    site_dir, parsed, bad = Path(site_dir), {}, []
    def parse(f):
        if f not in parsed: parsed[f] = _Links(); parsed[f].feed(f.read_text(errors='replace'))
        return parsed[f]
    for f in sorted(site_dir.glob('*.html')):   # the pages (the theme's _static holds template files)
        for link in parse(f).links:
            u = urlsplit(link)
            if u.scheme or u.netloc or link.startswith(('mailto:', 'data:', 'javascript:')): continue
            target = (f.parent/unquote(u.path)).resolve() if u.path else f.resolve()
            if not target.exists(): bad.append(f"{f.relative_to(site_dir)}: {link} (no file)"); continue
            if u.fragment and target.suffix == '.html' and u.fragment not in parse(target).ids:
                bad.append(f"{f.relative_to(site_dir)}: {link} (no id {u.fragment!r} in {target.name})")
    return bad

def test_every_module_has_a_page_with_its_api(site):
    "A page per notebook, titled by its H1, in the home page's navigation, with a show_doc section per public name."
    from docutils.nodes import make_id
    mods = _modules()
    assert len(mods) >= 8, mods
    home = _page(site, 'index').read_text()
    problems = []
    for nb in NBS:
        page = _page(site, docs_build.page_name(nb))
        if not page.is_file(): problems.append(f"no page for {nb.name}"); continue
        title = re.search(r'<title>(.*?)</title>', page.read_text(), re.S)
        if not title or not html.unescape(title.group(1)).strip().startswith(_h1(nb)):
            problems.append(f"{page.name}: <title> {title and title.group(1)!r} does not start with the notebook's H1 {_h1(nb)!r}")
        if nb.name != 'index.ipynb' and f'href="{page.name}"' not in home: problems.append(f"the home page does not link {page.name}")
    for mod, nb in mods:
        page = _page(site, docs_build.page_name(nb))
        if not page.is_file(): continue
        ids = set(re.findall(r'\bid="([^"]+)"', page.read_text()))
        missing = [n for n in _public(mod) if make_id(n) not in ids]
        if missing: problems.append(f"{page.name}: no show_doc section for {missing}")
    assert not problems, '\n'.join(problems)

def test_links_and_images_resolve(site):
    assert broken_links(site.out) == []

def _visible_text(page:Path, code=False, inline_code=True) -> str:
    "The text of the article of a page: outputs, prose and API entries (the cells' own code when `code`, inline code when `inline_code`)."
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(page.read_text(), 'html.parser')
    art = soup.find('article') or soup
    for e in art.find_all(['script', 'style']): e.decompose()
    if not code:
        for e in art.select('div.cell_input'): e.decompose()
    if not inline_code:
        for e in art.select('p code, li code, td code'): e.decompose()
    return art.get_text(' ')

def test_pages_are_clean(site):
    "Outputs and prose: no machine or temp paths, no progress-bar debris, no nbdev directives, no raw markdown or Quarto attributes."
    checks = {'a path of this machine': re.compile('|'.join(re.escape(str(p)) for p in {ROOT, ROOT.resolve(), ROOT.parent})),
              'an absolute machine path': re.compile(r'(?<![\w.:/])/(?:work|tmp|home|root|Users|private/var)/[\w.-]+'),
              'progress-bar debris': re.compile(r'█|\r|\d+\.\d\d% \[\d+/\d+'),
              'an nbdev directive': re.compile(r'#\|\s*(export|hide|default_exp|slow)'),
              'a Quarto attribute': re.compile(r'\{target="_blank"|\.column-page|:::\s*\{'),
              'raw markdown': re.compile(r'\]\((?:https?://|\.\./|#)[^)\s]*\)|^\s*#{2,6}\s+\w', re.M),
              'an unfixed source line': re.compile(r'#LNone')}
    problems = []
    for page in sorted(site.out.glob('*.html')):
        text, prose = _visible_text(page), _visible_text(page, inline_code=False)
        for what, rx in checks.items():
            m = rx.search(prose if what == 'progress-bar debris' else text)   # prose may name `█` in inline code
            if m: problems.append(f"{page.name}: {what}: ...{text[max(0, m.start() - 80):m.end() + 80]!r}...")
    assert not problems, '\n'.join(problems)

def test_execution_is_cached(site, tmp_path):
    "A second build of unchanged notebooks runs none of them (jupyter-cache); code changes change the key, prose does not."
    assert site.report, site.log
    p = run([sys.executable, str(ROOT/'docs'/'build.py'), '--only', '04_losses.ipynb', '--out', str(tmp_path/'s')], timeout=900)
    rep = json.loads((tmp_path/'s'/'_execution.json').read_text())
    test_statuses = {k: v['status'] for k, v in rep['notebooks'].items()}
    assert test_statuses == {'04_losses.ipynb': 'cached', 'index.ipynb': 'cached'}, (test_statuses, p.stdout[-2000:])
    from jupyter_cache import get_cache
    cache = get_cache(str(tmp_path/'c'))
    nb = docs_build.prepare(ROOT/'nbs'/'04_losses.ipynb')
    key = lambda nb: cache.create_hashed_notebook(nb)[1]
    base = key(nb)
    md = [c for c in nb.cells if c.cell_type == 'markdown'][0]; md.source += '\nmore prose'
    assert key(nb) == base
    code = [c for c in nb.cells if c.cell_type == 'code'][-1]; code.source += '\nx = 1'
    assert key(nb) != base

def test_slow_and_hidden_cells(tmp_path):
    "Directives become tags: hidden/exported cells run unseen, slow cells (tst_flags) and eval: false are not run, show_doc is added."
    import nbformat
    src = tmp_path/'99_demo.ipynb'
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in [
        '#| default_exp demo', '#| hide\nfrom nbdev.showdoc import show_doc', '#| export\ndef f(x):\n    "Double."\n    return 2*x',
        '#| slow\nraise RuntimeError("slow")', '#| eval: false\nraise RuntimeError("eval false")', '#| echo: false\nprint(f(2))']])
    nbformat.write(nb, str(src))
    p = docs_build.prepare(src)
    tags = [(c.source.splitlines()[0] if c.source else '', c.metadata.get('tags', [])) for c in p.cells[1:]]
    assert tags[0] == ('', ['remove-cell']) and tags[1][1] == ['remove-cell'] and tags[2][1] == ['remove-cell'], tags
    assert tags[3] == ('show_doc(f)', ['show_doc']), tags
    assert tags[4] == ('raise RuntimeError("slow")', ['skip-execution']), tags
    assert tags[5] == ('raise RuntimeError("eval false")', ['skip-execution']), tags
    assert tags[6] == ('print(f(2))', ['remove-input']), tags
    assert not any('#|' in c.source for c in p.cells)

def test_clean_text():
    "Carriage-return debris resolves to the bar's last state, machine paths become relative."
    subs = [(str(ROOT/'nbs'), '.'), (str(ROOT), '..'), ('/tmp', '<tmp>')]
    assert docs_build.clean_text('a\r50%\r100% done\nnext\n', subs) == '100% done\nnext\n'
    assert docs_build.clean_text(f'wrote {ROOT}/nbs/results/x.png and /tmp/tmpab12cd/y.csv', subs) == 'wrote ./results/x.png and <tmp>/y.csv'
    assert docs_build.clean_text('█████-----| 3/4\nkept', subs) == 'kept'
    md = docs_build.clean_show_doc('---\n\n[source](https://github.com/a/b/blob/main/cxr_lka/losses.py#LNone){target="_blank" style="x"}\n\n'
                                   '### get_loss\n\n```python\ndef get_loss(\n    name:str, # see [docs](https://x.y/z)\n):\n```\n\n*From `<stage>` names.*', [])
    assert '#LNone' not in md and re.search(r'losses\.py#L\d+"', md) and 'target=' not in md, md
    assert '# see docs\n' in md and '&lt;stage&gt;' not in md.split('```')[1] and '`<stage>`' in md, md

# --------------------------------------------------------------------------------------- in Chromium
def _chromium():
    exe = shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')
    msg = None if exe else "Chromium not found: apt-get install -y chromium"
    if exe:
        try: import playwright.sync_api  # noqa: F401
        except ImportError: msg = "playwright is not installed: make install (it is in dev_requirements)"
    if msg is None: return exe
    if os.environ.get('CXR_LKA_REQUIRE_BROWSER') == '1': pytest.fail(msg)
    pytest.skip(msg)

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass

@pytest.fixture(scope='module')
def browser(site):
    "(Chromium driven by Playwright, the site's URL on a local HTTP server on 127.0.0.1)."
    exe = _chromium()
    assert site.proc.returncode == 0, f"no site to open:\n{site.log}"
    from playwright.sync_api import sync_playwright
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(site.out)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=exe, args=CHROME_FLAGS[1:])
            yield b, f'http://127.0.0.1:{srv.server_address[1]}/'
            b.close()
    finally: srv.shutdown(); srv.server_close()

def _open(browser, url, width=1280, height=1000):
    "A page at `url` and the problems seen loading it: console errors, page errors, failed or 4xx/5xx requests."
    b, _ = browser
    pg = b.new_page(viewport={'width': width, 'height': height})
    problems = []
    pg.on('console', lambda m: m.type == 'error' and problems.append(f"console error: {m.text}"))
    pg.on('pageerror', lambda e: problems.append(f"page error: {e}"))
    pg.on('requestfailed', lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    pg.on('response', lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    pg.goto(url, wait_until='load')
    pg.wait_for_timeout(300)
    return pg, problems

def test_pages_load_without_errors(site, browser):
    "Every page loads without console errors or failed requests; every image in it decodes."
    bad = []
    for page in sorted(site.out.glob('*.html')):
        pg, problems = _open(browser, browser[1] + page.name)
        broken = pg.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        bad += [f"{page.name}: {p}" for p in problems] + [f"{page.name}: image not loaded: {s}" for s in broken]
        pg.close()
    assert not bad, '\n'.join(bad)

def test_search_finds_build_model(browser):
    pg, problems = _open(browser, browser[1] + 'search.html?q=build_model')
    pg.wait_for_selector('#search-results ul.search li', timeout=20000)
    hits = pg.eval_on_selector_all('#search-results ul.search li a', 'els => els.map(e => e.getAttribute("href"))')
    pg.close()
    assert not problems, problems
    assert any(h.startswith('models.html') for h in hits), hits

def test_reading_aids(browser):
    "A chapter page has the on-page contents, prev/next links, copy buttons on code, and links to its source on GitHub."
    pg, problems = _open(browser, browser[1] + 'losses.html')
    pg.wait_for_selector('button.copybtn', state='attached', timeout=10000)
    got = pg.evaluate("""() => ({
        toc: [...document.querySelectorAll('.bd-toc a.nav-link')].map(a => a.getAttribute('href')),
        prevnext: [...document.querySelectorAll('.prev-next-area a')].map(a => a.getAttribute('href')),
        copy: document.querySelectorAll('button.copybtn').length,
        source: [...document.querySelectorAll('a.sd-source, p.page-source a')].map(a => a.href)})""")
    pg.close()
    assert not problems, problems
    assert '#focal-loss' in got['toc'] and '#get-loss' in got['toc'], got['toc']
    assert got['prevnext'] == ['models.html', 'train.html'], got['prevnext']
    assert got['copy'] >= 5, got
    assert any(u.endswith('nbs/04_losses.ipynb') for u in got['source']), got['source']
    assert any(re.search(r'/cxr_lka/losses\.py#L\d+$', u) for u in got['source']), got['source']

def test_phone_layout(browser):
    "At 390 px the pages fit the screen: nothing but wide tables and code scrolls, inside their own box."
    bad = []
    for name in ['index', 'data', 'losses', 'evaluate', 'benchmarks']:
        pg, problems = _open(browser, browser[1] + f'{name}.html', width=390, height=844)
        w = pg.evaluate('Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)')
        if w > 390: bad.append(f"{name}.html is {w} px wide at 390 px")
        bad += [f"{name}.html: {p}" for p in problems]
        pg.close()
    assert not bad, '\n'.join(bad)

def test_math_renders(browser):
    "The losses page typesets its formulas with MathJax (served by the site itself); no raw `$` or `\\(` is left."
    pg, problems = _open(browser, browser[1] + 'losses.html')
    pg.wait_for_function("document.querySelectorAll('mjx-container svg').length >= 5", timeout=20000)
    n = pg.evaluate("document.querySelectorAll('mjx-container').length")
    text = pg.evaluate("""() => { const a = document.querySelector('article').cloneNode(true);
        a.querySelectorAll('pre, code, mjx-container, script').forEach(e => e.remove()); return a.innerText; }""")
    pg.close()
    assert not problems, problems
    assert n >= 5, n
    assert '$' not in text and '\\(' not in text and '\\gamma' not in text, re.findall(r'.{40}(?:\$|\\\(|\\gamma).{40}', text)

def test_screenshots(browser):
    "Screenshots for a person to look at (CI keeps ci-artifacts/): six pages at 1280 px, the home page at 390 px."
    art = Path(os.environ.get('CXR_LKA_ARTIFACTS', ROOT/'ci-artifacts'))/'screenshots'
    art.mkdir(parents=True, exist_ok=True)
    shots = [(page, 1280, f'{name}-1280.png') for page, name in SHOTS.items()] + [('index', 390, 'home-390.png')]
    for page, w, fname in shots:
        pg, _ = _open(browser, browser[1] + f'{page}.html', width=w, height=2000 if w > 400 else 844)
        pg.screenshot(path=str(art/fname), full_page=(w < 400))
        pg.close()
        png = (art/fname).read_bytes()
        assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 10_000, fname

# --------------------------------------------------------------------------------------- README, benchmarks
def test_readme_is_generated_from_index(site, tmp_path):
    "README.md is what `make readme` writes from nbs/index.ipynb (its executed outputs included)."
    dest = tmp_path/'README.md'
    run([sys.executable, str(ROOT/'docs'/'build.py'), '--readme', '--dest', str(dest)], timeout=900)
    md = dest.read_text()
    assert md.startswith(f"# {_h1(ROOT/'nbs'/'index.ipynb')}\n"), md[:200]
    assert '#|' not in md and 'Quick start' in md
    assert md == (ROOT/'README.md').read_text(), "README.md is out of date: run `make readme` and commit it"
    for f in (tmp_path/'README_files').glob('*'):
        assert (ROOT/'README_files'/f.name).read_bytes() == f.read_bytes(), f"README_files/{f.name} is out of date: make readme"

def test_benchmarks_page_shows_bench_readme(site, tmp_path):
    "The benchmarks page carries bench/README.md's tables as they stand (bench/run_all.py copies them)."
    spec = importlib.util.spec_from_file_location('bench_run_all', ROOT/'bench'/'run_all.py')
    run_all = importlib.util.module_from_spec(spec); spec.loader.exec_module(run_all)
    nb = tmp_path/run_all.DOCS_NB.name
    shutil.copy(run_all.DOCS_NB, nb)
    assert not run_all.sync_docs_page(ROOT/'bench'/'README.md', nb), \
        f"{run_all.DOCS_NB.name} differs from bench/README.md: run `python bench/run_all.py --sync-docs`"
    page = _visible_text(_page(site, docs_build.page_name(run_all.DOCS_NB)))
    for heading in re.findall(r'^### (.+)$', (ROOT/'bench'/'README.md').read_text(), re.M):
        plain = re.sub(r'[`*]', '', heading).strip()
        assert plain in page, f"benchmarks page lacks the table {heading!r}"

# --------------------------------------------------------------------------------------- workflows
def test_workflows():
    "CI runs the browser test like .ci/run; the deploy waits for CI to pass, builds with `make docs`, has a concurrency group and least permissions."
    import yaml
    test = yaml.safe_load((ROOT/'.github'/'workflows'/'test.yaml').read_text())
    dep = yaml.safe_load((ROOT/'.github'/'workflows'/'deploy.yaml').read_text())
    t = json.dumps(test)
    assert 'chromium' in t and 'CXR_LKA_REQUIRE_BROWSER' in t and 'constraints.txt' in t, t
    on = dep.get('on', dep.get(True))
    assert on['workflow_run']['workflows'] == [test['name']] and on['workflow_run']['types'] == ['completed'], on
    d = json.dumps(dep)
    assert "conclusion == 'success'" in d and 'make docs' in d and 'constraints.txt' in d and 'concurrency' in dep, d
    assert dep['permissions'] == {'contents': 'read'} and test['permissions'] == {'contents': 'read'}, (dep['permissions'], test['permissions'])
    assert [j.get('permissions') for j in dep['jobs'].values()] == [None, {'pages': 'write', 'id-token': 'write'}], dep['jobs']
    assert dep['jobs']['deploy']['needs'] == 'build'
