"""Build the cxr_lka docs site: the nbdev notebooks, executed once (cached), rendered by Sphinx + MyST-NB.

    python docs/build.py                     # the full site in _site/ (what `make docs`, CI and the deploy run)
    python docs/build.py --force             # execute every notebook again, cached or not
    python docs/build.py --readme            # README.md (+ README_files/) from nbs/index.ipynb
    python docs/build.py --only 04_losses.ipynb --out /tmp/site   # some notebooks (the site links only those)

1. Prepare: each `nbs/*.ipynb` becomes a notebook whose nbdev directives are cell tags -- `#| hide`,
   `#| export` and `#| default_exp` cells run but are not shown, `#| eval: false` and the
   `tst_flags` of settings.ini (`#| slow`) are not run, exactly as `nbdev_test` skips them -- and
   whose exported definitions get a `show_doc` cell, as nbdev's docs do.
2. Execute: each prepared notebook runs ONCE in a Jupyter kernel, in `nbs/` (as `nbdev_test` runs it), two at
   a time. The executed notebook is kept in a jupyter-cache (`_proc/cache`), keyed by the notebook's code and
   by what it depends on (`dependency_key`: the `cxr_lka` modules it imports, the bundled data, the package
   pins): only notebooks whose code or dependencies changed run again. A failing cell fails the build and names
   notebook, cell and traceback; the execution report lands in `<out>/_execution.json`, which the tests read
   (this execution IS the notebook test of `make test`).
3. Render: show_doc outputs become page sections; outputs are cleaned (machine and temp paths, carriage-return
   progress debris, ANSI codes, fastprogress bars); Sphinx + MyST-NB + sphinx-book-theme writes the site,
   with MathJax served from the site itself (nothing is fetched from a CDN).
"""
import argparse, ast, hashlib, json, os, re, shutil, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT/'docs'
PROC = ROOT/'_proc'
HIDE_DIRS = {'export', 'exporti', 'hide', 'default_exp'}

# ----------------------------------------------------------------------------------------------- settings
def settings() -> dict:
    "settings.ini's [DEFAULT] section (nbdev 2's project settings)."
    from configparser import ConfigParser
    cp = ConfigParser(interpolation=None); cp.read(ROOT/'settings.ini')
    return dict(cp['DEFAULT'])

def page_name(nb_path) -> str:
    "The page of a notebook, as nbdev names it: '00_data.ipynb' -> 'data' (data.html); 'index.ipynb' -> 'index'."
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', Path(nb_path).name.lower()).rsplit('.', 1)[0]

def notebooks(nbs_path=None, only=None) -> list:
    "The notebooks that become pages: every `nbs/*.ipynb` not starting with `_` or `.`, index first, then by name."
    nbs_path = Path(nbs_path or ROOT/settings().get('nbs_path', 'nbs'))
    nbs = [p for p in sorted(nbs_path.glob('*.ipynb')) if not p.name.startswith(('_', '.'))]
    if only:
        names = {Path(o).name for o in only} | {'index.ipynb'}   # the home page is the site's root
        unknown = names - {p.name for p in nbs}
        if unknown: raise SystemExit(f"--only: no notebook {sorted(unknown)} in {nbs_path}")
        nbs = [p for p in nbs if p.name in names]
    names = {}
    for p in nbs:
        if page_name(p) in names: raise SystemExit(f"{p.name} and {names[page_name(p)]} would both be the page {page_name(p)}.html: rename one")
        names[page_name(p)] = p.name
    return sorted(nbs, key=lambda p: (p.name != 'index.ipynb', p.name))

# ----------------------------------------------------------------------------------------------- prepare
_re_lib_import = re.compile(r'^\s*(?:from|import)\s+(?:cxr_lka\.(\w+)|\.(\w+)|cxr_lka\b)', re.M)

def _module_deps(mods:set) -> set:
    "`mods` and every cxr_lka module they import, directly or not."
    lib, todo, seen = ROOT/'cxr_lka', list(mods), set()
    while todo:
        m = todo.pop()
        f = lib/f'{m}.py'
        if m in seen or not f.exists(): continue
        seen.add(m)
        for a, b in _re_lib_import.findall(f.read_text(errors='replace')): todo.append(a or b)
    return seen

_re_spawns = re.compile(r'\bsubprocess\b|import papermill|\bpm\.|execute_notebook|sys\.executable|[\'"]cxr-lka-[\w-]+|kaggle/[\w.-]+\.ipynb|\btorchrun\b')

def dependency_key(nb:dict) -> str:
    """A hash of what a notebook's results depend on besides its own code: the cxr_lka modules it imports (directly
    or not; every module, and kaggle/'s notebooks, when it starts other processes), the bundled sample, nbs/results,
    whether the shared real data is there, constraints.txt and Python. A change elsewhere needs `--force`."""
    src = '\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code')
    mods = {a or b for a, b in _re_lib_import.findall(src) if a or b}
    if re.search(r'^\s*(from|import)\s+cxr_lka\s*(import|$)', src, re.M): mods.add('__init__')
    mods |= set(re.findall(r'#\|\s*default_exp\s+(\w+)', src))
    files = [ROOT/'cxr_lka'/f'{m}.py' for m in sorted(_module_deps(mods))]
    if _re_spawns.search(src): files = sorted((ROOT/'cxr_lka').glob('*.py')) + sorted((ROOT/'kaggle').glob('*.ipynb'))
    files += sorted(f for f in (ROOT/'nbs'/'results').rglob('*') if f.is_file()) + [ROOT/'constraints.txt']
    h = hashlib.sha256()
    for f in files:
        if f.is_file(): h.update(f.relative_to(ROOT).as_posix().encode() + f.read_bytes())
    for f in sorted((ROOT/'sample').rglob('*')):   # the bundled images: names and sizes
        if f.is_file(): h.update(f'{f.relative_to(ROOT).as_posix()}:{f.stat().st_size}'.encode())
    sd = os.environ.get('CXR_LKA_SHARED_DATA') or ROOT.parent/'shared'/'data'
    h.update(f'shared data: {Path(sd).is_dir()}; python {sys.version}'.encode())
    return h.hexdigest()[:16]

def prepare(nb_path, skip_flags=('slow',)) -> nbformat.NotebookNode:
    "The notebook to execute and render: directives as tags, show_doc cells added, a hidden first cell naming its dependencies."
    from nbdev.process import NBProcessor
    from nbdev.processors import add_show_docs
    from execnb.nbio import nb2dict
    nb_path = Path(nb_path)
    raw = json.loads(nb_path.read_text())
    proc = NBProcessor(nb_path, procs=[add_show_docs])
    proc.process()
    cells = []
    for c in proc.nb.cells:
        d = getattr(c, 'directives_', None) or {}
        has_sd = getattr(c, 'has_sd', False)
        c = nb2dict(c)
        for k in [k for k in c if k.endswith('_') or k == 'idx_']: c.pop(k)
        src = c.get('source', '')
        if isinstance(src, list): src = ''.join(src)
        if c['cell_type'] == 'code':
            src = re.sub(r'\A(?:[ \t]*#\|[^\n]*\n?)+', '', src)        # Quarto-style `#| key: value` lines nbdev leaves in place
            tags = set(c.get('metadata', {}).get('tags', []))
            opt = lambda k: (d.get(k + ':') or d.get(k) or [''])[0].lower()
            if d.keys() & HIDE_DIRS or opt('include') == 'false': tags.add('remove-cell')
            if opt('echo') == 'false': tags.add('remove-input')
            if opt('output') == 'false': tags.add('remove-output')
            if opt('eval') == 'false' or set(skip_flags) & set(d) or 'nbdev_export' + '(' in src:
                tags.add('skip-execution')
            if has_sd or re.match(r'\s*show_doc\(', src): tags.add('show_doc')
            c['metadata'] = {**c.get('metadata', {}), 'tags': sorted(tags)}
            c.setdefault('outputs', []); c.setdefault('execution_count', None)
        c['source'] = src
        cells.append(c)
    head = {'cell_type': 'code', 'execution_count': None, 'outputs': [], 'metadata': {'tags': ['remove-cell']},
            'source': f"# docs build: {nb_path.name}, dependencies {dependency_key(raw)}"}
    nb = nbformat.from_dict({'nbformat': 4, 'nbformat_minor': 5, 'cells': [head] + cells, 'metadata': {
        'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'},
        'language_info': {'name': 'python'}}})
    for i, c in enumerate(nb.cells): c['id'] = c.get('id') or f'docs-build-{i}'   # the file's own ids: errors name the cell
    return nb

# ----------------------------------------------------------------------------------------------- execute
def kernel_env() -> dict:
    "The environment of the kernels: inline figures, no progress bars (cxr_lka.core.progress), nbdev's IN_TEST."
    env = {'MPLBACKEND': 'module://matplotlib_inline.backend_inline', 'CXR_LKA_PROGRESS': 'none', 'IN_TEST': '1',
           'PYTHONPATH': os.pathsep.join([str(ROOT)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p])}
    return env

def _failed_cell(nb, nb_path):
    "(index of the cell in the notebook file, source, error output) of the cell that raised, or None."
    ids = [c.get('id') for c in json.loads(Path(nb_path).read_text())['cells']]
    for c in nb.cells:
        for o in c.get('outputs', []):
            if o.get('output_type') == 'error': return (ids.index(c.get('id')) if c.get('id') in ids else '(added by the build)'), c.source, o
    return None

def execute_one(nb, nb_path, timeout=1800):
    "Run `nb` in a kernel whose working directory is the notebook's folder; (executed nb, seconds, error text or None)."
    from jupyter_cache.executors.utils import single_nb_execution
    res = single_nb_execution(nb, cwd=str(Path(nb_path).parent), timeout=timeout, allow_errors=False, meta_override=False,
                              extra_arguments=['--IPKernelApp.log_level=ERROR'])   # the kernel's own log (e.g. its TCP notice) is not news
    err = None
    if res.err is not None:
        fc = _failed_cell(res.nb, nb_path)
        ansi = re.compile(r'\x1B\[[0-9;]*[A-Za-z]')
        if fc:
            i, src, o = fc
            tb = ansi.sub('', '\n'.join(o.get('traceback', [])))
            err = (f"{Path(nb_path).relative_to(ROOT)}: cell {i} raised {o.get('ename')}: {o.get('evalue')}\n"
                   f"--- cell {i} ---\n{src}\n--- traceback ---\n{tb}")
        else: err = f"{Path(nb_path).relative_to(ROOT)}: {ansi.sub('', str(res.err))}"
    return res.nb, res.time, err

def execute_all(nbs:list, force=False, jobs=2, cache_dir=PROC/'cache', log=print) -> dict:
    "Execute the prepared notebooks [(path, nb)] that the cache does not hold; {name: (executed nb or None, report)}."
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    cache = get_cache(str(cache_dir))
    out, todo = {}, []
    for path, nb in nbs:
        rec = None
        if not force:
            try: rec = cache.match_cache_notebook(nb)
            except KeyError: rec = None
        if rec is not None:
            _, exe = cache.merge_match_into_notebook(nb)
            out[path.name] = (exe, {'status': 'cached', 'seconds': (rec.data or {}).get('execution_seconds')})
        else: todo.append((path, nb))
    if out: log(f"{len(out)} notebooks unchanged since their last run (cached): {', '.join(sorted(out))}")
    if not todo: return out
    old = {k: os.environ.get(k) for k in kernel_env()}
    os.environ.update(kernel_env())
    t0 = time.time()
    try:
        # longest first (by the last recorded time, else by file size), so that two workers finish together
        todo.sort(key=lambda o: -o[0].stat().st_size)
        log(f"executing {len(todo)} notebooks, {jobs} at a time: {', '.join(p.name for p, _ in todo)}")
        with ThreadPoolExecutor(max(1, jobs)) as ex:
            futs = {ex.submit(execute_one, nbformat.from_dict(json.loads(json.dumps(nb))), path): (path, nb) for path, nb in todo}
            for k, f in enumerate(as_completed(futs), 1):
                path, nb = futs[f]
                try: exe, secs, err = f.result()
                except Exception as e: exe, secs, err = None, 0., f"{path.relative_to(ROOT)}: the kernel could not run it: {e!r}"
                rep = {'status': 'failed' if err else 'executed', 'seconds': round(secs, 1)}
                if err: rep['error'] = err
                else: cache.cache_notebook_bundle(CacheBundleIn(exe, str(path), data={'execution_seconds': round(secs, 1)}),
                                                  check_validity=False, overwrite=True)
                out[path.name] = (None if err else exe, rep)
                log(f"[{k}/{len(todo)}] {path.name}: {'FAILED' if err else 'ok'} in {secs:.0f} s ({time.time() - t0:.0f} s elapsed)")
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    return out

# ----------------------------------------------------------------------------------------------- clean
_re_ansi = re.compile(r'\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])')

def machine_paths() -> list:
    "(absolute prefix, what a reader sees instead) for the paths of this machine that outputs may print."
    subs = []
    sd = os.environ.get('CXR_LKA_SHARED_DATA')
    for p, rel in [(sd, '../shared/data'), (ROOT.parent/'shared'/'data', '../shared/data'),
                   (ROOT/'nbs', '.'), (ROOT, '..'), (tempfile.gettempdir(), '<tmp>'), (Path.home(), '~')]:
        if p and str(p) not in ('/', '.'):
            for q in {str(p), str(Path(p).resolve())}: subs.append((q.rstrip('/'), rel))
    return sorted(set(subs), key=lambda o: -len(o[0]))

def clean_text(s:str, subs=None) -> str:
    "Text as a reader should see it: ANSI codes gone, carriage-return progress debris resolved, machine paths relative."
    s = _re_ansi.sub('', s)
    if '\r' in s:   # a line rewritten with \r shows its last state, as a terminal would
        s = '\n'.join(l.rstrip('\r').split('\r')[-1] for l in s.replace('\r\n', '\n').split('\n'))
    s = re.sub(r'^.*[█▉▊▋▌▍▎▏]{3,}.*\n?', '', s, flags=re.M)     # console progress bars
    for p, rel in (machine_paths() if subs is None else subs):
        s = re.sub(re.escape(p) + r'(?=/|\b|$)', rel, s)
    s = re.sub(r'<tmp>/(?:tmp|pytest-of-\w+/pytest-\d+)[\w.-]*', '<tmp>', s)
    return s

_re_progress_html = re.compile(r'<progress[^>]*>.*?</progress>|<progress[^>]*/?>', re.S)

def _clean_html(s:str, subs) -> str:
    "HTML output without fastprogress bars (the table of epochs fastai writes stays)."
    s = _re_progress_html.sub('', s)
    s = re.sub(r'<style>(?:(?!</style>).)*\bprogress\b(?:(?!</style>).)*</style>', '', s, flags=re.S)   # fastprogress's CSS (docs/_static styles its table)
    s = re.sub(r'<div>\s*(?:<span[^>]*>)?\s*\d+(?:\.\d+)?% \[\d+/\d+[^\]]*\]\s*(?:</span>)?\s*</div>', '', s)
    return clean_text(s, subs)

def _src_line(py:str, name:str):
    "Line of the definition of `name` (a function, a class, or Class.method) in the repo file `py`."
    f = ROOT/py
    if not f.exists(): return None
    tree = ast.parse(f.read_text())
    parts = name.split('.')
    for t in tree.body:
        if isinstance(t, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and t.name == parts[0]:
            if len(parts) == 1: return t.lineno
            for t2 in getattr(t, 'body', []):
                if isinstance(t2, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and t2.name == parts[1]: return t2.lineno
    return None

def _is_class(py:str, name:str) -> bool:
    f = ROOT/py
    return f.exists() and '.' not in name and re.search(rf'^class\s+{re.escape(name)}\b', f.read_text(), re.M) is not None

_re_tag = re.compile(r'<(/?[A-Za-z][\w-]*)([^<>]*)>')
_HTML_OK = {'a', 'b', 'i', 'em', 'strong', 'code', 'pre', 'br', 'sub', 'sup', 'span', 'div', 'p', 'img', 'kbd', 'small', 'table',
            'tr', 'td', 'th', 'thead', 'tbody', 'ul', 'ol', 'li', 'details', 'summary', 'hr'}

def _escape_pseudo_tags(md:str) -> str:
    "`<stage>` and other <words> that are not HTML, outside code, as text (markdown would swallow them as tags)."
    parts = re.split(r'(```.*?```|`[^`\n]*`)', md, flags=re.S)
    for i in range(0, len(parts), 2):
        parts[i] = _re_tag.sub(lambda m: m[0] if m[1].lstrip('/').lower() in _HTML_OK else m[0].replace('<', '&lt;').replace('>', '&gt;'), parts[i])
    return ''.join(parts)

def clean_show_doc(md:str, subs) -> str:
    "show_doc's markdown as page content: source link fixed and styled, signature comments without markdown links, pseudo-tags escaped."
    m = re.search(r'\[source\]\((\S+?)\)\{[^}\n]*\}', md)
    link = ''
    if m:
        url = m[1]
        h = re.search(r'^#+\s+(\S+)', md, re.M)
        py = re.search(r'/blob/[^/]+/(.+?\.py)', url)
        if url.endswith('#LNone') and h and py:
            ln = _src_line(py[1], h[1])
            url = url[:-len('#LNone')] + (f'#L{ln}' if ln else '')
        link = url
        md = md.replace(m[0], '')
    h = re.search(r'^(#+)\s+(\S+)\s*$', md, re.M)
    if h and link:   # the source link sits in the heading's line, right-aligned (CSS .sd-source)
        md = md[:h.end()] + '\n' + md[h.end():]
        md = md.replace(h[0], f"{h[0]}\n\n<a class=\"sd-source\" href=\"{link}\">source</a>", 1)
    if h and link:
        py = re.search(r'/blob/[^/]+/(.+?\.py)', link)
        if py and _is_class(py[1], h[2]): md = re.sub(rf'^def {re.escape(h[2])}\(', f'class {h[2]}(', md, count=1, flags=re.M)
    md = re.sub(r'\A\s*---\s*\n', '', md)
    md = re.sub(r'(```\w*\n)(.*?)(```)', lambda f: f[1] + re.sub(r'\[([^\]\n]+)\]\([^)\s]+\)', r'\1', f[2]) + f[3], md, flags=re.S)
    md = _escape_pseudo_tags(md)
    return clean_text(md, subs).strip() + '\n'

def render_nb(exe, nb_path, subs=None, pages=None) -> nbformat.NotebookNode:
    "The executed notebook as its page: hidden cells dropped, show_doc output as markdown sections, outputs cleaned."
    subs = machine_paths() if subs is None else subs
    s = settings()
    cells = []
    for c in exe.cells:
        tags = set(c.get('metadata', {}).get('tags', []))
        if 'remove-cell' in tags: continue
        if c.cell_type == 'code' and 'show_doc' in tags:
            mds = [o['data']['text/markdown'] for o in c.get('outputs', []) if 'text/markdown' in o.get('data', {})]
            for md in mds: cells.append(nbformat.v4.new_markdown_cell(clean_show_doc(md, subs)))
            continue
        if c.cell_type == 'code':
            outs = []
            for o in c.get('outputs', []):
                if o.get('output_type') == 'stream':
                    o['text'] = clean_text(o['text'], subs)
                    if not o['text'].strip(): continue
                for k, v in list(o.get('data', {}).items()):
                    if k == 'text/html': o['data'][k] = _clean_html(v if isinstance(v, str) else ''.join(v), subs)
                    elif k in ('text/plain', 'text/markdown', 'text/latex'): o['data'][k] = clean_text(v if isinstance(v, str) else ''.join(v), subs)
                if 'data' in o and 'text/html' in o['data'] and not re.sub(r'<[^>]+>|\s', '', o['data']['text/html']) \
                        and '<img' not in o['data']['text/html']: continue      # only an emptied progress bar was left
                outs.append(o)
            c['outputs'] = outs
            c['metadata']['tags'] = sorted(tags - {'show_doc'})
        cells.append(c)
    # under the title: where the page comes from
    gh = s.get('git_url', '').rstrip('/') + '/blob/' + s.get('branch', 'main')
    nb_rel = Path(nb_path).relative_to(ROOT).as_posix()
    mod = re.search(r'^\s*#\|\s*default_exp\s+(\S+)', '\n'.join(''.join(c['source']) for c in json.loads(Path(nb_path).read_text())['cells']
                                                             if c['cell_type'] == 'code'), re.M)
    src = f'<p class="page-source">Source: <a href="{gh}/{nb_rel}">{nb_rel}</a>'
    if mod: src += f' · module <a href="{gh}/{s.get("lib_path", "cxr_lka")}/{mod[1].replace(".", "/")}.py"><code>{s.get("lib_name", "cxr_lka")}.{mod[1]}</code></a>'
    src += '</p>\n'
    for i, c in enumerate(cells):
        if c.cell_type == 'markdown' and re.search(r'^#\s', c.source, re.M):
            if Path(nb_path).name != 'index.ipynb': cells.insert(i + 1, nbformat.v4.new_markdown_cell(src))
            break
    if pages is not None:   # the home page carries the site's table of contents
        cells.append(nbformat.v4.new_markdown_cell('```{toctree}\n:hidden:\n:maxdepth: 1\n\n' + '\n'.join(pages) + '\n```\n'))
    nb = nbformat.v4.new_notebook(cells=cells, metadata={'kernelspec': exe.metadata.get('kernelspec', {}),
                                                         'language_info': {'name': 'python'}})
    for i, c in enumerate(nb.cells): c['id'] = f'c{i}'
    return nb

# ----------------------------------------------------------------------------------------------- build
def build(out='_site', force=False, jobs=2, only=None, log=print, sphinx=True) -> dict:
    "Prepare, execute (cached) and render every notebook; the Sphinx site in `out`. Returns the execution report."
    s = settings()
    skip = tuple(s.get('tst_flags', '').split())
    nbs = notebooks(only=only)
    t0 = time.time()
    prepared = [(p, prepare(p, skip)) for p in nbs]
    res = execute_all(prepared, force=force, jobs=jobs, log=log)
    t_exec = time.time() - t0
    out = Path(out).resolve()
    tag = hashlib.sha256(str(out).encode()).hexdigest()[:8]   # builds into other folders may run at the same time
    src, doctrees = PROC/f'site-src-{tag}', PROC/f'doctrees-{tag}'
    if src.exists(): shutil.rmtree(src)
    src.mkdir(parents=True)
    subs = machine_paths()
    pages = [page_name(p) for p in nbs if p.name != 'index.ipynb']
    for p in nbs:
        exe, rep = res[p.name]
        if exe is None:   # failed: the page shows what ran, so that the error is visible, but the build fails
            exe = prepare(p, skip)
        nbformat.write(render_nb(exe, p, subs, pages if p.name == 'index.ipynb' else None), str(src/f'{page_name(p)}.ipynb'))
    nbs_dir = ROOT/s.get('nbs_path', 'nbs')
    for f in nbs_dir.rglob('*'):   # images that markdown cells link to
        rel = f.relative_to(nbs_dir)
        if f.suffix.lower() in ('.png', '.jpg', '.jpeg', '.gif', '.svg') and not any(q.startswith(('_', '.')) for q in rel.parts):
            (src/rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(f, src/rel)
    report = {'notebooks': {p.name: {**res[p.name][1], 'page': page_name(p) + '.html'} for p in nbs},
              'execution_seconds': round(t_exec, 1)}
    rc = 0
    if sphinx:
        t1 = time.time()
        if out.exists(): shutil.rmtree(out)
        cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-q', '-W', '--keep-going', '-c', str(DOCS), '-d', str(doctrees),
               str(src), str(out)]
        log('sphinx-build: rendering ' + ', '.join(f'{page_name(p)}.html' for p in nbs))
        p = subprocess.run(cmd, cwd=ROOT)
        rc = p.returncode
        if rc == 0:   # every page is rewritten on each build, so Sphinx's intermediate files would only pile up
            for d in (src, doctrees): shutil.rmtree(d, ignore_errors=True)
        report['sphinx_seconds'] = round(time.time() - t1, 1)
        report['sphinx_returncode'] = rc
    failed = {k: v for k, v in report['notebooks'].items() if v['status'] == 'failed'}
    report['ok'] = not failed and rc == 0
    if out.exists() or sphinx:
        out.mkdir(parents=True, exist_ok=True)
        (out/'_execution.json').write_text(json.dumps(report, indent=1))
    for k, v in failed.items(): log(f"\nFAILED {k}\n{v['error']}", file=sys.stderr)
    if rc: log(f"sphinx-build failed (exit {rc}): see its messages above", file=sys.stderr)
    log(f"{'site in ' + str(out) if sphinx else 'executed'}: {len(nbs)} notebooks ({sum(v['status'] == 'executed' for v in report['notebooks'].values())} executed, "
        f"{sum(v['status'] == 'cached' for v in report['notebooks'].values())} cached, {len(failed)} failed) in {time.time() - t0:.0f} s")
    return report

# ----------------------------------------------------------------------------------------------- README
def write_readme(dest=ROOT/'README.md', force=False, log=print) -> Path:
    "README.md from nbs/index.ipynb as executed for the site (hidden cells out, outputs in, figures in README_files/)."
    from nbconvert import MarkdownExporter
    s = settings()
    nb_path = ROOT/s.get('nbs_path', 'nbs')/s.get('readme_nb', 'index.ipynb')
    res = execute_all([(nb_path, prepare(nb_path, tuple(s.get('tst_flags', '').split())))], force=force, jobs=1, log=log)
    exe, rep = res[nb_path.name]
    if exe is None: raise SystemExit(rep['error'])
    nb = render_nb(exe, nb_path)
    for c in nb.cells:
        if c.cell_type == 'code' and 'remove-input' in c.metadata.get('tags', []): c.source = ''
    nb.cells = [c for c in nb.cells if not (c.cell_type == 'code' and not c.source.strip() and not c.get('outputs'))]
    title = desc = ''
    first = nb.cells[0]
    m = re.match(r'\s*#\s+(.+)\n+(?:>\s*(.+))?', first.source)
    if m:
        title, desc = m[1].strip(), (m[2] or '').strip()
        first.source = first.source[m.end():]
        if not first.source.strip(): nb.cells.pop(0)
    dest = Path(dest)
    files_dir = dest.stem + '_files'
    md, resources = MarkdownExporter().from_notebook_node(nb, resources={'output_files_dir': files_dir})
    head = f"# {title}\n\n" + (f"> {desc}\n\n" if desc else '')
    head += f'<!-- WARNING: THIS FILE WAS AUTOGENERATED from {nb_path.relative_to(ROOT).as_posix()}! DO NOT EDIT! -->\n\n'
    for f in (dest.parent/files_dir).glob('output_*'): f.unlink()
    for name, data in resources.get('outputs', {}).items():
        (dest.parent/name).parent.mkdir(parents=True, exist_ok=True)
        (dest.parent/name).write_bytes(data)
    text = head + re.sub(r'\n{3,}', '\n\n', md).strip() + '\n'
    tmp = dest.with_name(dest.name + '.tmp'); tmp.write_text(text); os.replace(tmp, dest)
    return dest

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default=str(ROOT/'_site'), help='folder of the HTML site (replaced)')
    p.add_argument('--force', action='store_true', help='execute every notebook, even those the cache holds')
    p.add_argument('--jobs', type=int, default=int(os.environ.get('CXR_LKA_DOCS_JOBS', 2)), help='notebooks executed at once')
    p.add_argument('--only', nargs='*', help='only these notebooks (file names in nbs/)')
    p.add_argument('--readme', action='store_true', help='write README.md from nbs/index.ipynb instead of the site')
    p.add_argument('--dest', default=str(ROOT/'README.md'), help='where --readme writes')
    a = p.parse_args(argv)
    log = lambda *x, **k: print(*x, **k, flush=True)
    if a.readme: return log(f"wrote {write_readme(a.dest, force=a.force, log=log)}")
    rep = build(a.out, force=a.force, jobs=a.jobs, only=a.only, log=log)
    sys.exit(0 if rep['ok'] else 1)

if __name__ == '__main__': main()
