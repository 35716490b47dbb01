"""RecTools' SASRec on exactly our leave-one-out split, scored with the same full-ranking metrics.

RecTools (a maintained library with a softmax-loss SASRec) pins numpy < 2 and pandas < 3, so it lives in
its own virtual environment; the split travels between the two as one .npz file:

    python bench/rectools_sasrec.py export --data ml1m_half --out /tmp/ml1m_half.npz     # this project's venv
    python -m venv .venv-rectools && .venv-rectools/bin/pip install torch==2.13.0 'rectools[torch]==0.19.0'
    OMP_NUM_THREADS=1 .venv-rectools/bin/python bench/rectools_sasrec.py fit --split /tmp/ml1m_half.npz --minutes 15

(bench/side_by_side.py does all of this and trains User-Personalization next to it, seed by seed.)

`export` writes the training events, and for validation and test each user's model input (history) and
held-out item, exactly as `train.py data=<preset>` evaluates them (leave-one-out; targets already in the
history dropped). `fit` trains RecTools' SASRecModel (its defaults: 256 factors, 2 blocks, 4 heads,
dropout 0.2, 100 events, lr 1e-3, batch 128, softmax loss) for `--epochs` or until `--minutes` run out
(`pytorch_lightning.Trainer(max_time=...)`), then ranks the whole catalogue for every validation and test
user with the items in their history left out (`filter_viewed=True`) and prints HR@10 / NDCG@10 and the
times. Event order within a user is kept by giving RecTools each event's position as its time.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def export(data: str, out: str) -> None:
    from personalize_torch.training import compose_config, prepare_data  # this project's venv only

    cfg = compose_config([f"data={data}", "recipe=popularity_count"])
    cfg.data.path = str((REPO / cfg.data.path).resolve()) if cfg.data.path else None
    prepared = prepare_data(cfg)   # the data, event selection and split train(cfg) uses

    def events(seqs, prefix: str) -> dict:
        users = np.repeat(seqs.user_idx, seqs.lengths)
        position = np.arange(len(seqs.item_idx)) - np.repeat(seqs.offsets[:-1], seqs.lengths)
        return {f"{prefix}_user": users, f"{prefix}_item": seqs.item_idx, f"{prefix}_position": position}

    arrays = {"n_items": np.array(prepared.n_items), **events(prepared.split.train, "train")}
    for stage in ("val", "test"):
        eval_set = getattr(prepared.split, stage)
        arrays.update(events(eval_set.history, f"{stage}_history"))
        arrays[f"{stage}_target_user"] = np.repeat(eval_set.history.user_idx, np.diff(eval_set.target_offsets))
        arrays[f"{stage}_target_item"] = eval_set.target_items
    np.savez_compressed(out, **arrays)
    print(json.dumps({"out": out, "train_events": int(len(arrays["train_item"])),
                      "val_users": int(len(arrays["val_target_user"])),
                      "test_users": int(len(arrays["test_target_user"]))}))


def frame(split, prefix: str):
    import pandas as pd

    return pd.DataFrame({"user_id": split[f"{prefix}_user"], "item_id": split[f"{prefix}_item"], "weight": 1.0,
                         "datetime": pd.to_datetime(split[f"{prefix}_position"], unit="s")})


def evaluate(model, split, stage: str, k: int = 10) -> dict:
    """HR@k / NDCG@k of RecTools' full-catalogue ranking for each user's one held-out item."""
    from rectools.dataset import Dataset

    start = time.perf_counter()
    history = Dataset.construct(frame(split, f"{stage}_history"))
    users, targets = split[f"{stage}_target_user"], split[f"{stage}_target_item"]
    reco = model.recommend(users=users, dataset=history, k=k, filter_viewed=True)
    rank = {(u, i): r for u, i, r in zip(reco["user_id"], reco["item_id"], reco["rank"])}
    ranks = np.array([rank.get((u, i), 0) for u, i in zip(users, targets)])
    hit = ranks > 0
    ndcg = np.where(hit, 1.0 / np.log2(np.maximum(ranks, 1) + 1.0), 0.0)   # ranks are 1-based, 0 = not in top k
    return {f"{stage}_hr@{k}": round(float(hit.mean()), 4), f"{stage}_ndcg@{k}": round(float(ndcg.mean()), 4),
            f"{stage}_users": int(len(users)), f"{stage}_seconds": round(time.perf_counter() - start, 1)}


def fit(split_path: str, epochs: int, minutes: float, seed: int) -> None:
    from datetime import timedelta

    import pytorch_lightning as pl
    import torch
    from rectools.dataset import Dataset
    from rectools.models import SASRecModel

    torch.manual_seed(seed)
    split = dict(np.load(split_path))
    train = Dataset.construct(frame(split, "train"))
    epochs_run = []

    class CountEpochs(pl.Callback):
        def on_train_epoch_end(self, trainer, module):
            epochs_run.append(time.perf_counter())

    def trainer() -> pl.Trainer:
        return pl.Trainer(max_epochs=epochs, max_time=timedelta(minutes=minutes), min_epochs=1, deterministic=True,
                          enable_progress_bar=False, enable_model_summary=False, logger=False,
                          enable_checkpointing=False, accelerator="cpu", devices=1, callbacks=[CountEpochs()])

    model = SASRecModel(epochs=epochs, get_trainer_func=trainer, deterministic=True)
    start = time.perf_counter()
    model.fit(train)
    result = {"library": "rectools", "model": "SASRecModel (defaults, softmax)", "epochs": len(epochs_run),
              "fit_seconds": round(time.perf_counter() - start, 1), "seed": seed}
    result.update(evaluate(model, split, "val"))
    result.update(evaluate(model, split, "test"))
    result["peak_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export")
    e.add_argument("--data", default="ml1m_half")
    e.add_argument("--out", required=True)
    f = sub.add_parser("fit")
    f.add_argument("--split", required=True)
    f.add_argument("--epochs", type=int, default=200)
    f.add_argument("--minutes", type=float, default=15.0)
    f.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    if args.command == "export":
        export(args.data, args.out)
    else:
        fit(args.split, args.epochs, args.minutes, args.seed)


if __name__ == "__main__":
    main()
