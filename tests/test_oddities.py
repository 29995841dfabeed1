"""A data folder holding every kind of entry besides good image files (`cxr_lka.oddities.add_oddities`: broken and
looping links, a pipe, a socket, a device, a folder named like an image, empty, truncated, text, decompression-bomb
and float files, hidden and renamed files, odd but readable formats, names with spaces, line breaks or bytes that
are not UTF-8, a TIFF, a link loop between folders, a deleted image), through the console scripts as real processes:

- `cxr-lka-check --strict` exits 1 without a traceback and names every odd entry, with and without `--fast`;
  without `--strict` it exits 0 (they are warnings);
- `cxr-lka-cache` on the same folder never crashes and leaves out exactly the images the check calls unreadable
  or missing (the same counts).

About 25 s (four short processes on a 52-image, 32-px synthetic folder).
"""
import sys, json
from conftest import run, script

MODULES = {'cxr-lka-check': 'cxr_lka.check'}   # run as `python -m` (the same function the console script calls; its entry point moved)

def _cli(name, *args):
    cmd = [sys.executable, '-m', MODULES[name]] if name in MODULES else [script(name)]
    return run([*cmd, *map(str, args)], check=False, timeout=600)

def _odd_folder(tmp_path):
    from cxr_lka.synthetic import make_synthetic_nih
    from cxr_lka.oddities import add_oddities
    d = make_synthetic_nih(tmp_path/'data', n_patients=20, image_size=32, seed=0)
    return d, add_oddities(d)

NOT_READABLE = ['broken_link', 'link_loop', 'fifo', 'socket', 'device', 'dir_named_image', 'zero_byte', 'truncated', 'text',
                'too_large', 'float', 'hidden', 'other_ext', 'missing', 'other_format', 'stray_broken_link', 'stray_fifo',
                'not_utf8_name']

def test_check_strict_names_every_oddity(tmp_path):
    from cxr_lka.images import show_name
    d, made = _odd_folder(tmp_path)
    for fast in ([], ['--fast']):
        p = _cli('cxr-lka-check', d, '--out', tmp_path/'pre.json', '--n_workers', 1, '--strict', *fast)
        assert p.returncode == 1, (fast, p.returncode, p.stdout[-3000:], p.stderr[-3000:])
        assert 'Traceback' not in p.stdout + p.stderr and p.stderr == '', p.stderr[-3000:]
        unnamed = [k for k in NOT_READABLE if made[k] is not None and show_name(made[k]) not in p.stdout]
        assert unnamed == [], (fast, unnamed, p.stdout[-4000:])
        r = json.loads((tmp_path/'pre.json').read_text())
        assert r['errors'] == 0 and r['warnings'] >= 10 and r['images']['missing'] == 4, r['problems']
        assert sum(r['images']['status'][s] for s in r['images']['status'] if s != 'ok') == 10 - (made['socket'] is None)
    p = _cli('cxr-lka-check', d, '--out', tmp_path/'pre.json', '--n_workers', 2)
    assert p.returncode == 0 and p.stderr == '', p.stderr[-3000:]

def test_cache_leaves_out_what_the_check_finds(tmp_path):
    from cxr_lka.check import check_data
    d, made = _odd_folder(tmp_path)
    i = check_data(d, n_workers=1, progress=False)['images']
    unreadable = sum(v for s, v in i['status'].items() if s != 'ok')
    p = _cli('cxr-lka-cache', d, '--size', 16, '--out', tmp_path/'cache', '--n_workers', 0)
    assert p.returncode == 0 and 'Traceback' not in p.stderr, p.stderr[-3000:]
    assert f"{unreadable} unreadable, {i['missing']} missing" in p.stdout, (unreadable, i['missing'], p.stdout)
    assert 'cxr-lka-check lists them all' in p.stderr, p.stderr
