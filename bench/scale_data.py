"""Data at scale: generate, import and prepare 1M / 10M / 100M interactions; time and peak memory of each step.

    python bench/scale_data.py --size 10M [--size 100M] [--work /tmp/scale] [--shares 4] [--no-whole]

For each size: the scale generator writes the CSVs (`python -m personalize_torch.data.scale_synthetic`,
skipped when the folder already holds them), the Interactions CSV is imported into a dataset group
(`python -m personalize_torch.data.import_jobs`, FULL), an INCREMENTAL import of 1% more rows follows, and
the group is loaded and prepared for training (PreparedData with a leave-one-out split, what train.py does
before fitting), whole (unless --no-whole) and as one share of --shares (a process's part when that many
processes train under torchrun). Each step runs in its
own process, so the peak resident memory reported is that step's alone. Prints one markdown row per step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Runs a step in a child process and prints its peak RSS (kB) as the last line.
_CHILD = """
import resource, sys, runpy
sys.argv = {argv!r}
try:
    runpy.run_module({module!r}, run_name="__main__")
finally:
    print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
"""

_PREPARE = """
import resource, sys, time
from personalize_torch.data.import_jobs import load_group_directory
from personalize_torch.data.prepared import PreparedData
share = None if {share!r} is None else tuple({share!r})
t = time.perf_counter()
group = load_group_directory({group!r}, share=share)
loaded = time.perf_counter() - t
data = PreparedData(group, split="leave_one_out")
data.describe()
print("ROWS", len(group.interactions), "USERS", data.n_users - 1, "ITEMS", data.n_items - 1, "LOAD_S", round(loaded, 1))
print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
"""


def _run(code: str) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"step failed:\n{done.stderr[-3000:]}")
    peak = next(int(line.split()[1]) for line in reversed(done.stdout.splitlines()) if line.startswith("PEAK_RSS_KB"))
    return seconds, peak, done.stdout


def _module(module: str, argv: list[str]) -> tuple[float, int, str]:
    return _run(_CHILD.format(argv=[module, *argv], module=module))


def _row(size: str, step: str, seconds: float, peak_kb: int, note: str = "") -> None:
    print(f"| {size} | {step} | {seconds:.1f} | {peak_kb / 2**20:.2f} | {note} |", flush=True)


def bench(size: str, work: Path, shares: int, whole: bool) -> None:
    data = work / f"data-{size}"
    if not (data / "interactions.csv").exists():
        seconds, peak, _ = _module("personalize_torch.data.scale_synthetic",
                                   ["--out", str(data), "--size", size, "--with-items", "--quiet"])
        _row(size, "generate CSVs", seconds, peak)
    truth = json.loads((data / "truth.json").read_text())
    csv_bytes = (data / "interactions.csv").stat().st_size
    group = work / f"group-{size}"
    subprocess.run(["rm", "-rf", str(group)], check=True)
    seconds, peak, out = _module("personalize_torch.data.import_jobs",
                                 ["--group", str(group), "--dataset", "Interactions", "--file",
                                  str(data / "interactions.csv"), "--schema", str(data / "interactions.schema.json")])
    _row(size, "import Interactions CSV (FULL)", seconds, peak,
         f"{csv_bytes / 2**30:.2f} GB CSV; {out.splitlines()[0]}")
    extra = work / f"extra-{size}.csv"
    with open(data / "interactions.csv") as src, open(extra, "w") as dst:   # 1% of the rows, as new events
        header = src.readline()
        dst.write(header)
        n = int(truth["params"]["n_interactions"] * 0.01) if "params" in truth else 10_000
        for _ in range(n):
            user, item, ts, kind = src.readline().rstrip("\n").split(",")
            dst.write(f"{user},{item},{int(ts) + 10**6},{kind}\n")
    seconds, peak, out = _module("personalize_torch.data.import_jobs",
                                 ["--group", str(group), "--dataset", "Interactions", "--file", str(extra),
                                  "--mode", "INCREMENTAL"])
    _row(size, "import 1% more (INCREMENTAL)", seconds, peak, out.splitlines()[0])
    for share in ([None] if whole else []) + [[0, shares]]:
        seconds, peak, out = _run(_PREPARE.format(group=str(group), share=share))
        what = "load + prepare (leave-one-out)" if share is None else f"load + prepare, share 0 of {shares}"
        _row(size, what, seconds, peak, " ".join(out.splitlines()[0].split()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", action="append", required=True, help="1M, 10M or 100M (repeatable)")
    p.add_argument("--work", default="/tmp/personalize-scale", help="folder for the data and groups")
    p.add_argument("--shares", type=int, default=2, help="prepare one share of this many (default 2)")
    p.add_argument("--no-whole", action="store_true", help="do not prepare the whole group (memory)")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print("| interactions | step | seconds | peak RSS (GB) | notes |\n|---|---|---|---|---|")
    for size in args.size:
        bench(size, work, args.shares, not args.no_whole)


if __name__ == "__main__":
    main()
