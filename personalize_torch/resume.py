"""Resuming a killed training run where it stopped, with the result an uninterrupted run would have had.

`python train.py ... output_dir=<dir> resume=true` continues from the last training checkpoint of the run that
writes <dir>. What a training checkpoint holds, and who restores it:

- the weights, the optimizer's state, the learning-rate schedule's position, the loops' progress (epoch, step,
  batch within the epoch) and the callbacks' states: Lightning (`Trainer.fit(ckpt_path=...)`). Among the
  callbacks: the time already trained (`max_time`'s Timer, so a time budget counts across the restart and a
  schedule decaying by time sees the same elapsed fraction), early stopping's patience, the best weights so far
  (callbacks.RestoreBestWeights);
- the random state of torch (CPU and CUDA), numpy and Python at the moment the checkpoint was written:
  `TrainingCheckpoints` below, restored when training restarts (dropout, negative samples, ...);
- the training data's order: `ReplayableLoader` below. An epoch's order is drawn from the random state when
  the epoch's pass begins (data/batching.py), so the loader remembers that state and how many batches it
  handed out; a restart in the middle of an epoch draws the same order again and skips the batches already
  trained.

So on a CPU with a fixed seed a resumed run takes the same steps as one never stopped; only a `max_time` budget
(whose cut and time-decayed learning rate follow the clock) makes two runs differ, killed or not.

The checkpoint (`last.ckpt` in `checkpoints.dir`) is written under a temporary name, flushed to disk and
renamed over the previous one, so a kill while writing leaves the previous checkpoint whole. It holds optimizer
state and random states, so it is a different file from a solution version's `model.ckpt` (weights and
hyperparameters, read with `torch.load(weights_only=True)`); it is read the same safe way. Count-based recipes
are fitted in one pass and need no checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint
from torch.utils.data import DataLoader

from personalize_torch.data.datamodule import InteractionsDataModule
from personalize_torch.data.durable_files import sync_directory
from personalize_torch.errors import InputError

log = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.ckpt"
RESUME_CHOICES = ("false", "true", "auto")


# --- random state -------------------------------------------------------------------------------------
def random_state() -> dict[str, Any]:
    """The random state of torch (CPU, and every CUDA device once CUDA is in use), numpy's global generator
    and Python's `random`, as tensors and primitives (so `torch.load(weights_only=True)` reads it)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict[str, Any]) -> None:
    """Restore what `random_state` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- the training data's order -----------------------------------------------------------------------------
class ReplayableLoader:
    """The training DataLoader, able to pick up a pass in the middle.

    Each pass (epoch) remembers the random state it began with and counts the batches it handed out (Lightning
    takes a batch when it trains on it: a loader with a length is not read ahead); `position()` says both.
    After `resume_at(position)`, the next pass, when the position is within an epoch, begins from the
    remembered state (so the sampler draws the same order), skips the batches already trained and then puts
    back the random state the restart restored; a position at the end of an epoch begins a new pass as usual.

    TrainingCheckpoints saves the position and hands it back. The loader also has Lightning's resumable-loader
    interface (`state_dict` / `load_state_dict`, the same position), so that Lightning knows it resumes within
    an epoch; Lightning alone does not suffice: when a learning-rate schedule asks for the number of steps, it
    reads the training loader before restoring the loops' state and then never hands the loader its state."""

    def __init__(self, loader: DataLoader, trainer: pl.Trainer | None = None):
        self.loader, self.trainer = loader, trainer
        self._pass_state: dict[str, Any] | None = None
        self._batches = 0
        self._replay: dict[str, Any] | None = None

    # Lightning tells the sampler the epoch through these (as for the DataLoader itself)
    @property
    def sampler(self):
        return self.loader.sampler

    @property
    def batch_sampler(self):
        return self.loader.batch_sampler

    @property
    def dataset(self):
        return self.loader.dataset

    def __len__(self) -> int:
        return len(self.loader)

    def position(self) -> dict[str, Any]:
        """Where training is in the current pass: the random state it began with and the batches handed out."""
        return {"pass_random_state": self._pass_state, "batches": self._batches}

    def resume_at(self, position: dict[str, Any]) -> None:
        """Make the next pass pick up at `position` (what `position()` returned before the restart)."""
        self._replay = position

    state_dict, load_state_dict = position, resume_at

    def _batches_per_pass(self) -> float:
        """The batches Lightning takes from a pass (`trainer.limit_train_batches` may take fewer than all)."""
        if self.trainer is None:
            return len(self.loader)
        return min(len(self.loader), self.trainer.num_training_batches)

    def __iter__(self):
        replay, self._replay = self._replay, None
        skip = 0
        if replay is not None and replay["pass_random_state"] is not None \
                and 0 < replay["batches"] < self._batches_per_pass():
            skip = replay["batches"]
            restored = random_state()             # what the restart restored: the state after the last step
            set_random_state(replay["pass_random_state"])
        self._pass_state, self._batches = random_state(), 0
        batches = iter(self.loader)
        if skip:
            for _ in range(skip):
                next(batches)
                self._batches += 1
            set_random_state(restored)
            log.info("training resumes at batch %d of the epoch (the same order as before the restart)", skip)
        for batch in batches:
            self._batches += 1
            yield batch


class ReplayableDataModule(InteractionsDataModule):
    """InteractionsDataModule whose training loader is a ReplayableLoader (what `training.train` fits with)."""

    def train_dataloader(self) -> ReplayableLoader:
        return ReplayableLoader(super().train_dataloader(), self.trainer)


# --- writing checkpoints ------------------------------------------------------------------------------------
class TrainingCheckpoints(Checkpoint):
    """Write `<directory>/last.ckpt` every `every_n_steps` optimizer steps, every `every_n_minutes` minutes of
    training and/or at the end of every epoch (after its validation and early stopping), each replacing the last.

    Besides Lightning's contents it saves the random state of every training process, the training loader's
    position (ReplayableLoader), whether training was about to stop (early stopping), the training time so far
    and `run` (what makes the run this run: recipe, hyperparameters, data, seed). Loaded into a run whose `run`
    differs, it is refused with an InputError naming the setting."""

    def __init__(self, directory: str | Path, every_epoch: bool = True, every_n_steps: int | None = None,
                 every_n_minutes: float | None = None, run: dict[str, Any] | None = None):
        if every_n_steps is not None and int(every_n_steps) < 1:
            raise InputError(f"expected a positive number of steps or null, got {every_n_steps!r}",
                             column="checkpoints.every_n_steps")
        if every_n_minutes is not None and not float(every_n_minutes) > 0:
            raise InputError(f"expected a positive number of minutes or null, got {every_n_minutes!r}",
                             column="checkpoints.every_n_minutes")
        self.directory = Path(directory)
        self.path = self.directory / LAST_CHECKPOINT
        self.every_epoch = bool(every_epoch)
        self.every_n_steps = int(every_n_steps) if every_n_steps is not None else None
        self.every_seconds = float(every_n_minutes) * 60 if every_n_minutes is not None else None
        self.run = json.loads(json.dumps(run or {}, default=str))   # primitives, as they will read back
        self.resumed_from: dict[str, Any] | None = None   # epoch, step, training_seconds of the loaded checkpoint
        self.written = 0
        self.write_seconds = 0.0
        self._seconds_before = 0.0    # training time of the processes before this one (from the checkpoint)
        self._started: float | None = None
        self._ended: float | None = None
        self._last_write = 0.0
        self._written_step = -1
        self._restore: dict[str, Any] | None = None
        self._loader: ReplayableLoader | None = None
        self._world_size = 1
        self._pending: dict[str, Any] = {}

    @property
    def state_key(self) -> str:
        return "TrainingCheckpoints"

    def training_seconds(self) -> float:
        """Time spent training (in `fit`) so far, by this process and those before it."""
        if self._started is None:
            return self._seconds_before
        return self._seconds_before + ((self._ended or time.monotonic()) - self._started)

    # --- when -----------------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = self._last_write = time.monotonic()
        loader = trainer.train_dataloader
        self._loader = loader if isinstance(loader, ReplayableLoader) else None
        if self._restore is None:
            return
        # the last moment before training goes on: nothing draws random numbers between here and the next step
        states = self._restore["random_states"]
        if len(states) != trainer.world_size:
            log.warning("the checkpoint was written by %d training processes, this run has %d: each process "
                        "resumes with the random state of the first", len(states), trainer.world_size)
        set_random_state(states[trainer.global_rank if len(states) == trainer.world_size else 0])
        if self._restore["loader_position"] is not None:
            if self._loader is None:
                log.warning("the training loader cannot pick up an epoch in the middle: this epoch is trained "
                            "from its start again")
            else:
                self._loader.resume_at(self._restore["loader_position"])
        if self._restore["should_stop"]:
            trainer.should_stop = True
        self._restore = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._world_size = trainer.world_size

    def _every_process_random_state(self) -> list[dict[str, Any]]:
        """Each training process's random state, by rank (every process writes the checkpoint together)."""
        state = random_state()
        if self._world_size == 1 or not torch.distributed.is_initialized():
            return [state]
        states: list[Any] = [None] * self._world_size
        torch.distributed.all_gather_object(states, state)
        return states

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ended = time.monotonic()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        # An epoch's last batch is left to the end of the epoch (`every_epoch`, after validation): Lightning
        # takes a checkpoint written there for a finished epoch and would not validate it again.
        if step == self._written_step or batch_idx + 1 >= trainer.num_training_batches:
            return
        due = self.every_n_steps is not None and step % self.every_n_steps == 0
        if not due and self.every_seconds is not None:
            # the processes decide together (each one's clock differs; all of them write or none)
            due = trainer.strategy.broadcast(time.monotonic() - self._last_write >= self.every_seconds)
        if due:
            self.write(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.every_epoch:
            self.write(trainer)

    # --- what -----------------------------------------------------------------------------------------
    def write(self, trainer: pl.Trainer) -> None:
        """Save the training state to a temporary file, flush it and rename it over `last.ckpt`."""
        start = time.monotonic()
        self._pending = {"epoch": trainer.current_epoch, "step": trainer.global_step,
                         "should_stop": bool(trainer.should_stop), "training_seconds": self.training_seconds()}
        tmp = self.directory / f".{LAST_CHECKPOINT}.tmp"
        if trainer.is_global_zero:
            self.directory.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(tmp, weights_only=False)   # every process takes part; the first one writes
        if trainer.is_global_zero:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            sync_directory(self.directory)
        self._written_step, self._last_write = trainer.global_step, time.monotonic()
        self.written += 1
        self.write_seconds += self._last_write - start

    def state_dict(self) -> dict[str, Any]:
        return {"run": self.run, "random_states": self._every_process_random_state(),
                "loader_position": self._loader.position() if self._loader is not None else None, **self._pending}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_same_run(state.get("run", {}), self.run, self.path)
        self._restore = {k: state[k] for k in ("random_states", "loader_position", "should_stop")}
        self._seconds_before = float(state["training_seconds"])
        self.resumed_from = {k: state[k] for k in ("epoch", "step", "training_seconds")}
        self._written_step = int(state["step"])


def check_same_run(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """An InputError naming the first setting in which the run that wrote a checkpoint differs from this one."""
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            for name in sorted(set(old) | set(new)):
                if old.get(name) != new.get(name):
                    raise _different_run(path, f"{key}.{name}", old.get(name), new.get(name))
        elif old != new:
            raise _different_run(path, key, old, new)


def _different_run(path: Path, setting: str, old: Any, new: Any) -> InputError:
    return InputError(f"this checkpoint was written by a run with {setting}={old!r}, not {new!r}: resume with the "
                      "settings of the run that wrote it, or start afresh without resume=true",
                      file=str(path), column=setting)


# --- finding the checkpoint to resume -------------------------------------------------------------------------
def checkpoint_directory(output_dir: str | Path, directory: str | Path | None = None) -> Path:
    """Where a run's training checkpoints go: `directory`, or beside the solution version (`<output_dir>`
    replaced by `<output_dir>.checkpoints`)."""
    if directory:
        return Path(directory)
    out = Path(output_dir)
    return out.with_name(f"{out.name}.checkpoints")


def checkpoint_to_resume(resume: bool | str, directory: Path) -> Path | None:
    """The checkpoint a run continues from: `resume` false -> None; true -> `directory/last.ckpt`, an InputError
    when there is none; auto -> that checkpoint when there is one, else None (a new run)."""
    choice = str(resume).lower()
    if choice not in RESUME_CHOICES:
        raise InputError(f"expected one of {', '.join(RESUME_CHOICES)}, got {resume!r}", column="resume")
    path = directory / LAST_CHECKPOINT
    if choice == "false":
        if path.exists():
            log.info("a new run: the checkpoint of an earlier run in %s will be replaced (resume=true would "
                     "continue that run)", directory)
        return None
    if path.exists():
        return path
    if choice == "auto":
        log.info("no checkpoint in %s: training from the start", directory)
        return None
    raise InputError("nothing to resume: no training checkpoint here. Either the run was stopped before its first "
                     "checkpoint, or output_dir (or checkpoints.dir) is not the stopped run's; run again without "
                     "resume=true to start afresh", file=str(path), column="resume")
