"""Train step: images/s of one optimizer step (forward, BCE, backward, Adam step).

This project's VGG16-BN-LKA vs the paper's module layout at equal settings, channels_last on/off
(CPU and CUDA), AMP on/off (CUDA only), the LKA model vs plain VGG16-BN (the attention's overhead),
and fastai's Adam vs torch's foreach/fused Adam. All variants timed round-robin in one run.
Default: batch 8 at 128 px (a CPU); --full: batch 64 at 224 px (what the paper trains with).
"""
import sys, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import *
from _models import make, NAMES

import torch
import torch.nn.functional as F

def make_step(model_name:str, device, bs:int, size:int, channels_last:bool=False, amp:bool=False, opt:str="torch"):
    "A closure running `steps` optimizer steps of a fresh model on a fixed random batch."
    torch.manual_seed(0)
    model = make(model_name).to(device).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(bs, 3, size, size, device=device).to(memory_format=fmt)
    y = (torch.rand(bs, 14, device=device) < 0.2).float()
    if opt == "fastai":
        from fastai.optimizer import Adam
        o = Adam(list(model.parameters()), lr=1e-4, wd=1e-3)
    else:
        o = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-3, fused=(opt == "fused") or None,
                             foreach=None if opt == "fused" else True)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    def run(steps):
        for _ in range(steps):
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                loss = F.binary_cross_entropy_with_logits(model(x).float(), y)
            scaler.scale(loss).backward()
            scaler.step(o); scaler.update(); o.zero_grad()
        if device.type == "cuda": torch.cuda.synchronize()
    return run

def main():
    p = step_parser(__doc__, repeat=5)
    p.add_argument("--steps", type=int, default=1, help="optimizer steps per timed call")
    a = p.parse_args()
    dev, clock, bs, size = step_setup(a)
    warnings.filterwarnings("ignore"); silence_progress()
    variants = {  # label -> (model, channels_last, amp, optimizer)
        "cxr_lka LKA": ("lka", False, False, "torch"),
        "paper layout LKA": ("paper", False, False, "torch"),
        "plain VGG16-BN": ("plain", False, False, "torch"),
        "cxr_lka LKA, channels_last": ("lka", True, False, "torch"),
        "paper layout LKA, channels_last": ("paper", True, False, "torch"),
        "plain VGG16-BN, channels_last": ("plain", True, False, "torch"),
        "cxr_lka LKA, fastai Adam": ("lka", False, False, "fastai"),
        "cxr_lka LKA, fused Adam": ("lka", False, False, "fused"),
    }
    if dev.type == "cuda":
        variants.update({
            "cxr_lka LKA, AMP": ("lka", False, True, "torch"),
            "cxr_lka LKA, AMP + channels_last": ("lka", True, True, "torch"),
            "paper layout LKA, AMP": ("paper", False, True, "torch"),
            "plain VGG16-BN, AMP + channels_last": ("plain", True, True, "torch"),
            "cxr_lka LKA, AMP + channels_last + fused Adam": ("lka", True, True, "fused"),
        })
    fns = {}
    for k, v in variants.items():
        try: fns[k] = (lambda f=make_step(*v[:1], dev, bs, size, *v[1:]): f(a.steps))
        except (RuntimeError, TypeError) as e: print(f"skipped {k}: {str(e).splitlines()[0]}")
    speed = interleaved(fns, {k: bs*a.steps for k in fns}, warmup=1, repeat=a.repeat, clock=clock)
    base = speed["cxr_lka LKA"]
    print(header(f"Train step: images/s of one optimizer step ({dev.type})", a))
    unit = f"images per CPU-second, {torch.get_num_threads()} thread(s)" if clock == "cpu" else "images per second (wall clock)"
    print(f"Batch {bs} at {size} px, {a.steps} steps per timed call, best of {a.repeat} round-robin calls "
          f"after one warm-up; random weights and inputs, BCE with logits, Adam. "
          f"{'Paper settings.' if a.full else 'Small settings for a CPU (--full: batch 64 at 224 px).'} Speed unit: {unit}.\n")
    print(md_table([{"variant": k, "images/s": v, "× cxr_lka LKA": v/base} for k, v in speed.items()]))
    r = lambda n, d: speed[n]/speed[d] if n in speed and d in speed else float("nan")
    summary = [
        {"ratio": "cxr_lka / paper layout (contiguous)", "value": r("cxr_lka LKA", "paper layout LKA"), "goal": ">= 1.0"},
        {"ratio": "cxr_lka / paper layout (channels_last)", "value": r("cxr_lka LKA, channels_last", "paper layout LKA, channels_last"), "goal": ">= 1.0"},
        {"ratio": "channels_last / contiguous (cxr_lka)", "value": r("cxr_lka LKA, channels_last", "cxr_lka LKA"), "goal": "> 1 means use it"},
        {"ratio": "LKA overhead vs plain VGG16-BN: 1 - LKA/plain", "value": 1 - r("cxr_lka LKA", "plain VGG16-BN"), "goal": "<= 0.10"},
        {"ratio": "LKA overhead, channels_last: 1 - LKA/plain", "value": 1 - r("cxr_lka LKA, channels_last", "plain VGG16-BN, channels_last"), "goal": "<= 0.10"},
        {"ratio": "fused Adam / foreach Adam", "value": r("cxr_lka LKA, fused Adam", "cxr_lka LKA"), "goal": "> 1 means use it"},
        {"ratio": "fastai Adam / torch foreach Adam", "value": r("cxr_lka LKA, fastai Adam", "cxr_lka LKA"), "goal": "informative"},
    ]
    if dev.type == "cuda":
        summary.append({"ratio": "AMP / fp32 (cxr_lka)", "value": r("cxr_lka LKA, AMP", "cxr_lka LKA"), "goal": "> 1"})
        summary.append({"ratio": "LKA overhead, AMP + channels_last: 1 - LKA/plain", "value": 1 - r("cxr_lka LKA, AMP + channels_last", "plain VGG16-BN, AMP + channels_last"), "goal": "<= 0.10"})
        summary.append({"ratio": "AMP + channels_last / AMP (cxr_lka)", "value": r("cxr_lka LKA, AMP + channels_last", "cxr_lka LKA, AMP"), "goal": "> 1 means use it"})
    else:
        print("\nAMP rows need CUDA: not measured on this machine (the CUDA branch runs them when a GPU is present).")
    print(); print(md_table(summary))

if __name__ == "__main__": main()
