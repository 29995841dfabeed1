"""Data path: images/s of the DataLoader's CPU side, original notebooks' path vs this project's cache.

(a) original: fastai DataBlock(ImageBlock, MultiCategoryBlock) reading the 1024² NIH PNGs, item Resize(224)
(b) cached:   cxr_lka.data.build_cache(size=224) once, then cxr_lka.data.nih_dataloaders(cache=...)
Same images, batch size and workers; timed round-robin in one run. 'CPU side' = read, decode, item
transforms, collate (+ byte->float); 'full CPU' adds the batch transforms (Flip, Rotate, Normalize),
which run on the GPU in training. Also: cache formats and decoders, per image.
"""
import os, sys, io, time, tempfile, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import *

import numpy as np, pandas as pd, torch
from PIL import Image

def sample_frame(data_dir:Path):
    "The real sample as a frame with paths, all rows 'train' except 4 'valid' (the loaders need both)."
    from cxr_lka.data import load_nih_metadata, find_images, attach_paths
    df = load_nih_metadata(data_dir/"Data_Entry_2017.csv")
    df = attach_paths(df, find_images(data_dir/"images"))
    df["split"] = "train"; df.loc[df.index[:4], "split"] = "valid"
    return df.reset_index(drop=True)

def original_dls(df, size, bs, workers, batch_tfms):
    "The original notebooks' path: ImageBlock opens each 1024² PNG with PIL, Resize(size) per item."
    from fastai.vision.all import (DataBlock, ImageBlock, MultiCategoryBlock, ColReader, ColSplitter,
                                   Resize, Flip, Rotate, Normalize, imagenet_stats)
    from cxr_lka.data import LABELS
    bt = [Flip(), Rotate(), Normalize.from_stats(*imagenet_stats)] if batch_tfms else None
    db = DataBlock(blocks=(ImageBlock, MultiCategoryBlock(encoded=True, vocab=LABELS)),
                   get_x=ColReader("path"), get_y=ColReader(LABELS),
                   splitter=ColSplitter_(df), item_tfms=Resize(size), batch_tfms=bt)
    return db.dataloaders(df, bs=bs, num_workers=workers, device="cpu")

def ColSplitter_(df):
    "Split on the frame's 'split' column (as cxr_lka.data does)."
    def _inner(items):
        s = items["split"].values
        return list(np.where(s == "train")[0]), list(np.where(s == "valid")[0])
    return _inner

def cached_dls(df, cache, size, bs, workers, batch_tfms, skip_resize=False):
    """This project's path: uint8 images from the cache, no decode. `skip_resize`: item_tfms=[] (the
    cached images already have the target size, so Resize(size) is the identity; checked below)."""
    from cxr_lka.data import nih_dataloaders
    return nih_dataloaders(df, cache=cache, image_size=size, bs=bs, augment=batch_tfms,
                           item_tfms=[] if skip_resize else None, num_workers=workers, device="cpu", seed=0)

def cpu_side(dl):
    "`dl` with only its byte->float batch transform kept (the CPU side of the loader)."
    from fastai.vision.all import IntToFloatTensor, Pipeline
    d = dl.new(shuffle=False)
    d.after_batch = Pipeline([IntToFloatTensor()])
    return d

def epoch(dl):
    "Iterate `dl` once; number of images seen."
    n = 0
    for xb, *_ in dl: n += len(xb)
    return n

def format_rows(paths, size, n):
    "Per-image read+decode speed of candidate cache formats and of the 1024² PNG decoders."
    tmp = Path(tempfile.mkdtemp(prefix="bench_fmt_"))
    imgs = [Image.open(p).convert("L").resize((size, size), Image.BILINEAR) for p in paths[:n]]
    arr = np.lib.format.open_memmap(tmp/"cache.npy", mode="w+", dtype=np.uint8, shape=(len(imgs), size, size))
    for i, im in enumerate(imgs):
        arr[i] = np.asarray(im); im.save(tmp/f"{i}.png"); im.save(tmp/f"{i}.jpg", quality=95)
    arr.flush(); del arr
    mm = np.load(tmp/"cache.npy", mmap_mode="r")
    fns = {
        f"uint8 memmap (.npy) {size}²": lambda: [Image.fromarray(np.array(mm[i])) for i in range(len(imgs))],
        f"PNG {size}², PIL":            lambda: [Image.open(tmp/f"{i}.png").convert("L") for i in range(len(imgs))],
        f"JPEG q95 {size}², PIL (lossy)": lambda: [Image.open(tmp/f"{i}.jpg").convert("L") for i in range(len(imgs))],
        "original PNG 1024², PIL":      lambda: [Image.open(p).convert("L") for p in paths[:n]],
    }
    try:
        import cv2
        cv2.setNumThreads(1)
        fns[f"PNG {size}², OpenCV"] = lambda: [cv2.imread(str(tmp/f"{i}.png"), cv2.IMREAD_GRAYSCALE) for i in range(len(imgs))]
        fns["original PNG 1024², OpenCV"] = lambda: [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths[:n]]
    except ImportError: pass
    speed = interleaved(fns, {k: len(imgs) for k in fns}, warmup=1, repeat=5, clock="cpu")
    base = speed["original PNG 1024², PIL"]
    sizes = {f"uint8 memmap (.npy) {size}²": size*size, f"PNG {size}², PIL": np.mean([os.path.getsize(tmp/f"{i}.png") for i in range(len(imgs))]),
             f"JPEG q95 {size}², PIL (lossy)": np.mean([os.path.getsize(tmp/f"{i}.jpg") for i in range(len(imgs))]),
             "original PNG 1024², PIL": np.mean([os.path.getsize(p) for p in paths[:n]])}
    sizes[f"PNG {size}², OpenCV"] = sizes[f"PNG {size}², PIL"]; sizes["original PNG 1024², OpenCV"] = sizes["original PNG 1024², PIL"]
    return [dict(format=k, **{"ms/image": 1000/v, "images/s": v, "× original PNG (PIL)": v/base,
                              "KB/image": sizes[k]/1024}) for k, v in speed.items()]

def main():
    p = base_parser(__doc__)
    p.add_argument("--data", default=None, help="Kaggle-layout folder with the 1024² PNGs (default: ../shared/data/nih14-sample or sample/nih14-sample)")
    p.add_argument("--bs", type=int, default=16)
    p.add_argument("--workers", default="0,2", help="comma-separated DataLoader worker counts")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeat", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads or 1)
    warnings.filterwarnings("ignore"); silence_progress()
    from cxr_lka.data import shared_data_dir, build_cache
    data = Path(a.data) if a.data else (shared_data_dir()/"nih14-sample" if shared_data_dir() else ROOT/"sample"/"nih14-sample")
    df = sample_frame(data)
    print(header("Data path: DataLoader images/s, original PNG path vs cached path", a))
    print(f"{len(df)} real 1024² NIH PNGs from `{os.path.relpath(data, ROOT)}`, batch size {a.bs}, image size {a.size}, "
          f"train loader (drop_last) on the CPU, 1 torch thread; best of {a.repeat} epochs after one warm-up epoch, timed round-robin. "
          f"clock cpu = images per CPU-second of this process (robust to other jobs on the machine); with workers, "
          f"wall-clock images/s (the workers' CPU time is not this process's).\n")

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        cache = build_cache(df, Path(tmp)/"cache", size=a.size, progress=False)
        build_s = time.perf_counter() - t
        rows = []
        for w in [int(x) for x in a.workers.split(",")]:
            dls = {"(a) original PNG": lambda bt: original_dls(df, a.size, a.bs, w, bt),
                   "(b) cxr_lka cache": lambda bt: cached_dls(df, cache, a.size, a.bs, w, bt)}
            loaders = {}
            for name, mk in dls.items():
                loaders[(name, "CPU side")] = cpu_side(mk(False).train)
                full = mk(True).train
                loaders[(name, "full CPU (+ Flip, Rotate, Normalize)")] = full.new(shuffle=False)
            n = {k: epoch(dl) for k, dl in loaders.items()}
            clock = a.clock if w == 0 else "wall"     # workers are other processes: their CPU time is not ours
            speed = interleaved({k: (lambda dl=dl: epoch(dl)) for k, dl in loaders.items()}, n, warmup=0, repeat=a.repeat, clock=clock)
            for what in ["CPU side", "full CPU (+ Flip, Rotate, Normalize)"]:
                sa, sb = [speed[(k, what)] for k in dls]
                rows.append({"pipeline": what, "workers": w, "clock": clock, "(a) original images/s": sa,
                             "(b) cache images/s": sb, "(b)/(a)": sb/sa})
        print(md_table(rows))
        xb = cpu_side(cached_dls(df, cache, a.size, a.bs, 0, False).valid).one_batch()[0]
        xc = cpu_side(cached_dls(df, cache, a.size, a.bs, 0, False, skip_resize=True).valid).one_batch()[0]
        print(f"\n(b) reads the cached {a.size}-px images with no item transform (cxr_lka.data's default since the "
              f"cache already holds the target size); batches equal to an explicit item_tfms=[]: {bool((xb == xc).all())}.")
        print(f"\nGoal: (b)/(a) >= 15 on the CPU side. Building the {a.size}-px cache of these {len(df)} images "
              f"took {build_s:.1f} s ({len(df)/build_s:.1f} images/s, a one-time cost).\n")
    print("#### Cache formats and decoders (one image at a time, one thread, CPU time)\n")
    print(md_table(format_rows(list(df["path"]), a.size, min(len(df), 60))))

if __name__ == "__main__": main()
