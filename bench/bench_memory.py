"""Peak memory of one forward+backward pass (default batch 64 at 224 px, the paper's setting).

CPU: peak resident set size (ru_maxrss) of a fresh subprocess per variant, and its rise over the
RSS after the model and batch were built. CUDA: torch.cuda.max_memory_allocated.
"""
import sys, json, subprocess, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import *

CHILD = r"""
import sys, json, resource, warnings
sys.path.insert(0, {bench!r})
warnings.filterwarnings('ignore')
import torch, torch.nn.functional as F
from _models import make
name, bs, size, cl, amp, dev = {args!r}
dev = torch.device(dev)
def rss_mb():
    with open('/proc/self/status') as f:
        for l in f:
            if l.startswith('VmRSS'): return int(l.split()[1]) / 1024
torch.manual_seed(0)
fmt = torch.channels_last if cl else torch.contiguous_format
m = make(name).to(dev).train().to(memory_format=fmt)
x = torch.randn(bs, 3, size, size, device=dev).to(memory_format=fmt); y = (torch.rand(bs, 14, device=dev) < .2).float()
before = rss_mb()
if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
with torch.autocast(dev.type, dtype=torch.float16, enabled=amp):
    loss = F.binary_cross_entropy_with_logits(m(x).float(), y)
loss.backward()
out = dict(rss_before_mb=before, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
if dev.type == 'cuda':
    torch.cuda.synchronize()
    out.update(cuda_peak_mb=torch.cuda.max_memory_allocated() / 2**20, cuda_base_mb=base / 2**20)
print('RESULT' + json.dumps(out))
"""

def measure(name, bs, size, cl, amp, dev):
    "Run one variant in a fresh interpreter and return its memory figures."
    code = CHILD.format(bench=str(Path(__file__).resolve().parent), args=(name, bs, size, cl, amp, dev))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    line = [l for l in p.stdout.splitlines() if l.startswith("RESULT")]
    if p.returncode or not line:
        raise RuntimeError(f"{name} (bs {bs}, {size} px) failed with exit code {p.returncode}: {p.stderr.strip()[-500:]}")
    return json.loads(line[0][6:])

def main():
    p = base_parser(__doc__)
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    a = p.parse_args()
    import torch
    dev = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    variants = {"cxr_lka LKA": ("lka", False, False), "paper layout LKA": ("paper", False, False),
                "plain VGG16-BN": ("plain", False, False), "cxr_lka LKA, channels_last": ("lka", True, False)}
    if dev == "cuda":
        variants.update({"cxr_lka LKA, AMP": ("lka", False, True), "cxr_lka LKA, AMP + channels_last": ("lka", True, True)})
    rows = []
    for k, (name, cl, amp) in variants.items():
        r = measure(name, a.bs, a.size, cl, amp, dev)
        row = {"variant": k, "peak RSS MB": r["peak_rss_mb"], "rise over model+batch MB": r["peak_rss_mb"] - r["rss_before_mb"]}
        if dev == "cuda": row["CUDA max_memory_allocated MB"] = r["cuda_peak_mb"]
        rows.append(row)
    print(header(f"Peak memory of forward+backward, batch {a.bs} at {a.size} px ({dev})", a))
    print("One fresh process per variant; random weights, BCE with logits, no optimizer state."
          + ("" if dev == "cuda" else " CUDA figures (torch.cuda.max_memory_allocated) need a GPU: not measured on this machine.") + "\n")
    print(md_table(rows))
    base = rows[0]["rise over model+batch MB"]
    print(f"\nLKA vs plain VGG16-BN activation memory: × {base / rows[2]['rise over model+batch MB']:.3g}")

if __name__ == "__main__": main()
