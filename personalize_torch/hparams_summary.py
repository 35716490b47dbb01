"""TensorBoard's HParams tab: one session per training run, with its settings and its final metrics.

`training.train` calls `write_hparams_session` once the final validation (and test) metrics are known,
so every run of a sweep (`-m hparams_search=...`, `-m automl=default`) is one row of the HParams table:

    <log_dir>/                 the run's curves: train/loss, train/lr, val/* per epoch (Lightning's logger)
    <log_dir>/hparams/         the HParams session: its settings, and val/* and test/* as measured at the end
                               (the best epoch's weights when callbacks.best_weights is on), one point each

Why a run of its own and not Lightning's `log_hyperparams(params, metrics)`: that also writes an Experiment
summary into every run, and TensorBoard shows the first Experiment it finds, so an AutoML sweep (recipes
with different hyperparameters) would lose the other recipes' columns. Without one, TensorBoard builds the
table from every session: the union of their settings, and as metrics the scalar tags of the session runs,
which here are only the final metrics (the per-epoch curves, in the parent run, would add a column per
curve).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

HPARAMS_RUN = "hparams"


def run_hparams(cfg: DictConfig, recipe, split: str, data_keys=()) -> dict:
    """The settings a run is compared by: the recipe, its hyperparameters (sizes taken from the data, in
    `data_keys`, left out), and the data and trainer settings a sweep may change. Values are numbers,
    booleans or strings (lists and None become text)."""
    params = {"recipe": recipe.recipe_name}
    params.update((name, value) for name, value in recipe.hparams.items() if name not in data_keys)
    data = cfg.data
    params.update({"data": data.get("group") or data.get("interactions") or data.get("path") or "demo",
                   "data.split": split, "data.batch_size": data.get("batch_size"),
                   "trainer.max_epochs": cfg.trainer.get("max_epochs"), "seed": cfg.get("seed")})
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in params.items()}


def write_hparams_session(log_dir: str | Path, hparams: dict, metrics: dict[str, dict[str, float]],
                          step: int = 0) -> Path:
    """Write one HParams session under `<log_dir>/hparams`: `hparams` and `metrics` ({"val": {...},
    "test": {...}}, logged as `val/<name>` and `test/<name>` scalars at `step`). Returns its directory."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    path = Path(log_dir) / HPARAMS_RUN
    flat = {f"{stage}/{name}": float(value) for stage, values in metrics.items() for name, value in values.items()}
    _, start, end = hparams_summaries(hparams, flat)    # the Experiment summary is left out (see above)
    writer = SummaryWriter(log_dir=str(path))
    try:
        file_writer = writer._get_file_writer()
        file_writer.add_summary(start, step)
        for tag, value in flat.items():
            writer.add_scalar(tag, value, step)
        file_writer.add_summary(end, step)      # status: success
    finally:
        writer.close()
    return path
