"""Resuming a killed training run (resume.py): a run SIGKILLed at a random point and resumed with resume=true
ends where an uninterrupted run ends; a time budget counts the time trained before the restart; a checkpoint
of another run, or none at all, is refused with a clear error."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from personalize_torch.callbacks import RestoreBestWeights
from personalize_torch.errors import InputError
from personalize_torch.resume import checkpoint_to_resume, random_state, set_random_state
from personalize_torch.training import train
from tests.conftest import SMALL_DEMO, compose_train_config

REPO = Path(__file__).resolve().parents[2]
# A small User-Personalization: 21 steps an epoch, about 0.3 s an epoch on one thread.
TINY_UP = ["recipe=user_personalization", "recipe.hidden_dimension=16", "recipe.bptt=10", "data.demo.n_users=300",
           "data.demo.n_items=60", "data.demo.seed=2", "data.split=leave_one_out", "logger=none", "trainer=cpu"]


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)   # a training checkpoint reads as safely as a solution version


def kill_when_checkpoint_reaches(process: subprocess.Popen, checkpoint: Path, step: int) -> dict:
    """SIGKILL `process` as soon as its checkpoint has reached `step` (it trains on meanwhile: the kill lands
    between two checkpoints); returns the last checkpoint it wrote."""
    seen = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"training ended before step {step}:\n{process.stdout.read()[-3000:]}")
        mtime = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
        if mtime is not None and mtime != seen:
            seen = mtime
            if load(checkpoint)["global_step"] >= step:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
                return load(checkpoint)
        time.sleep(0.02)
    process.kill()
    pytest.fail("no checkpoint in time")


def test_a_run_killed_at_a_random_point_resumes_to_the_metrics_of_an_uninterrupted_run(tmp_path):
    settings = [*TINY_UP, "trainer.max_epochs=4"]
    # Checkpoints every 3 steps, none at an epoch's end: the kill always lands on a checkpoint within an epoch,
    # the hardest place to pick up (the same batches in the same order must follow).
    killed_run = [*settings, "checkpoints.every_n_steps=3", "checkpoints.every_epoch=false"]
    kill_at = random.randint(3, 70)   # of 84 steps
    cmd = [sys.executable, "train.py", *killed_run, "trainer.enable_progress_bar=false",
           f"output_dir={tmp_path / 'solution'}", f"hydra.run.dir={tmp_path / 'run'}"]
    process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})   # the tests' one thread
    checkpoints = tmp_path / "solution.checkpoints"
    killed_at = kill_when_checkpoint_reaches(process, checkpoints / "last.ckpt", kill_at)
    assert process.returncode == -signal.SIGKILL and not (tmp_path / "solution").exists()
    assert 0 < killed_at["global_step"] < 84 and killed_at["global_step"] % 21, kill_at   # within an epoch
    (checkpoints / ".last.ckpt.tmp").write_bytes(b"\x80half a checkpoint")   # as if killed while writing one

    resumed = train(compose_train_config([*killed_run, "resume=true"], tmp_path))
    # the uninterrupted run writes checkpoints at every epoch's end only: how often changes nothing either
    whole = train(compose_train_config(settings, tmp_path / "whole"))

    assert resumed["training"]["resumed_from"]["step"] == killed_at["global_step"]
    for stage in ("val", "test"):
        assert resumed["metrics"][stage] == pytest.approx(whole["metrics"][stage], abs=1e-6), (stage, kill_at)
    assert Path(resumed["solution"]).is_dir() and not checkpoints.exists()   # done with once the model is saved


class StopTraining(Exception):
    pass


class StopAfterSeconds(pl.Callback):
    """Ends training with an exception once `seconds` of its time budget are spent (after a checkpoint)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        timer = next(c for c in trainer.callbacks if isinstance(c, pl.callbacks.Timer))
        if timer.time_elapsed() >= self.seconds:
            raise StopTraining


class RecordSchedule(pl.Callback):
    """The learning rate after every step, and the time this process trained."""
    rates: list[float] = []
    seconds: list[float] = []

    def on_train_start(self, trainer, pl_module):
        RecordSchedule.rates, self.start = [], time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        RecordSchedule.rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_end(self, trainer, pl_module):
        RecordSchedule.seconds = [time.monotonic() - self.start]


def test_a_time_budget_counts_the_time_trained_before_the_restart(tmp_path):
    budget, learning_rate = 6.0, 0.002
    settings = [*TINY_UP, "trainer.max_epochs=1000", "+trainer.max_time=00:00:00:06", "recipe.lr_schedule=cosine",
                "checkpoints.every_n_steps=2"]
    with pytest.raises(StopTraining):   # stands for the kill (the first test kills): the checkpoint is what counts
        train(compose_train_config([*settings, "+callbacks.stop._target_=tests.training.test_resume.StopAfterSeconds",
                                    "+callbacks.stop.seconds=2.5"], tmp_path))
    checkpoint = load(tmp_path / "solution.checkpoints" / "last.ckpt")
    before = checkpoint["callbacks"]["Timer"]["time_elapsed"]["train"]
    assert before >= 1.5

    with pytest.raises(InputError, match="learning_rate") as refused:   # another run's checkpoint
        train(compose_train_config([*settings, "resume=true", "recipe.learning_rate=0.004"], tmp_path))
    assert refused.value.column == "hyperparameters.learning_rate"

    resumed = train(compose_train_config([*settings, "resume=true",
                                          "+callbacks.schedule._target_=tests.training.test_resume.RecordSchedule"],
                                         tmp_path))
    # the two processes together trained about the budget: Lightning's Timer (which stops training) and the
    # checkpoints' own tally of seconds in fit (solution.json) start their clocks at slightly different moments
    assert budget - 1.0 <= resumed["training"]["seconds"] <= budget + 1.5
    # this process trained what was left of the budget (not a whole new budget)
    assert RecordSchedule.seconds[0] < budget - before + 1.5, (before, RecordSchedule.seconds)
    # the cosine schedule goes on from where the time spent puts it: never back up to the start's rate
    at_restart = learning_rate * 0.5 * (1 + math.cos(math.pi * before / budget))
    assert RecordSchedule.rates and max(RecordSchedule.rates) <= at_restart + 1e-9
    assert RecordSchedule.rates[-1] < 0.05 * learning_rate


def test_resume_with_nothing_to_resume_is_an_error_naming_where_it_looked(tmp_path):
    with pytest.raises(InputError, match="nothing to resume") as err:
        train(compose_train_config([*TINY_UP, "resume=true"], tmp_path))
    assert err.value.file == str(tmp_path / "solution.checkpoints" / "last.ckpt") and err.value.column == "resume"
    assert checkpoint_to_resume("auto", tmp_path) is None   # auto: a new run when there is nothing to resume
    with pytest.raises(InputError, match="true, auto"):
        checkpoint_to_resume("yes", tmp_path)
    # a count-based recipe is fitted in one pass: nothing to resume, it trains; and writes no checkpoint
    result = train(compose_train_config([*SMALL_DEMO, "resume=true", "logger=none"], tmp_path / "pop"))
    assert Path(result["solution"]).is_dir() and not (tmp_path / "pop" / "solution.checkpoints").exists()


def test_random_state_and_best_weights_survive_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    state = random_state()
    draws = torch.rand(3), np.random.rand(3), random.random()
    torch.save(state, tmp_path / "state.pt")
    set_random_state(load(tmp_path / "state.pt"))
    again = torch.rand(3), np.random.rand(3), random.random()
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1]) and draws[2] == again[2]

    best = RestoreBestWeights()
    best.best, best.best_epoch, best.best_state = 0.3, 4, {"w": torch.arange(3.0)}
    torch.save(best.state_dict(), tmp_path / "best.pt")
    restored = RestoreBestWeights()
    restored.load_state_dict(load(tmp_path / "best.pt"))
    assert (restored.best, restored.best_epoch) == (0.3, 4) and torch.equal(restored.best_state["w"], torch.arange(3.0))
