"""User-Personalization and RecTools' SASRec trained side by side, same split, same wall time, one command.

    python -m venv .venv-rectools && .venv-rectools/bin/pip install torch==2.13.0 'rectools[torch]==0.19.0'
    python bench/side_by_side.py --rectools-python .venv-rectools/bin/python --data ml1m_half --minutes 14 --seeds 0 1 2

For each seed, both trainings start at the same moment, one per CPU core (`OMP_NUM_THREADS=1` each), with
the same training-time cap (Lightning's `max_time`, `--minutes`): ours is `bench/benchmark.py --data <data>
--recipes user_personalization` with the recipe's defaults and only trainer settings (the time cap, up to
200 epochs, validation every 2 epochs); RecTools' is `bench/rectools_sasrec.py fit` (its SASRecModel
defaults, softmax loss) on the split `bench/rectools_sasrec.py export` wrote from the same data module. Both
are then scored by full ranking of the whole catalogue for every test user, the items in the user's
history left out, the held-out item's rank giving HR@10 / NDCG@10. RecTools lives in its own virtual
environment (it pins numpy < 2 and pandas < 3). Prints a Markdown table: each seed, then the mean ± standard
deviation of each side, and Popularity-Count on the same split.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def one_thread() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def last_json_line(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def run_seed(args, seed: int, split: Path, tmp: Path) -> tuple[list[dict], dict]:
    ours_json = tmp / f"ours-{seed}.jsonl"
    ours = subprocess.Popen(
        [sys.executable, str(BENCH / "benchmark.py"), "--data", args.data, "--recipes", "user_personalization",
         "--seeds", str(seed), "--json", str(ours_json), "--override", "trainer.max_epochs=200",
         f"+trainer.max_time=00:00:{args.minutes:02d}:00", "+trainer.check_val_every_n_epoch=2"],
        env=one_thread(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rectools = subprocess.Popen(
        [args.rectools_python, str(BENCH / "rectools_sasrec.py"), "fit", "--split", str(split),
         "--minutes", str(args.minutes), "--seed", str(seed)],
        env=one_thread(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rectools_out, rectools_err = rectools.communicate()
    _, ours_err = ours.communicate()
    if ours.returncode:
        sys.exit(f"bench/benchmark.py failed (seed {seed}):\n{ours_err[-3000:]}")
    if rectools.returncode:
        sys.exit(f"bench/rectools_sasrec.py fit failed (seed {seed}):\n{rectools_err[-3000:]}")
    return [json.loads(line) for line in ours_json.read_text().splitlines()], last_json_line(rectools_out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rectools-python", required=True, help="python of a virtual environment with rectools[torch]")
    p.add_argument("--data", default="ml1m_half", help="a preset in configs/data/")
    p.add_argument("--minutes", type=int, default=14, help="training-time cap of each side")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = p.parse_args()
    rows = ["| library / recipe | seed | test HR@10 | test NDCG@10 | epochs | training s | test pass s | peak GB |",
            "|---|---|---|---|---|---|---|---|"]
    ours_runs, rectools_runs, baseline = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "split.npz"
        subprocess.run([sys.executable, str(BENCH / "rectools_sasrec.py"), "export", "--data", args.data,
                        "--out", str(split)], check=True, stdout=subprocess.DEVNULL)
        for seed in args.seeds:
            runs, theirs = run_seed(args, seed, split, Path(tmp))
            baseline = next(r for r in runs if r["recipe"] == "popularity_count")
            ours = next(r for r in runs if r["recipe"] == "user_personalization")
            ours_runs.append(ours)
            rectools_runs.append(theirs)
            rows.append(f"| personalize-torch User-Personalization | {seed} | {ours['hr@10']:.4f} | "
                        f"{ours['ndcg@10']:.4f} | | {ours['training_s']:.0f} | {ours['test_s']:.1f} | "
                        f"{ours['peak_gb']:.2f} |")
            rows.append(f"| RecTools SASRecModel | {seed} | {theirs['test_hr@10']:.4f} | {theirs['test_ndcg@10']:.4f} | "
                        f"{theirs['epochs']} | {theirs['fit_seconds']:.0f} | {theirs['test_seconds']:.1f} | "
                        f"{theirs.get('peak_gb', float('nan')):.2f} |")
            print("\n".join(rows[-2:]), flush=True)

    def mean(runs: list[dict], key: str) -> str:
        values = [r[key] for r in runs]
        spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        return f"{statistics.mean(values):.4f}{spread}"

    n = len(args.seeds)
    rows.append(f"| personalize-torch User-Personalization | mean of {n} | {mean(ours_runs, 'hr@10')} | "
                f"{mean(ours_runs, 'ndcg@10')} | | | | |")
    rows.append(f"| RecTools SASRecModel | mean of {n} | {mean(rectools_runs, 'test_hr@10')} | "
                f"{mean(rectools_runs, 'test_ndcg@10')} | | | | |")
    rows.append(f"| Popularity-Count | — | {baseline['hr@10']:.4f} | {baseline['ndcg@10']:.4f} | | "
                f"{baseline['training_s']:.0f} | {baseline['test_s']:.1f} | |")
    print(f"\n{args.data}, {args.minutes} minutes of training each, side by side:\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
