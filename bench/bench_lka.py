"""Where the LKA overhead goes: forward+backward time of each part of the three LKA blocks next to
the VGG16-BN conv block each one follows, and exact rewrites of the slow part.

For each LKA site of the paper's model (after blocks 3, 4, 5) the script times, on the feature map
that site sees, the block's 3x3 convolutions (conv+BN+ReLU, as in vgg16_bn) and each LKA part:
depthwise 5x5, depthwise 7x7 dilation 3, pointwise 1x1, and the product with the input; then two
rewrites of the dilated depthwise convolution that compute the same function (checked here to float
precision): a "phase" decomposition (a dilated convolution with dilation d is d*d ordinary 7x7
convolutions on the d*d interleaved sub-grids of the input, stacked into the batch) and the same
kernel written as a dense 19x19 depthwise kernel with zeros. All timed round-robin in one run.
Default: batch 8 at 128 px (a CPU); --full: batch 64 at 224 px.
"""
import sys, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import *

import torch
import torch.nn.functional as F
from torch import nn

def phase_dilated(x, w, b, d:int):
    "Depthwise conv of `x` with kernel `w` at dilation `d`, 'same' padding, as d*d undilated convs."
    B, C, H, W = x.shape
    k = w.shape[-1]; p = d * (k // 2)
    Hq, Wq = -(-(H + 2*p) // d), -(-(W + 2*p) // d)
    xp = F.pad(x, (p, Wq*d - W - p, p, Hq*d - H - p))
    xp = xp.reshape(B, C, Hq, d, Wq, d).permute(3, 5, 0, 1, 2, 4).reshape(d*d*B, C, Hq, Wq)
    y = F.conv2d(xp, w, b, groups=C)
    Ho, Wo = y.shape[-2:]
    y = y.reshape(d, d, B, C, Ho, Wo).permute(2, 3, 4, 0, 5, 1).reshape(B, C, Ho*d, Wo*d)
    return y[:, :, :H, :W]

def dense_dilated(x, w, b, d:int):
    "The same convolution with the dilated kernel spelled out as a dense (d*(k-1)+1)² kernel of zeros."
    C, _, k, _ = w.shape
    n = d*(k - 1) + 1
    wd = w.new_zeros(C, 1, n, n); wd[:, :, ::d, ::d] = w
    return F.conv2d(x, wd, b, padding=n//2, groups=C)

def sites(size:int) -> list:
    "(name, channels, side, number of 3x3 convs in the block) of the three LKA sites of VGG16-BN at `size` px."
    return [("after block 3", 256, size // 4, 3), ("after block 4", 512, size // 8, 3), ("after block 5", 512, size // 16, 3)]

def fwd_bwd(f, x, params, device):
    "A closure: one forward and backward of `f` on `x` (gradients for x and params), synchronised on CUDA."
    def run():
        for q in [x, *params]: q.grad = None
        f(x).float().square().mean().backward()
        if device.type == "cuda": torch.cuda.synchronize()
    return run

def main():
    a = step_parser(__doc__).parse_args()
    dev, clock, bs, size = step_setup(a)
    warnings.filterwarnings("ignore")
    from cxr_lka.attention import LKA
    print(header(f"LKA overhead, part by part: forward+backward ms ({dev.type})", a))
    print(f"Batch {bs} at {size} px (the feature map each LKA site sees), best of {a.repeat} round-robin calls after "
          f"one warm-up; fp32, contiguous. ms per call ({'CPU time of this process, ' + str(torch.get_num_threads()) + ' thread(s)' if clock == 'cpu' else 'wall clock'}).\n")
    rows, tot = [], {"block": 0.0, "lka": 0.0, "dil": 0.0, "phase": 0.0}
    checks = []
    for name, C, s, nconv in sites(size):
        torch.manual_seed(0)
        x = torch.randn(bs, C, s, s, device=dev, requires_grad=True)
        convs = nn.Sequential(*[m for _ in range(nconv) for m in (nn.Conv2d(C, C, 3, padding=1), nn.BatchNorm2d(C), nn.ReLU())]).to(dev)
        lka = LKA(C).to(dev)
        c2 = lka.dw_conv2; d = c2.dilation[0]
        parts = {
            "VGG block (3× conv3x3+BN+ReLU)": (convs, list(convs.parameters())),
            "LKA whole": (lka, list(lka.parameters())),
            "dw 5x5": (lka.dw_conv1, list(lka.dw_conv1.parameters())),
            "dw 7x7 dil 3": (c2, list(c2.parameters())),
            "pw 1x1": (lka.pw_conv, list(lka.pw_conv.parameters())),
            "product x·attn": (lambda t: t * t.detach().flip(1), []),
            "dw 7x7 dil 3, phase rewrite": (lambda t: phase_dilated(t, c2.weight, c2.bias, d), list(c2.parameters())),
            "dw 7x7 dil 3, dense 19x19": (lambda t: dense_dilated(t, c2.weight, c2.bias, d), list(c2.parameters())),
        }
        with torch.no_grad():
            ref = c2(x)
            err = max((phase_dilated(x, c2.weight, c2.bias, d) - ref).abs().max().item(),
                      (dense_dilated(x, c2.weight, c2.bias, d) - ref).abs().max().item())
        checks.append(err)
        fns = {k: fwd_bwd(f, x, ps, dev) for k, (f, ps) in parts.items()}
        speed = interleaved(fns, {k: 1 for k in fns}, warmup=1, repeat=a.repeat, clock=clock)
        ms = {k: 1000 / v for k, v in speed.items()}
        for k, v in ms.items():
            rows.append({"site": f"{name}: {C}×{s}²", "part": k, "ms": v,
                         "× VGG block": v / ms["VGG block (3× conv3x3+BN+ReLU)"], "share of LKA": v / ms["LKA whole"]})
        tot["block"] += ms["VGG block (3× conv3x3+BN+ReLU)"]; tot["lka"] += ms["LKA whole"]
        tot["dil"] += ms["dw 7x7 dil 3"]; tot["phase"] += ms["dw 7x7 dil 3, phase rewrite"]
    print(md_table(rows, ["site", "part", "ms", "× VGG block", "share of LKA"]))
    print(f"\nThe rewrites equal the dilated convolution to {max(checks):.1e} (largest absolute difference of the "
          f"outputs over the three sites).\n")
    print(md_table([
        {"sum over the three sites": "LKA / VGG blocks 3-5", "value": tot["lka"] / tot["block"]},
        {"sum over the three sites": "dilated 7x7 / whole LKA", "value": tot["dil"] / tot["lka"]},
        {"sum over the three sites": "phase rewrite / dilated 7x7 (< 1: the rewrite is faster)", "value": tot["phase"] / tot["dil"]},
    ]))

if __name__ == "__main__": main()
