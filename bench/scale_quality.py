"""Quality at scale: on the generator's planted data, User-Personalization next to Popularity-Count and the
generator's own oracle.

    python bench/scale_quality.py --data /tmp/personalize-scale/data-10M [--minutes 20] [--test-users 20000]

The data folder is what `python -m personalize_torch.data.scale_synthetic --size 10M` writes. Its
Interactions are imported into a dataset group, then both recipes train on it with a leave-one-out split
(`train.py` with `data.group`), User-Personalization with its defaults for at most --minutes of training
(`+trainer.max_time`), and both are tested on the same seeded sample of users (`data.test_users`), ranking
the whole catalogue. truth.json holds the oracle: ranking by the generator's true next-item probabilities,
given each user's previous event, on the same kind of leave-last-out split (it excludes no seen item, where
the test here leaves out items the user already had and drops targets already seen).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _train(group: Path, out: Path, recipe: str, extra: list[str], test_users: int) -> tuple[dict, float]:
    cmd = [sys.executable, "train.py", f"recipe={recipe}", f"data.group={group}", "data.split=leave_one_out",
           f"data.test_users={test_users}", "logger=none", "trainer.enable_progress_bar=false",
           f"hydra.run.dir={out}", *extra]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads((out / "solution" / "solution.json").read_text()), time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a folder written by personalize_torch.data.scale_synthetic")
    p.add_argument("--work", default="/tmp/personalize-scale/quality")
    p.add_argument("--minutes", type=float, default=20.0, help="User-Personalization's training time budget")
    p.add_argument("--test-users", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    data, work = Path(args.data), Path(args.work)
    group = work / "group"
    subprocess.run(["rm", "-rf", str(work)], check=True)
    subprocess.run([sys.executable, "-m", "personalize_torch.data.import_jobs", "--group", str(group), "--dataset",
                    "Interactions", "--file", str(data / "interactions.csv"), "--schema",
                    str(data / "interactions.schema.json")], cwd=REPO, check=True)
    truth = json.loads((data / "truth.json").read_text())
    budget = f"00:{int(args.minutes) // 60:02d}:{int(args.minutes) % 60:02d}:{int(args.minutes * 60) % 60:02d}"
    rows = []
    popularity, seconds = _train(group, work / "popularity", "popularity_count", [f"seed={args.seed}"],
                                 args.test_users)
    rows.append(("Popularity-Count", popularity["metrics"]["test"], seconds, ""))
    up, seconds = _train(group, work / "user_personalization", "user_personalization",
                         [f"seed={args.seed}", f"+trainer.max_time={budget}"], args.test_users)
    rows.append(("User-Personalization (defaults)", up["metrics"]["test"], seconds,
                 f"fit {up['seconds']['fit']} s"))
    print(f"data: {data} ({up['data']['n_interactions']:,} events, {up['data']['n_users']:,} users, "
          f"{up['data']['n_items']:,} items); test: {args.test_users:,} users, whole catalogue ranked")
    print("| model | NDCG@10 | Recall@10 | seconds | notes |\n|---|---|---|---|---|")
    for name, metrics, secs, note in rows:
        print(f"| {name} | {metrics['ndcg_at_10']:.4f} | {metrics['recall_at_10']:.4f} | {secs:.0f} | {note} |")
    for key, name in (("oracle", "generator's oracle"), ("popularity", "generator's popularity")):
        print(f"| {name} (truth.json) | {truth[key]['ndcg_at_10']:.4f} | {truth[key]['recall_at_10']:.4f} | | "
              "no seen item excluded |")


if __name__ == "__main__":
    main()
