"Shared helpers of the bench/ scripts: machine description, timing, markdown tables."
import os, sys, time, platform, subprocess, argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))

def cpu_model() -> str:
    "The CPU's model name (from /proc/cpuinfo on Linux, else platform.processor())."
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"): return line.split(":", 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()

def machine() -> dict:
    "CPU model, usable cores, torch version and GPU name (None without CUDA)."
    import torch
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return dict(cpu=cpu_model(), cores=cores, torch=torch.__version__, gpu=gpu,
                python=platform.python_version())

def git_commit() -> str:
    "Short commit of the working tree (+ '-dirty' when it has uncommitted changes)."
    try:
        c = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        d = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return c + ("-dirty" if d else "") if c else "unknown"
    except OSError: return "unknown"

def machine_line() -> str:
    m = machine()
    return (f"CPU: {m['cpu']} ({m['cores']} cores usable), torch {m['torch']}, python {m['python']}, "
            f"GPU: {m['gpu'] or 'none'}; commit {git_commit()}")

def md_table(rows:list, cols:list=None) -> str:
    "A markdown table from a list of dicts (floats rounded to 3 significant digits)."
    cols = cols or list(rows[0])
    def fmt(v):
        if isinstance(v, float): return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out)

def timed(fn, n_items:int, warmup:int=1, repeat:int=3) -> float:
    "Best items/s of `repeat` calls of `fn` (each processing `n_items`), after `warmup` untimed calls."
    for _ in range(warmup): fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t)
    return n_items / best

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}

def interleaved(fns:dict, n_items:dict, warmup:int=1, repeat:int=3, clock:str="wall") -> dict:
    """Best items/s of each named callable, timed round-robin (A, B, A, B, ...) so that load from
    other processes on a shared machine hits every variant alike; the ratios stay meaningful.
    clock='cpu' counts this process's CPU time (all its threads): on a machine shared with other
    jobs it measures the work done rather than the share of the cores this process got; it misses
    work done in other processes (DataLoader workers), so use 'wall' there."""
    tick = CLOCKS[clock]
    for f in fns.values():
        for _ in range(warmup): f()
    best = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            t = tick(); f(); best[k] = min(best[k], tick() - t)
    return {k: n_items[k] / best[k] for k in fns}

def header(title:str, args) -> str:
    "The lines printed above a table: what, where, how it was called."
    cmd = "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    return f"### {title}\n\n{machine_line()}\n\nCommand: `{cmd}`\n"

def base_parser(desc:str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=desc)
    p.add_argument("--full", action="store_true", help="paper-sized settings (batch 64 at 224 px); slow on a CPU")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: 1 with --clock cpu, else torch's own)")
    p.add_argument("--clock", choices=list(CLOCKS), default="cpu",
                   help="cpu: this process's CPU time (robust on a shared machine; default); wall: elapsed time")
    return p

def silence_progress():
    "No fastprogress bars in a benchmark's output (it is a markdown report)."
    try:
        import fastprogress.fastprogress as fp
        fp.NO_BAR = True
    except ImportError: pass

def step_parser(desc:str, repeat:int=3) -> argparse.ArgumentParser:
    "`base_parser` plus the options of the scripts that time model steps: --bs, --size, --repeat, --device."
    p = base_parser(desc)
    p.add_argument("--bs", type=int, default=None, help="batch size (default 8; --full: 64)")
    p.add_argument("--size", type=int, default=None, help="image side (default 128; --full: 224)")
    p.add_argument("--repeat", type=int, default=repeat, help="timed calls per variant (best is kept)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    return p

def step_setup(a) -> tuple:
    """(device, clock, batch size, image size) from `step_parser`'s arguments. CUDA work is asynchronous:
    timed by the wall clock after a synchronize; on a CPU with clock 'cpu', one thread (or --threads)."""
    import torch
    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    clock = "wall" if dev.type == "cuda" else a.clock
    if a.threads or clock == "cpu": torch.set_num_threads(a.threads or 1)
    if dev.type == "cuda": torch.backends.cudnn.benchmark = True
    return dev, clock, a.bs or (64 if a.full else 8), a.size or (224 if a.full else 128)
