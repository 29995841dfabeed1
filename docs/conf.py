"""Sphinx configuration of the cxr_lka docs site (built by docs/build.py; `make docs`).

Sphinx + MyST-NB render the notebooks that docs/build.py has executed and cleaned (execution is off here);
sphinx-book-theme gives navigation, search, the on-page contents, prev/next and the phone layout. MathJax
comes from the django-static-mathjax package and is served from the site itself: nothing is fetched from a CDN.
"""
import shutil, importlib.util
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_cfg = ConfigParser(interpolation=None); _cfg.read(ROOT/'settings.ini'); _s = _cfg['DEFAULT']

project = _s['lib_name']
author = _s['author']
copyright = _s['copyright']
release = version = _s['version']

extensions = ['myst_nb', 'sphinx_copybutton']
exclude_patterns = ['_build', '**.ipynb_checkpoints', 'jupyter_execute']
master_doc = 'index'

# ------------------------------------------------------------------ notebooks (MyST-NB)
nb_execution_mode = 'off'                    # docs/build.py executed them (once, with jupyter-cache)
nb_output_stderr = 'remove'                  # warnings and logs of the build machine are not page content
nb_merge_streams = True
nb_render_markdown_format = 'myst'
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence', 'deflist', 'html_image']
myst_heading_anchors = 3
myst_dmath_double_inline = True
suppress_warnings = ['mystnb.unknown_mime_type', 'misc.highlighting_failure']   # '!pip' lines in python examples highlight in relaxed mode

# ------------------------------------------------------------------ math, served locally
_mj = importlib.util.find_spec('mathjax')
_es5 = Path(list(_mj.submodule_search_locations)[0])/'static'/'mathjax'/'es5' if _mj else None
if not (_es5 and (_es5/'tex-svg.js').exists()):
    raise RuntimeError("MathJax not found: pip install django-static-mathjax (in dev_requirements; `make install`)")
_stage = ROOT/'_proc'/'static-mathjax'
if not (_stage/'mathjax'/'tex-svg.js').exists():   # the one file MathJax needs (SVG output: no fonts), and its TeX extensions
    (_stage/'mathjax').mkdir(parents=True, exist_ok=True)
    shutil.copytree(_es5/'input'/'tex'/'extensions', _stage/'mathjax'/'input'/'tex'/'extensions', dirs_exist_ok=True)
    shutil.copy2(_es5/'tex-svg.js', _stage/'mathjax'/'tex-svg.js')
mathjax_path = 'mathjax/tex-svg.js'
mathjax3_config = {'options': {'enableMenu': False}, 'svg': {'fontCache': 'global'}}

# ------------------------------------------------------------------ HTML
html_theme = 'sphinx_book_theme'
html_title = project
html_static_path = [str(ROOT/'docs'/'_static'), str(_stage)]
html_css_files = ['cxr_lka.css']
html_copy_source = False
html_show_sourcelink = False
html_show_sphinx = False
html_baseurl = _s.get('doc_host', '').rstrip('/') + _s.get('doc_baseurl', '') + '/'
html_theme_options = {
    'repository_url': _s['git_url'],
    'repository_branch': _s.get('branch', 'main'),
    'path_to_docs': _s.get('nbs_path', 'nbs'),
    'use_repository_button': True,
    'use_issues_button': True,
    'use_download_button': False,
    'use_fullscreen_button': False,
    'home_page_in_toc': True,
    'show_toc_level': 2,
    'show_navbar_depth': 1,
    'navigation_with_keys': False,
    'logo': {'text': project, 'alt_text': f'{project} - home'},
    'extra_footer': (
        '<p>cxr_lka is released under the <a href="https://github.com/cxr-lka/cxr_lka/blob/main/LICENSE">Apache License 2.0</a>. '
        'The chest X-ray images bundled in <code>sample/</code> are from NIH ChestX-ray14, provided by the '
        '<b>NIH Clinical Center</b> (<a href="https://nihcc.app.box.com/v/ChestXray-NIHCC">nihcc.app.box.com/v/ChestXray-NIHCC</a>); '
        'cite Wang et al., "ChestX-ray8: Hospital-scale Chest X-ray Database and Benchmarks on Weakly-Supervised '
        'Classification and Localization of Common Thorax Diseases", IEEE CVPR 2017 (see '
        '<a href="https://github.com/cxr-lka/cxr_lka/blob/main/NOTICE">NOTICE</a>).</p>'),
}
html_context = {'default_mode': 'light'}
html_favicon = str(ROOT/'docs'/'_static'/'favicon.svg')
html_logo = str(ROOT/'docs'/'_static'/'favicon.svg')
html_sidebars = {'**': ['navbar-logo.html', 'icon-links.html', 'sbt-sidebar-nav.html']}   # search sits in the header
