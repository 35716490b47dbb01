"""Shared fixtures: small demo data and one trained solution version per test session."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

# Test models are tiny: one intra-op thread is much faster than two that wait on each other (a small
# GRU step: 0.26 s with 2 threads vs 0.013 s with 1 on a busy 2-core machine).
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SMALL_DEMO = ["data.demo.n_users=300", "data.demo.n_items=120"]


def compose_train_config(overrides: list[str], tmp_path: Path) -> DictConfig:
    """The train.py config as Hydra composes it, with outputs under tmp_path and no progress bar."""
    from personalize_torch.training import compose_config

    cfg = compose_config([*overrides, "trainer.enable_progress_bar=false"], output_dir=tmp_path / "solution")
    return cfg


@pytest.fixture(scope="session")
def trained_solution(tmp_path_factory) -> dict:
    """Popularity-Count trained on small demo data through training.train (the train.py path)."""
    from personalize_torch.training import train

    tmp = tmp_path_factory.mktemp("trained")
    return train(compose_train_config(SMALL_DEMO, tmp))


@dataclass
class Fitted:
    recipe: object            # the fitted Recipe
    trainer: object           # its pl.Trainer
    dm: object                # the InteractionsDataModule it was fitted with
    data: object              # the PreparedData


def fit_small(recipe_cls, data, max_epochs: int = 1, batch_size: int = 256, trainer_args: dict | None = None,
              **hyperparameters) -> Fitted:
    """`recipe_cls` built from `data` (a PreparedData) and fitted as training does (statistics counted, loaders
    shaped by the recipe's needs) with a quiet CPU trainer: no logger, checkpoints or progress bar."""
    import pytorch_lightning as pl

    from personalize_torch.data.datamodule import InteractionsDataModule

    recipe = recipe_cls.from_data(data.describe(), **hyperparameters)
    recipe.count_statistics(data.split)
    dm = InteractionsDataModule(data, recipe.loader_needs(), batch_size=batch_size)
    args = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
            "enable_model_summary": False, "accelerator": "cpu", **(trainer_args or {})}
    trainer = pl.Trainer(max_epochs=1 if recipe.count_based else max_epochs, **args)
    trainer.fit(recipe, datamodule=dm)
    return Fitted(recipe, trainer, dm, data)


def tiny_user_personalization(tmp_path: Path, bptt: int, limit_train_batches: int):
    """A Predictor over a User-Personalization solution version (hidden 16) briefly trained on small demo
    data with a DEVICE context field (150 users, 60 items, seed 2), saved under tmp_path / "up"."""
    from personalize_torch.data.prepared import PreparedData
    from personalize_torch.data.sources import demo_dataset_group
    from personalize_torch.recipes.user_personalization import UserPersonalization
    from personalize_torch.serving.inference.predictor import Predictor
    from personalize_torch.solution_version import load_solution_version, save_solution_version

    data = PreparedData(demo_dataset_group(n_users=150, n_items=60, seed=2), split="leave_one_out")
    fit = fit_small(UserPersonalization, data, trainer_args={"limit_train_batches": limit_train_batches,
                                                             "limit_val_batches": 0}, hidden_dimension=16, bptt=bptt)
    return Predictor(load_solution_version(save_solution_version(tmp_path / "up", fit.trainer, fit.recipe, data, {})))


def shared_data(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


def worker_pids(parent: int) -> list[int]:
    """The pids of `parent`'s child processes (a multi-worker server's workers)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(parent)], capture_output=True, text=True,
                         check=False).stdout
    return [int(p) for p in out.split()]


def kill_worker_and_await_replacement(parent: int, worker: int, n_workers: int = 2) -> list[int]:
    """SIGKILL `worker` of the server `parent`, wait up to 30 s for the server to start a new one, and return
    the worker pids then (the caller asserts what it expects of them)."""
    os.kill(worker, signal.SIGKILL)
    for _ in range(300):
        pids = worker_pids(parent)
        if len(pids) == n_workers and worker not in pids:
            break
        time.sleep(0.1)
    return pids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app):
    """Run an ASGI app with uvicorn in a thread on a free local port; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 20
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
