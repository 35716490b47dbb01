"""Does using impressions help? The same User-Personalization model and defaults, trained with and
without the slate-choice term, on data with impressions; full-ranking NDCG@10 on the same split.

    python bench/impressions.py [--data demo mind] [--seeds 0 1 2] [--override trainer.max_epochs=40 ...]

`demo` is the built-in demo data (impressions carry a planted signal: skipped items are popular and
off-taste); `demo_choice` the demo data with each click chosen from its slate by the user's utility
(`data.demo.slate_choice=true`: the skipped items are what the user passed over); `mind` is the MIND
sample in ../shared/data/mind converted to Personalize rows.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from personalize_torch.training import train

REPO = Path(__file__).resolve().parents[1]
PRESETS = {"demo": [], "demo_choice": ["data.demo.slate_choice=true"], "mind": ["data=mind"]}


def run(data: str, impression_weight: float, seed: int, overrides: list[str], workdir: Path) -> dict:
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            *PRESETS[data], "recipe=user_personalization", "logger=none", f"seed={seed}",
            f"recipe.impression_weight={impression_weight}", "data.split=leave_one_out", *overrides])
    with open_dict(cfg):
        if cfg.data.path:
            cfg.data.path = str((REPO / cfg.data.path).resolve())
        cfg.output_dir = str(workdir / f"{data}-{impression_weight}-{seed}")
        cfg.trainer.enable_progress_bar = False
    return train(cfg)["metrics"]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", default=["demo"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--weights", nargs="+", type=float, default=[0.0, 1.0])
    p.add_argument("--override", nargs="*", default=[])
    args = p.parse_args()
    rows = ["| data | impression_weight | val NDCG@10 | test NDCG@10 | test HR@10 | seeds |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for data in args.data:
            for weight in args.weights:
                results = [run(data, weight, s, args.override, Path(tmp)) for s in args.seeds]
                mean = {key: statistics.mean(r[stage][metric] for r in results)
                        for key, (stage, metric) in {"val": ("val", "ndcg_at_10"), "test": ("test", "ndcg_at_10"),
                                                     "hr": ("test", "hit_rate_at_10")}.items()}
                rows.append(f"| {data} | {weight} | {mean['val']:.4f} | {mean['test']:.4f} | {mean['hr']:.4f} | "
                            f"{len(args.seeds)} |")
                print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
