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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_on_two_nodes_each_reading_its_share_of_a_dataset_group(tmp_path):
    """Two "nodes" on loopback (torchrun --nnodes 2, one process each): each reads only its share of the
    group's users, the metrics are added up across both, and rank 0 saves every user's history."""
    from personalize_torch.data import constants as C
    from personalize_torch.data.import_jobs import import_dataset, load_group_directory
    from personalize_torch.data.synthetic import generate_demo_data

    demo = generate_demo_data(n_users=300, n_items=80)
    demo.interactions[[C.USER_ID, C.ITEM_ID, C.TIMESTAMP]].to_csv(tmp_path / "events.csv", index=False)
    group = tmp_path / "group"
    import_dataset(group, C.INTERACTIONS, tmp_path / "events.csv")
    port = _free_port()
    processes = []
    for node in (1, 0):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--node-rank", str(node), "--master-addr", "127.0.0.1", "--master-port", str(port),
               "train.py", f"data.group={group}", "recipe=user_personalization", "recipe.hidden_dimension=16",
               "data.split=leave_one_out", "logger=none", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
               f"hydra.run.dir={tmp_path / f'node{node}'}"]
        processes.append(subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}))
    outputs = {}
    for node, process in zip((1, 0), processes):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        outputs[node] = out
    whole = load_group_directory(group).interactions
    share = load_group_directory(group, share=(1, 2)).interactions
    assert 0 < len(share) < len(whole)
    assert f"{len(share)} interactions" in outputs[1]          # node 1 trained on its share only
    ndcg = [next(line for line in outputs[n].splitlines() if line.strip().startswith("ndcg_at_10")) for n in (0, 1)]
    assert ndcg[0] == ndcg[1]                                   # one figure: both shares' users, added up
    assert not (tmp_path / "node1" / "solution").exists()
    info = json.loads((tmp_path / "node0" / "solution" / "solution.json").read_text())
    assert info["data"]["n_interactions"] == len(whole) and info["metrics"]["test"]["ndcg_at_10"] > 0.1
    from personalize_torch.serving.inference.predictor import Predictor

    predictor = Predictor.from_dir(tmp_path / "node0" / "solution")
    user = str(share[C.USER_ID].iloc[0])                        # a user node 1 trained on
    assert predictor.solution.history_rows([user])[0] >= 0
    (items,) = predictor.recommend([user], 5)
    assert len(items) == 5
