"""A blend next to its members: validation and test NDCG@10 / HR@10 on a leave-one-out split.

    python bench/blend.py --data beauty --recipes user_personalization sims [--override recipe.x=y ...]
    python bench/blend.py --data beauty --solutions <up dir> <sims dir>     # members already trained

Trains each member recipe (unless --solutions are given; they must be trained on the same data preset
and split), then `recipe=blend` over them (weights chosen on validation NDCG@10), and prints one row per
model. `--member-override recipe=key=value` passes a Hydra override to one member only.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from personalize_torch.solution_version import load_solution_version
from personalize_torch.training import compose_config, train

REPO = Path(__file__).resolve().parents[1]


def run(data: str, overrides: list[str], out: Path) -> dict:
    cfg = compose_config([f"data={data}", "logger=none", *overrides, "trainer.enable_progress_bar=false"],
                         output_dir=out)
    cfg.data.path = str((REPO / cfg.data.path).resolve()) if cfg.data.path else None
    start = time.perf_counter()
    result = train(cfg)
    result["seconds"] = time.perf_counter() - start
    return result


def row(name: str, metrics: dict, seconds: float | None) -> str:
    v, t = metrics["val"], metrics["test"]
    return (f"| {name} | {v['ndcg_at_10']:.4f} | {t['ndcg_at_10']:.4f} | {t['hit_rate_at_10']:.4f} | "
            f"{'' if seconds is None else f'{seconds:.0f}'} |")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="ml100k")
    p.add_argument("--recipes", nargs="+", default=["user_personalization", "sims"])
    p.add_argument("--solutions", nargs="+", default=None)
    p.add_argument("--member-override", nargs="*", default=[], help="recipe=hydra.override, e.g. "
                   "user_personalization=trainer.max_epochs=20")
    args = p.parse_args()
    rows = ["| model | val NDCG@10 | test NDCG@10 | test HR@10 | seconds |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        if args.solutions:
            paths = args.solutions
            for path in paths:
                info = load_solution_version(path).info
                rows.append(row(f"{info['recipe']} ({path})", info["metrics"], None))
        else:
            paths = []
            for recipe in args.recipes:
                extra = [o.split("=", 1)[1] for o in args.member_override if o.split("=", 1)[0] == recipe]
                r = run(args.data, [f"recipe={recipe}", *extra], Path(tmp) / recipe)
                paths.append(r["solution"])
                rows.append(row(recipe, r["metrics"], r["seconds"]))
                print(rows[-1], flush=True)
        blend = run(args.data, ["recipe=blend", f"recipe.solutions=[{','.join(paths)}]"], Path(tmp) / "blend")
        weights = load_solution_version(blend["solution"]).recipe.weights.tolist()
        rows.append(row(f"blend (weights {', '.join(f'{w:.1f}' for w in weights)})", blend["metrics"],
                        blend["seconds"]))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
