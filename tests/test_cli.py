"""The console scripts as real processes: --help, cxr-lka-predict end to end (bad files named on stderr,
exit code), cxr-lka-check on the real sample and on a damaged synthetic folder.

The installed console scripts are run (`.venv/bin/cxr-lka-predict`..., from settings.ini's
console_scripts via `make install`).
"""
import sys, json, shutil
from pathlib import Path
import pytest
from conftest import ROOT, BIN, run, script

COMMANDS = {'cxr-lka-predict': 'predict_cli', 'cxr-lka-check': 'check_cli', 'cxr-lka-cache': 'cache_cli',
            'cxr-lka-split': 'split_cli'}
SAMPLE = ROOT/'sample'/'nih14-sample'

def cli(name, *args, tmp=None, check=False, timeout=600, env=None):
    return run([script(name)] + [str(a) for a in args], check=check, timeout=timeout, env=env)

@pytest.mark.parametrize('name', list(COMMANDS))
def test_help(name, tmp_path):
    p = cli(name, '--help', tmp=tmp_path, check=True)
    assert p.stdout.startswith('usage:') and 'DATA_DIR' not in p.stdout.split('\n')[0][:6]
    want = {'cxr-lka-predict': ['--weights', '--cam', '--json', '--image_size', 'X-ray image files'],
            'cxr-lka-check': ['--strict', '--no-images', '--sample', 'data_dir'],
            'cxr-lka-cache': ['--size', '--out', 'data_dir'], 'cxr-lka-split': ['--protocol', '--seed', 'data_dir']}[name]
    for w in want: assert w in p.stdout, f"{name} --help lacks {w}:\n{p.stdout}"
    assert p.stderr == '', p.stderr

@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp('ckpt')
    run([sys.executable, '-c', "import torch; torch.manual_seed(0)\n"
         "from cxr_lka.models import build_model, save_checkpoint\n"
         f"save_checkpoint(build_model(pretrained=False), {str(d/'model.pth')!r})"], timeout=300)
    return d/'model.pth'

def test_predict(checkpoint, tmp_path):
    imgs = sorted((SAMPLE/'images_001'/'images').glob('*.png'))
    good = [imgs[0], SAMPLE/'images_001'/'images'/'00000100_000.png']          # grayscale 256², RGBA 1024²
    (tmp_path/'notes.png').write_text('not an image')
    args = [*good, tmp_path/'missing.png', tmp_path/'notes.png', '--weights', checkpoint, '--json',
            '--image_size', 32, '--device', 'cpu', '--cam', tmp_path/'cams', '--csv', tmp_path/'p.csv']
    p = cli('cxr-lka-predict', *args, tmp=tmp_path)
    assert p.returncode == 1, (p.returncode, p.stderr[-3000:])
    err = [l for l in p.stderr.splitlines() if l.startswith('cxr-lka-predict: error:')]
    assert len(err) == 2 and 'missing.png' in err[0] and 'notes.png' in err[1], p.stderr[-3000:]
    res = json.loads(p.stdout)
    assert [Path(r['image']).name for r in res['predictions']] == [g.name for g in good]
    for r in res['predictions']:
        assert len(r['probabilities']) == 14 and all(0 < v < 1 for v in r['probabilities'].values())
        assert Path(r['cam']).is_file()
    assert len((tmp_path/'p.csv').read_text().splitlines()) == 3

def test_predict_table_and_bad_weights(checkpoint, tmp_path):
    img = sorted((SAMPLE/'images_001'/'images').glob('*.png'))[0]
    p = cli('cxr-lka-predict', img, '--weights', checkpoint, '--image_size', 32, '--device', 'cpu', tmp=tmp_path, check=True)
    assert 'Pleural_Thickening' in p.stdout and img.name in p.stdout
    (tmp_path/'junk.pth').write_bytes(b'junk')
    p = cli('cxr-lka-predict', img, '--weights', tmp_path/'junk.pth', tmp=tmp_path)
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith('cxr-lka-predict: error:')
    assert 'junk.pth' in p.stderr.strip().splitlines()[-1]

def test_check_real_sample(tmp_path):
    p = cli('cxr-lka-check', SAMPLE, '--out', tmp_path/'pre.json', '--strict', '--n_workers', 2, tmp=tmp_path, check=True)
    r = json.loads((tmp_path/'pre.json').read_text())
    assert r['metadata']['rows'] == 123 and r['images']['status']['ok'] == 123 and r['errors'] == 0
    assert 'Atelectasis' in p.stdout

def test_check_damaged(tmp_path):
    d = tmp_path/'syn'
    run([sys.executable, '-c', "from cxr_lka.synthetic import make_synthetic_nih, add_faults\n"
         f"make_synthetic_nih({str(d)!r}, n_patients=20, image_size=32, seed=0)\n"
         f"add_faults({str(d)!r}, missing=1, corrupt=1, zero_byte=1, not_image=1, rgba=0, palette=0, sixteen_bit=0)"])
    faults = json.loads((d/'FAULTS.json').read_text())
    p = cli('cxr-lka-check', d, '--out', tmp_path/'pre.json', '--n_workers', 1, tmp=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]                      # warnings only: fine without --strict
    for f in ('missing', 'corrupt', 'zero_byte', 'not_image'): assert faults[f][0] in p.stdout, f
    p = cli('cxr-lka-check', d, '--out', tmp_path/'pre.json', '--n_workers', 1, '--strict', tmp=tmp_path)
    assert p.returncode == 1

@pytest.fixture(scope='module')
def small_data(tmp_path_factory):
    d = tmp_path_factory.mktemp('small')/'data'
    run([sys.executable, '-c', "from cxr_lka.synthetic import make_synthetic_nih\n"
         f"make_synthetic_nih({str(d)!r}, n_patients=10, image_size=32, seed=0)"], timeout=300)
    return d

def test_success_exits_zero_quietly(small_data, checkpoint, tmp_path):
    "A successful run exits 0 with nothing on stderr (no return value dumped by the console-script wrapper, no FutureWarning)."
    for name, *args in [('cxr-lka-cache', small_data, '--size', 16, '--out', tmp_path/'cache', '--n_workers', 0),
                        ('cxr-lka-split', small_data, '--out', tmp_path/'split'),
                        ('cxr-lka-check', small_data, '--out', tmp_path/'pre.json', '--n_workers', 1, '--strict'),
                        ('cxr-lka-predict', *sorted((small_data/'images_001'/'images').glob('*.png'))[:2], '--weights', checkpoint,
                         '--image_size', 32, '--device', 'cpu')]:
        p = cli(name, *args, tmp=tmp_path, env={'CXR_LKA_PROGRESS': 'none'})   # progress lines (cxr_lka.core.progress) go to stderr by design
        assert p.returncode == 0 and p.stderr == '', (name, p.returncode, p.stderr[-2000:])
    assert len((tmp_path/'split'/'split.csv').read_text().splitlines()) > 10

def test_failures_keep_exit_codes_without_warnings(small_data, tmp_path):
    "Failures keep their codes (2: unusable input, 1: --strict) and their stderr is the error line, no FutureWarning."
    p = cli('cxr-lka-cache', tmp_path/'nope', '--out', tmp_path/'c', tmp=tmp_path)
    assert p.returncode == 2 and p.stderr.splitlines() == [f"cxr-lka-cache: error: Data folder {tmp_path/'nope'} does not exist."], p.stderr
    p = cli('cxr-lka-split', small_data, '--out', tmp_path/'s', '--protocol', 'oficial', tmp=tmp_path)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and 'oficial' in p.stderr, p.stderr
    p = cli('cxr-lka-check', tmp_path/'nope', '--out', tmp_path/'pre.json', tmp=tmp_path)
    assert p.returncode == 2 and p.stderr == '' and 'does not exist' in p.stdout, p.stderr
    img = next((small_data/'images_001'/'images').glob('*.png')); img.unlink()          # one image missing
    p = cli('cxr-lka-cache', small_data, '--size', 16, '--out', tmp_path/'c', '--n_workers', 0, '--strict', tmp=tmp_path)
    assert p.returncode == 1 and p.stderr.splitlines()[-1] == 'cxr-lka-cache: error: 0 unreadable and 1 missing images (--strict)', p.stderr
    assert 'FutureWarning' not in p.stderr
    p = cli('cxr-lka-check', '--help', tmp=tmp_path, check=True)
    assert p.stderr == ''

def test_predict_folder_and_15_outputs(checkpoint, tmp_path):
    "A folder argument is expanded to its images; a 15-output checkpoint without names predicts under output_0..14."
    d = tmp_path/'imgs'; d.mkdir()
    for f in sorted((SAMPLE/'images_001'/'images').glob('*.png'))[:3]: shutil.copy(f, d/f.name)
    p = cli('cxr-lka-predict', d, '--weights', checkpoint, '--json', '--image_size', 32, '--device', 'cpu', tmp=tmp_path)
    assert p.returncode == 0 and p.stderr == f"cxr-lka-predict: note: {d}: 3 image files\n", p.stderr
    assert [Path(r['image']).name for r in json.loads(p.stdout)['predictions']] == sorted(f.name for f in d.iterdir())
    (tmp_path/'empty').mkdir()
    p = cli('cxr-lka-predict', tmp_path/'empty', '--weights', checkpoint, tmp=tmp_path)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and 'holds no image files' in p.stderr, p.stderr
    run([sys.executable, '-c', "from cxr_lka.models import build_model, save_checkpoint\n"
         f"save_checkpoint(build_model(pretrained=False, n_out=15), {str(tmp_path/'m15.pth')!r})"], timeout=300)
    p = cli('cxr-lka-predict', d/sorted(f.name for f in d.iterdir())[0], '--weights', tmp_path/'m15.pth', '--image_size', 32,
            '--device', 'cpu', '--csv', tmp_path/'p15.csv', tmp=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stderr.startswith('cxr-lka-predict: note: the model has 15 outputs') and len(p.stderr.splitlines()) == 1, p.stderr
    assert 'output_14' in p.stdout
    assert (tmp_path/'p15.csv').read_text().splitlines()[0].split(',')[-1] == 'output_14'

def test_predict_at_the_checkpoint_size(tmp_path):
    """A checkpoint written as `train_stage` writes it today (a model built without a size, the run config's
    image_size 96 in `extra`) is predicted at 96 px without --image_size: the probabilities are those of the
    same weights on 96-px inputs, computed in Python. A size that contradicts the checkpoint is refused."""
    img = sorted((SAMPLE/'images_001'/'images').glob('*.png'))[0]
    ref = run([sys.executable, '-c', "import json, torch; torch.manual_seed(0)\n"
               "from cxr_lka.models import build_model, save_checkpoint\n"
               "from cxr_lka.preprocess import xray_tensor\n"
               "m = build_model('resnet50', None).eval()\n"
               f"save_checkpoint(m, {str(tmp_path/'m96.pth')!r}, extra={{'config': {{'image_size': 96, 'arch': 'resnet50'}}}})\n"
               f"with torch.no_grad(): print(json.dumps(torch.sigmoid(m(xray_tensor({str(img)!r}, 96)[None]))[0].tolist()))"],
              timeout=300)
    want = json.loads(ref.stdout.strip().splitlines()[-1])
    p = cli('cxr-lka-predict', img, '--weights', tmp_path/'m96.pth', '--json', '--device', 'cpu', tmp=tmp_path)
    assert p.returncode == 0 and p.stderr == '', p.stderr[-3000:]
    res = json.loads(p.stdout)
    assert res['image_size'] == 96
    got = list(res['predictions'][0]['probabilities'].values())
    assert max(abs(a - b) for a, b in zip(got, want)) < 1e-5, (got, want)
    p = cli('cxr-lka-predict', img, '--weights', tmp_path/'m96.pth', '--image_size', 224, '--device', 'cpu', tmp=tmp_path)
    assert p.returncode == 2 and p.stderr.splitlines() == [
        "cxr-lka-predict: error: image_size=224 conflicts with the model's 96 px, the size it was trained at; "
        "leave image_size unset to use 96 px."], p.stderr

def test_bad_values_and_places_are_one_line(checkpoint, small_data, tmp_path):
    "Issue 14 item 7 as real processes: a bad option value, a device this machine lacks, a place that cannot be written: exit 2, one line on stderr, nothing on stdout."
    import torch
    img = sorted((SAMPLE/'images_001'/'images').glob('*.png'))[0]
    (tmp_path/'file').write_text('a file where a folder should be')
    cases = [('cxr-lka-predict', [img, '--weights', checkpoint, '--bs', 0], "--bs must be a whole number >= 1, not 0."),
             ('cxr-lka-predict', [img, '--weights', checkpoint, '--csv', tmp_path/'file'/'p.csv'], f"cannot write the CSV to {tmp_path/'file'/'p.csv'}: "),
             ('cxr-lka-cache', [small_data, '--size', 0, '--out', tmp_path/'c'], "--size must be a whole number >= 1, not 0.")]
    if not torch.cuda.is_available():
        cases.append(('cxr-lka-predict', [img, '--weights', checkpoint, '--device', 'cuda'], "--device 'cuda': CUDA is not available here"))
    for name, args, want in cases:
        p = cli(name, *args, tmp=tmp_path)
        assert (p.returncode, p.stdout, len(p.stderr.splitlines())) == (2, '', 1), (name, args, p.returncode, p.stdout[-500:], p.stderr[-2000:])
        assert p.stderr.startswith(f"{name}: error: {want}"), (name, p.stderr)

def test_same_file_name_in_two_folders(checkpoint, tmp_path):
    "Issue 14 item 4: a/scan.png and b/scan.png get two Grad-CAM files and two table columns, each keyed by its folder."
    imgs = sorted((SAMPLE/'images_001'/'images').glob('*.png'))[:2]
    for sub, src in zip('ab', imgs): (tmp_path/sub).mkdir(); shutil.copy(src, tmp_path/sub/'scan.png')
    p = cli('cxr-lka-predict', tmp_path/'a'/'scan.png', tmp_path/'b'/'scan.png', '--weights', checkpoint, '--image_size', 32,
            '--device', 'cpu', '--cam', tmp_path/'cams', '--cam_class', 'Mass', tmp=tmp_path)
    assert p.returncode == 0 and p.stderr == '', p.stderr[-3000:]
    assert sorted(f.name for f in (tmp_path/'cams').iterdir()) == ['a__scan_Mass.png', 'b__scan_Mass.png']
    header = p.stdout.splitlines()[0].split()
    assert header == ['a__scan.png', 'b__scan.png'], p.stdout
