"""Inference: images/s of evaluation (cxr_lka.evaluate.predict) without and with TTA.

Every row predicted in order, as the test stage does; TTA = fastai Learner.tta (n augmented passes +
one plain pass). Images from the cache and, for comparison, decoded from the original PNGs (a test
run reads each image once, so it does not build a cache). All variants timed round-robin in one run.
Default: 128 px (a CPU); --full: 224 px, batch 64.
"""
import sys, tempfile, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import *
from bench_data import sample_frame

import torch

def main():
    p = base_parser(__doc__)
    p.add_argument("--data", default=None, help="Kaggle-layout folder with the PNGs (default: the real sample)")
    p.add_argument("--n", type=int, default=32, help="images predicted per call")
    p.add_argument("--bs", type=int, default=None)
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--n-tta", type=int, default=4)
    p.add_argument("--repeat", type=int, default=2)
    a = p.parse_args()
    clock = "wall" if torch.cuda.is_available() else a.clock
    if a.threads or clock == "cpu": torch.set_num_threads(a.threads or 1)
    warnings.filterwarnings("ignore"); silence_progress()
    from cxr_lka.data import shared_data_dir, build_cache, nih_dataloaders
    from cxr_lka.models import build_model
    from cxr_lka.evaluate import predict
    from fastai.learner import Learner
    from fastai.losses import BCEWithLogitsLossFlat
    bs = a.bs or (64 if a.full else 16); size = a.size or (224 if a.full else 128)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = Path(a.data) if a.data else (shared_data_dir()/"nih14-sample" if shared_data_dir() else ROOT/"sample"/"nih14-sample")
    df = sample_frame(data)
    rows = df.iloc[:a.n]
    torch.manual_seed(0)
    model = build_model(pretrained=False).to(dev).eval()
    with tempfile.TemporaryDirectory() as tmp:
        cache = build_cache(df, Path(tmp)/"cache", size=size, progress=False)
        learners = {}
        for name, c in [("cache", cache), ("PNG files", None)]:
            dls = nih_dataloaders(df, cache=c, image_size=size, bs=bs, num_workers=0, device=dev, seed=0)
            learners[name] = Learner(dls, model, loss_func=BCEWithLogitsLossFlat())
            learners[name].remove_cb(learners[name].progress) if hasattr(learners[name], "progress") else None
        fns = {
            "predict, cache": lambda: predict(learners["cache"], rows),
            f"predict + TTA (n={a.n_tta}), cache": lambda: predict(learners["cache"], rows, tta=True, n_tta=a.n_tta),
            "predict, PNG files": lambda: predict(learners["PNG files"], rows),
        }
        probs = predict(learners["cache"], rows)[0]
        assert len(probs) == len(rows), "predict must return one row per image"
        speed = interleaved(fns, {k: len(rows) for k in fns}, warmup=1, repeat=a.repeat, clock=clock)
    base = speed["predict, cache"]
    print(header(f"Inference: evaluation images/s without and with TTA ({dev.type})", a))
    print(f"{len(rows)} real NIH images at {size} px, batch {bs}, VGG16-BN-LKA (random weights), "
          f"best of {a.repeat} round-robin calls after one warm-up; "
          f"{'images per CPU-second, %d thread(s)' % torch.get_num_threads() if clock == 'cpu' else 'images per second (wall clock)'}. "
          f"{'Paper size.' if a.full else 'Small size for a CPU (--full: 224 px, batch 64).'}\n")
    print(md_table([{"variant": k, "images/s": v, "× predict, cache": v/base} for k, v in speed.items()]))
    print(f"\nTTA costs × {base / speed[f'predict + TTA (n={a.n_tta}), cache']:.2g} the time of plain prediction "
          f"({a.n_tta} augmented passes + 1 plain pass).")

if __name__ == "__main__": main()
