"""The bfloat16 first pass against float32 scoring on one large solution version, in one process, one thread.

    python bench/first_pass.py --solution /tmp/up_1m [--users 256] [--rows 1 4 8 32]

`--solution`: a User-Personalization solution version (bench/serving_scale.py --synthesize writes one of 1M
items). For each batch size (rows scored in one call, as micro-batching groups concurrent requests) it
prints milliseconds per call with `first_pass=float32` and `first_pass=bfloat16`, without and with an
Items filter; then, over `--users` known users in batches of 8, whether both give the same items in the same
order (numResults 25) and the largest relative difference of their scores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from personalize_torch.filters import Filter
from personalize_torch.serving.inference.predictor import Predictor, RequestOptions

NO_HORROR = 'EXCLUDE ItemID WHERE Items.GENRES IN ("Horror")'


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--solution", required=True)
    p.add_argument("--users", type=int, default=256)
    p.add_argument("--rows", type=int, nargs="+", default=[1, 4, 8, 32])
    p.add_argument("--repeats", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(1)
    predictors = {name: Predictor.load_warm(args.solution, first_pass=name) for name in ("float32", "bfloat16")}
    vocab = predictors["float32"].solution.user_vocab
    users = list(vocab.to_id(np.random.default_rng(0).integers(1, len(vocab) + 1, args.users)))
    filtered = RequestOptions(filter=Filter.parse(NO_HORROR))
    print("| rows per call | filter | float32 ms | bfloat16 first pass ms | speed-up |")
    print("|---|---|---|---|---|")
    for rows in args.rows:
        for label, options in (("none", None), ("no_horror", filtered)):
            ms = {}
            for name, predictor in predictors.items():
                predictor.recommend(users[:rows], 25, options=options)                    # warm-up
                start = time.perf_counter()
                for r in range(args.repeats):
                    at = (r * rows) % max(1, len(users) - rows)
                    predictor.recommend(users[at:at + rows], 25, options=options)
                ms[name] = (time.perf_counter() - start) / args.repeats * 1000
            print(f"| {rows} | {label} | {ms['float32']:.1f} | {ms['bfloat16']:.1f} | "
                  f"{ms['float32'] / ms['bfloat16']:.2f}x |", flush=True)
    same, worst = 0, 0.0
    for start in range(0, len(users), 8):
        batch = users[start:start + 8]
        exact = predictors["float32"].recommend(batch, 25)
        rounded = predictors["bfloat16"].recommend(batch, 25)
        for e, r in zip(exact, rounded):
            same += [x.item_id for x in e] == [x.item_id for x in r]
            worst = max([worst] + [abs(y.score / x.score - 1) for x, y in zip(e, r)])
    print(f"same items in the same order: {same} / {len(users)} users; largest relative score difference {worst:.2e}")


if __name__ == "__main__":
    main()
