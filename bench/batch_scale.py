"""Users per second of a batch inference job (`python -m personalize_torch.batch`) with 1 and 2 workers.

    python bench/batch_scale.py [N_USERS] [--solution DIR] [--workers 1 2] [--num-results 25] [--keep DIR]

Writes N_USERS {"userId": ...} lines (the solution version's users, in turn, so every line has a history to
score), runs the command once per worker count in a fresh process (so the figure includes starting Python,
loading the solution version and joining the chunks, as a user's job does) and prints one markdown row each.
Every run's output is checked to be byte-identical to the first. Without --solution it first trains
User-Personalization briefly on the built-in demo data (--demo-users, --demo-items).
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

from personalize_torch.serving.jobs.jsonlines_job import scan_input

REPO = Path(__file__).resolve().parents[1]


def train_demo_solution(out: Path, n_users: int, n_items: int) -> str:
    from personalize_torch.training import compose_config, train

    cfg = compose_config([f"data.demo.n_users={n_users}", f"data.demo.n_items={n_items}", "logger=none",
                          "recipe=user_personalization", "trainer.max_epochs=1",
                          "trainer.enable_progress_bar=false"], output_dir=out)
    return train(cfg)["solution"]


def write_users(path: Path, solution: str, n: int) -> None:
    from personalize_torch.solution_version import load_solution_version

    ids = list(load_solution_version(solution).user_vocab.ids)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"userId": ids[i % len(ids)]}) + "\n" for i in range(n))


def run_job(solution: str, src: Path, out: Path, workers: int, args: argparse.Namespace) -> float:
    cmd = [sys.executable, "-m", "personalize_torch.batch", "--solution", solution, "--input", str(src),
           "--output", str(out), "--num-results", str(args.num_results), "--num-workers", str(workers),
           "--device", args.device, "--quiet"]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("users", type=int, nargs="?", default=20_000, help="input lines (default 20000)")
    p.add_argument("--solution", default=None, help="a solution version directory (default: train one on demo data)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--num-results", type=int, default=25)
    p.add_argument("--device", default="cpu")
    p.add_argument("--demo-users", type=int, default=5000)
    p.add_argument("--demo-items", type=int, default=2000)
    p.add_argument("--keep", default=None, help="a directory to keep the input and outputs in")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        solution = args.solution or train_demo_solution(work / "solution", args.demo_users, args.demo_items)
        src = work / "users.jsonl"
        write_users(src, solution, args.users)
        info = json.loads((Path(solution) / "solution.json").read_text())
        print(f"solution: {info.get('recipe')} ({solution}); {os.cpu_count()} cores; "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", file=sys.stderr)
        rows = ["| users | workers | recipe | seconds | users/s |", "|---|---|---|---|---|"]
        first = None
        for workers in args.workers:
            out = work / f"out-{workers}.jsonl"
            seconds = run_job(solution, src, out, workers, args)
            digest = scan_input(out)[0]
            first = first if first is not None else digest
            assert digest == first, f"{workers} workers wrote other bytes than {args.workers[0]}"
            rows.append(f"| {args.users:,} | {workers} | {info.get('recipe')} | {seconds:.1f} | "
                        f"{args.users / seconds:,.0f} |")
            print(rows[-1], file=sys.stderr)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
