"""A training run SIGKILLed at a random point and resumed with resume=true, against the same run uninterrupted.

    OMP_NUM_THREADS=1 python bench/kill_and_resume.py --kill-within 120 -- \
        experiment=ml1m_half_user_personalization trainer.max_time=null trainer.max_epochs=6

Runs `train.py <overrides>` three times in subprocesses: uninterrupted; killed (SIGKILL) at a random moment
within `--kill-within` seconds after its first training checkpoint; and again with `resume=true`. Prints the
kill point (epoch, step, training seconds of the last checkpoint) and the final metrics of the uninterrupted
and the resumed run, and whether they are identical. `--seed`: the random kill moment's seed.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
METRICS = ("ndcg_at_10", "hit_rate_at_10", "mrr")


def train_py(overrides: list[str], out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "train.py", *overrides, "trainer.enable_progress_bar=false", f"output_dir={out}",
           f"hydra.run.dir={out}.run", *extra]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def final_metrics(process: subprocess.Popen, out: Path) -> dict:
    if process.wait() != 0:
        sys.exit(f"training failed:\n{process.stderr.read()[-3000:]}")
    metrics = json.loads((out / "solution.json").read_text())["metrics"]
    return metrics.get("test", metrics["val"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kill-within", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        whole = final_metrics(train_py(args.overrides, tmp / "whole"), tmp / "whole")
        print(f"uninterrupted: {time.perf_counter() - start:.0f} s", flush=True)

        killed = train_py(args.overrides, tmp / "killed")
        checkpoint = tmp / "killed.checkpoints" / "last.ckpt"
        while not checkpoint.exists():
            if killed.poll() is not None:
                sys.exit(f"the run ended before its first checkpoint:\n{killed.stderr.read()[-3000:]}")
            time.sleep(0.1)
        delay = random.Random(args.seed).uniform(0, args.kill_within)
        time.sleep(delay)
        if killed.poll() is not None:
            sys.exit("the run finished before the kill: lower --kill-within")
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        state = torch.load(checkpoint, weights_only=True)
        saved = state["callbacks"]["TrainingCheckpoints"]
        print(f"killed {delay:.1f} s after the first checkpoint; last checkpoint: epoch {saved['epoch']}, step "
              f"{saved['step']}, {saved['training_seconds']:.0f} s of training", flush=True)
        start = time.perf_counter()
        resumed = final_metrics(train_py(args.overrides, tmp / "killed", "resume=true"), tmp / "killed")
        print(f"resumed: {time.perf_counter() - start:.0f} s")
    print("| run | " + " | ".join(METRICS) + " |\n|---|" + "---|" * len(METRICS))
    for name, m in (("uninterrupted", whole), ("killed + resumed", resumed)):
        print(f"| {name} | " + " | ".join(f"{m[k]:.4f}" for k in METRICS) + " |")
    print("identical" if whole == resumed else
          "largest difference " + f"{max(abs(whole[k] - resumed[k]) for k in whole):.2e}")


if __name__ == "__main__":
    main()
