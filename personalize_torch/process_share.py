"""Training launched as several processes by torchrun, each reading its own share of a dataset group.

    torchrun --nnodes 2 --nproc-per-node 1 --node-rank <0|1> --master-addr <host> --master-port 29500 \\
        train.py data.group=<dir> recipe=user_personalization

torchrun starts every process with RANK / WORLD_SIZE / LOCAL_WORLD_SIZE in its environment. A run on a
dataset group directory then reads only its share of the users (`load_group_directory(share=...)`), counts
its statistics on that share and adds them up with the other processes' (`Recipe.combine_statistics`),
trains with Lightning's DDP on its own training batches (as many as every other process), evaluates its
own users (the metrics are added up), and rank 0 writes the solution version from the whole group.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from omegaconf import DictConfig, open_dict
from torch import Tensor

_OPS = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}


def launched_share() -> tuple[int, int] | None:
    """(rank, world size) when torchrun launched this process as one of several; None otherwise (one
    process, or the processes Lightning starts itself for `trainer.strategy=ddp`, which read all the data)."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return None
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ["RANK"]), world) if world > 1 else None


def set_trainer_for_processes(trainer_cfg: DictConfig) -> None:
    """Lightning's DDP across the processes torchrun started, unless the config names its own strategy:
    `devices` per node and `num_nodes` from torchrun's environment."""
    world = int(os.environ["WORLD_SIZE"])
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    with open_dict(trainer_cfg):
        if str(trainer_cfg.get("strategy", "auto")) == "auto":
            trainer_cfg.strategy = "ddp"
        trainer_cfg.devices = per_node
        trainer_cfg.num_nodes = world // per_node


def join_processes(accelerator: str) -> None:
    """Join torchrun's process group now (before fitting: statistics are combined first); Lightning then
    uses this group."""
    if not dist.is_initialized():
        on_gpu = accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
        dist.init_process_group("nccl" if on_gpu else "gloo", init_method="env://")


def add_up(tensor: Tensor, op: str = "sum") -> Tensor:
    """`tensor` combined over every process (`op`: sum, min or max); a new tensor, on the tensor's device."""
    out = tensor.detach().clone()
    dist.all_reduce(out, op=_OPS[op])
    return out
