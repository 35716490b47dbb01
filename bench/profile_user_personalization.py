"""Where one User-Personalization epoch on a data preset spends its time (CPU), measured piece by piece.

    python bench/profile_user_personalization.py --data beauty [--steps 30] [--override recipe.bptt=50 ...]

Prints: data sizes (training windows, real vs padded positions), per-step times of collate, forward
(transformer), full-softmax logits + cross-entropy, backward, optimizer; and the evaluation time of
one validation pass over all users (scoring, masking, metrics).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from personalize_torch import training
from personalize_torch.metrics.functional import mask_scores

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="beauty")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("--override", nargs="*", default=[])
    args = p.parse_args()
    cfg = training.compose_config([f"data={args.data}", "recipe=user_personalization", "logger=none",
                                   # no trainer here to plan a schedule by: per-step times only
                                   "recipe.lr_schedule=constant", *args.override])
    cfg.data.path = str((REPO / cfg.data.path).resolve()) if cfg.data.path else None
    torch.manual_seed(0)
    t = time.perf_counter()
    # the data, recipe and loaders train(cfg) builds
    data = training.prepare_data(cfg)
    recipe = training.build_recipe(cfg.recipe, data)
    recipe.count_statistics(data.split)
    dm = training.data_module(cfg.data, data, recipe, seed=cfg.seed)
    print(f"load+split {time.perf_counter() - t:.1f}s  threads {torch.get_num_threads()}")
    lengths = data.split.train.lengths
    print(f"users {len(lengths)} items {data.n_items} train events {lengths.sum()}  history length "
          f"median {np.median(lengths):.0f} p90 {np.quantile(lengths, 0.9):.0f} max {lengths.max()}")
    loader = dm.train_dataloader()
    print(f"training windows {len(loader.dataset)}  steps/epoch {len(loader)}  batch {dm.batch_size} "
          f"bptt {recipe.hparams.bptt}  loss {'full' if recipe.uses_full_softmax else 'sampled'}")

    # whole-epoch collate and padding
    t = time.perf_counter()
    real = padded = 0
    batches = []
    for b in loader:
        items = b.items[:, :-1][:, -recipe.hparams.bptt:]
        real += int(((items > 0) & (b.items[:, 1:][:, -recipe.hparams.bptt:] > 0)).sum())
        padded += items.numel()
        batches.append(b)
    collate = time.perf_counter() - t
    print(f"collate whole epoch {collate:.2f}s  predicted positions {real}  input positions (padded) {padded} "
          f"({padded / max(real, 1):.1f}x)")

    opt = recipe.configure_optimizers()
    recipe.train()
    timing = {"forward": 0.0, "logits+CE": 0.0, "backward": 0.0, "optimizer": 0.0}
    hp = recipe.hparams
    steps = min(args.steps, len(batches))
    for i, batch in enumerate(batches[:steps + 2]):
        t0 = time.perf_counter()
        bptt = hp.bptt
        inputs, targets = batch.items[:, :-1][:, -bptt:], batch.items[:, 1:][:, -bptt:]
        predict = (inputs > 0) & (targets > 0)
        table = recipe.item_table()
        hidden = recipe.model(inputs, None, table)[predict]
        t1 = time.perf_counter()
        loss = recipe.catalogue_loss(hidden, targets[predict], table, None, recipe.item_bias)
        t2 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        if i >= 2:  # warm-up
            for k, v in zip(timing, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                timing[k] += v
    per_step = sum(timing.values()) / steps
    print(f"per training step (mean of {steps}): " + "  ".join(f"{k} {1000 * v / steps:.1f}ms" for k, v in timing.items())
          + f"  total {1000 * per_step:.1f}ms -> epoch ~{per_step * len(batches) + collate:.1f}s")
    # backward split: logits/CE backward vs transformer backward
    batch = batches[0]
    inputs, targets = batch.items[:, :-1][:, -hp.bptt:], batch.items[:, 1:][:, -hp.bptt:]
    predict = (inputs > 0) & (targets > 0)
    n = int(predict.sum())
    h = torch.randn(n, hp.hidden_dimension, requires_grad=True)
    tab = torch.randn(data.n_items, hp.hidden_dimension, requires_grad=True)
    from personalize_torch.losses import full_softmax_loss
    t = time.perf_counter()
    for _ in range(5):
        full_softmax_loss(h, targets[predict], tab).backward()
    print(f"full softmax alone fwd+bwd, N={n} x {data.n_items} items x {hp.hidden_dimension}: "
          f"{1000 * (time.perf_counter() - t) / 5:.1f}ms")

    # evaluation
    recipe.eval()
    vloader = dm.val_dataloader()
    tc = ts = tm = tq = 0.0
    nb = 0
    t = time.perf_counter()
    it = iter(vloader)
    while nb < args.eval_batches:
        t0 = time.perf_counter()
        try:
            b = next(it)
        except StopIteration:
            break
        t1 = time.perf_counter()
        with torch.no_grad():
            s = recipe.score(b.inputs)
        t2 = time.perf_counter()
        s = mask_scores(s, b.exclude)
        t3 = time.perf_counter()
        recipe.val_metrics.update(s, b.targets)
        t4 = time.perf_counter()
        tc, ts, tm, tq = tc + t1 - t0, ts + t2 - t1, tm + t3 - t2, tq + t4 - t3
        nb += 1
    scale = len(vloader) / nb
    print(f"validation ({len(vloader)} batches of {dm.eval_batch_size}, extrapolated from {nb}): collate "
          f"{tc * scale:.1f}s  score {ts * scale:.1f}s  mask {tm * scale:.1f}s  metrics {tq * scale:.1f}s  "
          f"total {(tc + ts + tm + tq) * scale:.1f}s")


if __name__ == "__main__":
    main()
