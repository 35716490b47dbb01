"""Distributed data-parallel training (Lightning's DDP) on CPU: 2 processes talking over gloo."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from personalize_torch.data.batching import LengthBuckets

REPO = Path(__file__).resolve().parents[2]


def test_length_buckets_shard_batches_between_processes():
    lengths = np.random.default_rng(0).integers(1, 50, size=1000)
    single = LengthBuckets(lengths, 64)
    shards = [LengthBuckets(lengths, 64, rank=r, world_size=2, seed=7) for r in range(2)]
    for epoch in (0, 1):
        for shard in shards:
            shard.set_epoch(epoch)
        batches = [list(shard) for shard in shards]
        assert len(batches[0]) == len(batches[1]) == single.n_batches // 2     # the processes step together
        seen = [i for b in batches for batch in b for i in batch]
        assert len(seen) == len(set(seen))                                     # no window twice in an epoch
        assert len(seen) >= len(lengths) - max(map(len, (x for b in batches for x in b))) - 1
        again = [list(shard) for shard in shards]
        assert again == batches                                                 # same order for the same epoch
        if epoch == 1:
            assert batches != first                                             # a new order each epoch
        first = batches


def test_train_py_with_two_ddp_processes_saves_one_solution_version(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "train.py", "recipe=user_personalization", "recipe.hidden_dimension=16",
           "data.demo.n_users=200", "data.demo.n_items=80", "logger=none", "trainer.max_epochs=2",
           "+trainer.strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu",
           "trainer.enable_progress_bar=false", f"hydra.run.dir={out}"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "train_ddp_process_1.log").exists()                # a second process did train
    info = json.loads((out / "solution" / "solution.json").read_text())
    assert info["metrics"]["val"]["ndcg_at_10"] > 0
    from personalize_torch.serving.inference.predictor import Predictor

    predictor = Predictor.from_dir(out / "solution")
    (items,) = predictor.recommend([predictor.solution.user_vocab.ids[0]], 5)
    assert len(items) == 5
