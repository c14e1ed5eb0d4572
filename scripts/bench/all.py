"""Run every benchmark and write one markdown report (``make bench`` -> results/bench.md).

Each benchmark runs in its own process (its own thread setting, no state carried over) with ``--json``; the report
starts with the commit, the machine and the exact commands, then each benchmark's table as it printed it. A failing
benchmark is reported as failed (its last output lines kept) and the others still run; the exit code is then 1.

    python -m scripts.bench.all                                   # full size (see docs/benchmarks.md for the time)
    python -m scripts.bench.all --official ~/src/gradinit         # with the official GradInit comparison
    python -m scripts.bench.all --smoke --only measure runner --out /tmp/bench.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.bench.timing import ROOT, machine

# name -> full-size arguments (the defaults of each script unless noted)
BENCHES = {
    "runner": [],
    "gradinit": [],
    "measure": [],
    "checkpoint": [],
    "augment": [],
    "transformer": [],
    "translation": [],
}


def write(args, sections: list[str], seconds: float) -> None:
    info = machine()
    header = [
        "# Benchmarks",
        "",
        f"Written by `python -m scripts.bench.all{' --smoke' if args.smoke else ''}` (`make bench`) at commit "
        f"{info['commit']} on host {info['host']}, {info['cpu']} ({info['cores']} cores), torch {info['torch']}; "
        f"{seconds:.0f} s in all. Each table says how it was measured; docs/benchmarks.md explains the methods and "
        "the targets.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header) + "\n" + "\n".join(sections))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench.md")
    ap.add_argument("--only", nargs="+", choices=list(BENCHES), default=list(BENCHES))
    ap.add_argument("--smoke", action="store_true", help="every benchmark at smoke size (checks that they run)")
    ap.add_argument("--official", type=Path, default=None, help="clone of zhuchen03/gradinit for the GradInit row")
    args = ap.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sections, failed, t_all = [], [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            extra = list(BENCHES[name]) + (["--smoke"] if args.smoke else [])
            if name == "gradinit" and args.official is not None:
                extra += ["--official", str(args.official)]
            cmd = [sys.executable, "-m", f"scripts.bench.{name}", *extra, "--json", f"{tmp}/{name}.json"]
            shown = "python -m " + " ".join(cmd[2:-2])
            print(f"[bench] {shown}", flush=True)
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            if proc.returncode == 0:
                table = proc.stdout[proc.stdout.find("### ") :] if "### " in proc.stdout else proc.stdout
                sections.append(f"## {name}\n\n`{shown}` ({seconds:.0f} s)\n\n{table.strip()}\n")
                json.loads(Path(f"{tmp}/{name}.json").read_text())  # it wrote its JSON
            else:
                failed.append(name)
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                sections.append(f"## {name}\n\n`{shown}` FAILED (exit {proc.returncode})\n\n```\n{tail}\n```\n")
            print(sections[-1], flush=True)
            write(args, sections, time.perf_counter() - t_all)  # after each benchmark: a stopped run keeps its tables
    print(f"wrote {args.out}; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
