"""Do impressions help? The same User-Personalization model and defaults, trained with and without its
use of impressions, on data with IMPRESSION slates; full-ranking NDCG@10 on the same leave-one-out split.

    python bench/impressions.py --data demo_choice demo mind --seeds 0 1 2 [--arms without with slate=0.3]
                                [--override trainer.max_epochs=12 ...]

Arms: `without` is the model trained without impressions (`recipe.exposure_prior=false`, no slate term);
`with` is the defaults as they are (the exposure prior on); `slate=W` is the defaults plus the opt-in
slate-choice term with weight W (`recipe.impression_weight=W`). Each arm trains once per seed; a seed's
arms share the split and the initial weights' seed, so the per-seed difference `with - without` is a
paired comparison. Prints one row per run, then per arm the mean ± standard deviation and, against
`without`, the mean paired difference of test NDCG@10 and on how many seeds the arm was ahead.

`demo` is the built-in demo data (skipped items are popular and off-taste); `demo_choice` the demo data
with each click chosen from its slate by the user's utility (`data.demo.slate_choice=true`: the skipped
items are what the user passed over); `mind` is the MIND sample in ../shared/data/mind as Personalize rows
(each click with its impression's slate).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
from pathlib import Path

from personalize_torch.training import compose_config, train

REPO = Path(__file__).resolve().parents[1]
PRESETS = {"demo": [], "demo_choice": ["data.demo.slate_choice=true"], "mind": ["data=mind"]}


def arm_overrides(arm: str) -> list[str]:
    if arm == "without":
        return ["recipe.exposure_prior=false", "recipe.impression_weight=0"]
    if arm == "with":
        return []
    if arm.startswith("slate="):
        return [f"recipe.impression_weight={float(arm.split('=', 1)[1])}"]
    raise SystemExit(f"unknown arm {arm!r}: without, with or slate=<weight>")


def run(data: str, arm: str, seed: int, overrides: list[str], workdir: Path) -> dict:
    cfg = compose_config([*PRESETS[data], "recipe=user_personalization", "logger=none", f"seed={seed}",
                          "data.split=leave_one_out", *arm_overrides(arm), *overrides,
                          "trainer.enable_progress_bar=false"], output_dir=workdir / f"{data}-{arm}-{seed}")
    if cfg.data.path:
        cfg.data.path = str((REPO / cfg.data.path).resolve())
    result = train(cfg)
    return {"val": result["metrics"]["val"]["ndcg_at_10"], "test": result["metrics"]["test"]["ndcg_at_10"],
            "hr": result["metrics"]["test"]["hit_rate_at_10"], "seconds": result["seconds"]["fit"]}


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", default=["demo_choice"], choices=sorted(PRESETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=["without", "with"])
    p.add_argument("--override", nargs="*", default=[])
    args = p.parse_args()
    for arm in args.arms:
        arm_overrides(arm)
    rows = ["| data | arm | seed | val NDCG@10 | test NDCG@10 | test HR@10 | training s |", "|---|---|---|---|---|---|---|"]
    summary = ["| data | arm | seeds | val NDCG@10 | test NDCG@10 | test HR@10 | test NDCG@10 - without (paired) | "
               "seeds ahead |", "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for data in args.data:
            results: dict[str, list[dict]] = {arm: [] for arm in args.arms}
            for seed in args.seeds:
                for arm in args.arms:
                    r = run(data, arm, seed, args.override, Path(tmp))
                    results[arm].append(r)
                    rows.append(f"| {data} | {arm} | {seed} | {r['val']:.4f} | {r['test']:.4f} | {r['hr']:.4f} | "
                                f"{r['seconds']:.0f} |")
                    print(rows[-1], flush=True)

            def mean(values: list[float]) -> str:
                spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
                return f"{statistics.mean(values):.4f}{spread}"

            for arm, runs in results.items():
                paired = ahead = ""
                if "without" in results and arm != "without":
                    diffs = [r["test"] - w["test"] for r, w in zip(runs, results["without"])]
                    base = statistics.mean(w["test"] for w in results["without"])
                    paired = f"{mean(diffs)} ({statistics.mean(diffs) / base:+.1%})"
                    ahead = f"{sum(d > 0 for d in diffs)} of {len(diffs)}"
                summary.append(f"| {data} | {arm} | {len(runs)} | {mean([r['val'] for r in runs])} | "
                               f"{mean([r['test'] for r in runs])} | {mean([r['hr'] for r in runs])} | {paired} | "
                               f"{ahead} |")
    print("\n".join(rows + [""] + summary))


if __name__ == "__main__":
    main()
