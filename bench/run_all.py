"""Run every benchmark and rewrite its table in bench/README.md (between its BEGIN/END markers).

    python bench/run_all.py                 # all, small CPU settings
    python bench/run_all.py --full          # paper settings (batch 64 at 224 px), for a GPU machine
    python bench/run_all.py --only data train
    python bench/run_all.py --sync-docs     # only copy the tables into the docs page (nbs/14_benchmarks.ipynb)
Each section records the machine (CPU model, cores, torch, GPU), the git commit and the command.
"""
import argparse, re, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = {"data": "bench_data.py", "train": "bench_train.py", "infer": "bench_infer.py", "memory": "bench_memory.py", "lka": "bench_lka.py",
           "compare": "bench_compare.py",
           "subgroups": "bench_subgroups.py"}

def run(name:str, extra:list) -> str:
    "Run one benchmark script; its markdown output (stdout)."
    t = time.time()
    p = subprocess.run([sys.executable, str(HERE/SCRIPTS[name]), *extra], capture_output=True, text=True, cwd=HERE.parent)
    if p.returncode: raise SystemExit(f"{SCRIPTS[name]} failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    out = p.stdout[p.stdout.find("###"):].replace("█", "")          # stray progress-bar glyphs
    out = re.sub(r"\n{3,}", "\n\n", out).strip()
    print(f"{SCRIPTS[name]}: {time.time() - t:.0f} s", file=sys.stderr)
    return out

def replace_section(readme:str, name:str, body:str) -> str:
    "Put `body` between the markers of section `name` (appended at the end when the markers are missing)."
    b, e = f"<!-- BEGIN bench:{name} -->", f"<!-- END bench:{name} -->"
    block = f"{b}\n{body}\n{e}"
    if b in readme and e in readme: return re.sub(re.escape(b) + ".*?" + re.escape(e), lambda m: block, readme, flags=re.S)
    return readme.rstrip() + "\n\n" + block + "\n"

DOCS_NB = HERE.parent/"nbs"/"14_benchmarks.ipynb"
DOCS_FROM = "## Conditions of the tables below"

def sync_docs_page(readme:Path, nb_path:Path=DOCS_NB) -> bool:
    """Copy bench/README.md (from DOCS_FROM on) into the last markdown cell of the docs page notebook,
    so that the docs show the same tables (tests/test_docs.py checks they agree). True if it changed."""
    import json
    text = readme.read_text()
    if DOCS_FROM not in text: raise SystemExit(f"{readme}: no {DOCS_FROM!r} heading to copy into the docs page")
    body = text[text.index(DOCS_FROM):].strip()
    nb = json.loads(nb_path.read_text())
    cell = [c for c in nb["cells"] if c["cell_type"] == "markdown"][-1]
    new = body.splitlines(keepends=True)
    if cell["source"] == new: return False
    cell["source"] = new
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return True

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="paper settings for bench_train/bench_infer/bench_lka (batch 64 at 224 px)")
    p.add_argument("--only", nargs="*", choices=list(SCRIPTS), default=list(SCRIPTS))
    p.add_argument("--readme", default=str(HERE/"README.md"))
    p.add_argument("--sync-docs", action="store_true", help=f"only copy the tables into {DOCS_NB.relative_to(HERE.parent)}")
    a = p.parse_args()
    readme = Path(a.readme)
    if a.sync_docs: return print(f"{DOCS_NB.name}: {'updated' if sync_docs_page(readme) else 'already in sync'}")
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    import torch
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    for name in a.only:
        extra = ["--full"] if a.full and name in ("train", "infer", "lka") else []
        out = run(name, extra)
        print(out + "\n")
        text = replace_section(text, f"{name}-{dev}" + ("-full" if extra else ""), out)
        readme.write_text(text)     # after each benchmark, so a long run keeps what it measured
    if readme.resolve() == (HERE/"README.md").resolve() and DOCS_NB.exists(): sync_docs_page(readme)

if __name__ == "__main__": main()
