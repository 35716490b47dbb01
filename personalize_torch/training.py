"""train(cfg): prepare the data, build the recipe from its description, count the recipe's statistics, shape
the loaders by what the recipe needs, fit with a Lightning Trainer; saves a solution version and returns its
metrics. Hydra configs come in; nothing else here knows about Hydra. The helpers (`compose_config`,
`prepare_data`, `build_recipe`, `data_module`) are public so that benchmarks and tests build exactly what
`train` builds. A gradient-trained recipe writes training checkpoints while it fits (`checkpoints`), and
`resume=true` continues a killed run from the last one (resume.py)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from personalize_torch.callbacks import RestoreBestWeights
from personalize_torch.data.datamodule import InteractionsDataModule
from personalize_torch.data.description import SIZE_NAMES
from personalize_torch.data.domains import check_use_case
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.sources import load_dataset_group
from personalize_torch.data.stored_events import with_stored_events
from personalize_torch.embedding_projector import EmbeddingProjector
from personalize_torch.errors import InputError
from personalize_torch.hparams_summary import run_hparams, write_hparams_session
from personalize_torch.metrics.ranking_metrics import personalize_report
from personalize_torch.process_share import add_up, join_processes, launched_share, set_trainer_for_processes
from personalize_torch.recipes import RECIPES, Recipe
from personalize_torch.recipes.blend import BlendMember
from personalize_torch.resume import (
    ReplayableDataModule,
    TrainingCheckpoints,
    checkpoint_directory,
    checkpoint_to_resume,
)
from personalize_torch.solution_config import read_solution_config
from personalize_torch.solution_version import load_solution_version, save_solution_version

log = logging.getLogger(__name__)
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def _stage_metrics(metrics: dict, stage: str) -> dict[str, float]:
    prefix = f"{stage}/"
    return {k[len(prefix):]: float(v) for k, v in metrics.items() if k.startswith(prefix)}


def compose_config(overrides: list[str] | tuple[str, ...] = (), config_name: str = "train",
                   output_dir: str | Path | None = None) -> DictConfig:
    """The config train.py (or serve.py, `config_name="serve"`) composes from the same overrides, for code
    that trains without the command line (benchmarks, tests, notebooks). `output_dir` replaces Hydra's run
    directory (the solution version goes there; TensorBoard logs beside it)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    if output_dir is not None:
        with open_dict(cfg):
            cfg.output_dir = str(output_dir)
            if cfg.get("logger"):
                cfg.logger.save_dir = str(Path(output_dir).parent / "logs")
    return cfg


def recipe_class(recipe_cfg: DictConfig) -> type[Recipe]:
    return hydra.utils.get_class(recipe_cfg._target_)


def prepare_data(cfg: DictConfig, share: tuple[int, int] | None = None) -> PreparedData:
    """The dataset group `cfg.data` names, its events selected (event type, threshold, eventsConfig, a domain
    use case's event type), encoded and split as `train(cfg)` does (the split: `data.split`, or the recipe's
    own when null). `share=(rank, world size)`: a dataset group directory is read for that share of its users
    only (see process_share)."""
    data = cfg.data
    group = load_data(data, share)
    return PreparedData(group, split=data.split or recipe_class(cfg.recipe).default_split,
                        event_type=_event_type(cfg, group), event_value_threshold=data.event_value_threshold,
                        seed=cfg.seed, check_minimum=data.check_minimum, event_parameters=_event_parameters(data))


def _event_parameters(data: DictConfig) -> list[dict] | None:
    return OmegaConf.to_container(data.event_parameters) if data.get("event_parameters") else None


def _event_type(cfg: DictConfig, group) -> str | None:
    """`data.event_type`, or a domain use case's event type as the data spells it."""
    use_case = cfg.get("use_case")
    return check_use_case(group, use_case) if use_case else cfg.data.event_type


def build_recipe(recipe_cfg: DictConfig, data: PreparedData) -> Recipe:
    """The recipe a config names (`_target_` + hyperparameters), built from the data's description; a
    recipe that combines solution versions (Blend) gets the ones its `solutions` names, loaded."""
    params = {k: v for k, v in OmegaConf.to_container(recipe_cfg, resolve=True).items() if k != "_target_"}
    recipe_cls = recipe_class(recipe_cfg)
    check_hyperparameter_names(recipe_cls, params)
    if recipe_cls.combines_solution_versions:
        params["members"] = [BlendMember(str(path), solution.recipe, solution.info.get("data", {}))
                             for path, solution in ((p, load_solution_version(p)) for p in params.pop("solutions", []))]
    return recipe_cls.from_data(data.describe(), **params)


def check_hyperparameter_names(recipe_cls: type[Recipe], params: dict, where: str = "recipe.",
                               file: str | None = None) -> None:
    """An InputError naming the first of `params` the recipe does not take, or that comes from the data."""
    accepted = recipe_cls.hyperparameter_defaults()
    from_data = SIZE_NAMES
    for name in params:
        if name in from_data and name in accepted:
            raise InputError(f"{recipe_cls.recipe_name}'s {name} comes from the data; leave it out",
                             column=f"{where}{name}", file=file)
        if name not in accepted and not (name == "solutions" and recipe_cls.combines_solution_versions):
            names = sorted(set(accepted) - from_data - {"members"})
            raise InputError(f"{recipe_cls.recipe_name} has no hyperparameter {name!r}; its hyperparameters: "
                             f"{', '.join(names)}", column=f"{where}{name}", file=file)


def data_module(data_cfg: DictConfig, data: PreparedData, recipe: Recipe, seed: int = 0,
                replayable: bool = False) -> InteractionsDataModule:
    """The loaders of `data` shaped by what `recipe` declares it needs (`Recipe.loader_needs`); `replayable`:
    a training loader that a resumed run picks up in the middle of an epoch (resume.ReplayableLoader), as
    `train` fits gradient-trained recipes with."""
    module = ReplayableDataModule if replayable else InteractionsDataModule
    return module(data, recipe.loader_needs(), batch_size=data_cfg.batch_size,
                  eval_batch_size=data_cfg.eval_batch_size, seed=seed,
                  length_buckets=data_cfg.get("length_buckets", True),
                  validation_users=data_cfg.get("validation_users", "auto"),
                  test_users=data_cfg.get("test_users"))


def training_checkpoints(cfg: DictConfig, recipe: Recipe, data: PreparedData,
                         share: tuple[int, int] | None) -> TrainingCheckpoints | None:
    """The callback writing this run's training checkpoints (`cfg.checkpoints`), None when `checkpoints` is null
    or every trigger is off. Its `run` is what a resumed run must share with the one that wrote the checkpoint:
    the recipe and its hyperparameters, the data (its fingerprint; with each process reading its own share of a
    dataset group, the data settings) and the seed."""
    settings = cfg.get("checkpoints")
    if settings is None:
        return None
    every_epoch, steps, minutes = (settings.get("every_epoch", True), settings.get("every_n_steps"),
                                   settings.get("every_n_minutes"))
    if not every_epoch and steps is None and minutes is None:
        return None
    data_identity = data.fingerprint if share is None else OmegaConf.to_container(cfg.data, resolve=True)
    run = {"recipe": recipe.recipe_name, "hyperparameters": dict(recipe.hparams), "data": data_identity,
           "seed": cfg.seed}
    return TrainingCheckpoints(checkpoint_directory(cfg.output_dir, settings.get("dir")), every_epoch=every_epoch,
                               every_n_steps=steps, every_n_minutes=minutes, run=run)


def apply_solution_config(cfg: DictConfig) -> None:
    """Merge a Personalize CreateSolution JSON (`solution_config=<path>`) into the config."""
    path = cfg.get("solution_config")
    if not path:
        return
    sc = read_solution_config(path)
    with open_dict(cfg):
        if sc["recipe"] is not None:
            if sc["recipe"] not in RECIPES:
                raise InputError(f"recipe {sc['recipe']!r} is not available; available: {', '.join(sorted(RECIPES))}",
                                 file=str(path), column="recipeArn")
            if sc["recipe"] != recipe_class(cfg.recipe).recipe_name:
                cfg.recipe = {"_target_": f"{RECIPES[sc['recipe']].__module__}.{RECIPES[sc['recipe']].__name__}"}
        if sc["event_type"] is not None:
            cfg.data.event_type = sc["event_type"]
        if sc["event_value_threshold"] is not None:
            cfg.data.event_value_threshold = sc["event_value_threshold"]
        if sc["event_parameters"]:
            cfg.data.event_parameters = [{k: p[k] for k in ("event_type", "event_value_threshold")}
                                         for p in sc["event_parameters"]]
            weights = {p["event_type"]: p["weight"] for p in sc["event_parameters"] if p["weight"] is not None}
            if weights:
                recipe_cls = recipe_class(cfg.recipe)
                if "event_type_weights" not in recipe_cls.hyperparameter_defaults():
                    raise InputError(f"recipe {recipe_cls.recipe_name} does not weight event types; leave out "
                                     "eventParametersList[].weight", file=str(path), column="eventsConfig")
                cfg.recipe.event_type_weights = weights
        check_hyperparameter_names(recipe_class(cfg.recipe), sc["hyperparameters"],
                                   where="algorithmHyperParameters.", file=str(path))
        for name, value in sc["hyperparameters"].items():
            cfg.recipe[name] = value
        accepted = recipe_class(cfg.recipe).hyperparameter_defaults()
        for name, value in sc["featurization"].items():   # the percentiles, for the recipes that have them
            if name in accepted:   # read_solution_config refused values contradicting algorithmHyperParameters
                cfg.recipe[name] = value


def resolve_precision(trainer_cfg: DictConfig) -> None:
    """`trainer.precision: auto` becomes "bf16-mixed" (bf16 autocast, float32 weights) when the trainer will run
    on a CUDA GPU with bf16 support, else "32-true"; the same config trains on a CPU or a GPU."""
    if str(trainer_cfg.get("precision", "")) != "auto":
        return
    accelerator = str(trainer_cfg.get("accelerator", "auto")).lower()
    on_cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    with open_dict(trainer_cfg):
        trainer_cfg.precision = "bf16-mixed" if on_cuda and torch.cuda.is_bf16_supported() else "32-true"


def describe_devices(trainer: pl.Trainer) -> str:
    """Where a trainer runs, e.g. "cpu (precision 32-true)", "2 x NVIDIA H200 (precision bf16-mixed)"."""
    device = trainer.strategy.root_device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    count = f"{trainer.num_devices} x " if trainer.num_devices > 1 else ""
    return f"{count}{name} (precision {trainer.precision})"


def load_data(data: DictConfig, share: tuple[int, int] | None = None):
    """The dataset group a `data` config names (also read by AutoML's data rules); `share`: see prepare_data."""
    group = load_dataset_group(format=data.format, interactions=data.interactions, items=data["items"],
                               users=data.users, interactions_schema=data.interactions_schema,
                               items_schema=data.items_schema, users_schema=data.users_schema, path=data.path,
                               demo=OmegaConf.to_container(data.demo) if data.demo is not None else None,
                               group=data.get("group"), share=share)
    if data.get("events_db"):  # bulk imports + what the server stored (PutEvents / PutItems / PutUsers)
        group = with_stored_events(group, data.events_db)
    return group


def train(cfg: DictConfig) -> dict:
    """Train `cfg.recipe` on `cfg.data`; returns {"solution": path, "metrics": {...}, ...}."""
    apply_solution_config(cfg)
    # Before reading the data: a resume that finds nothing to resume says so at once.
    checkpoint_dir = checkpoint_directory(cfg.output_dir, (cfg.get("checkpoints") or {}).get("dir"))
    resume = cfg.get("resume", False)
    if recipe_class(cfg.recipe).count_based:
        if str(resume).lower() != "false":
            log.info("%s is counted in one pass: nothing to resume, training from the start",
                     recipe_class(cfg.recipe).recipe_name)
        resume_from = None
    else:
        resume_from = checkpoint_to_resume(resume, checkpoint_dir)
    pl.seed_everything(cfg.seed, workers=True)
    share = launched_share() if cfg.data.get("group") else None   # torchrun: each process reads its share
    data = prepare_data(cfg, share)
    recipe = build_recipe(cfg.recipe, data)
    if share is not None:
        if recipe.count_based:
            raise InputError(f"{recipe.recipe_name} is counted in one pass: train it in one process, not with "
                             "torchrun", column="recipe")
        set_trainer_for_processes(cfg.trainer)
        join_processes(str(cfg.trainer.get("accelerator", "auto")))
    start = time.perf_counter()
    recipe.count_statistics(data.split)
    if share is not None:
        recipe.combine_statistics(add_up)
    counting = time.perf_counter() - start   # part of fitting: for Popularity-Count it is all of it
    dm = data_module(cfg.data, data, recipe, seed=cfg.seed, replayable=not recipe.count_based)

    logger = hydra.utils.instantiate(cfg.logger) if cfg.get("logger") else False
    # Count-based recipes fit in one pass; their validation runs once, after fitting.
    trainer_overrides = {"max_epochs": 1, "check_val_every_n_epoch": 2} if recipe.count_based else {}
    if recipe.fitted_by_counting:   # counted already: no pass over the training batches
        trainer_overrides["limit_train_batches"] = 0
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    for callback in callbacks:
        if isinstance(callback, EmbeddingProjector):   # labels the item vectors with the Items metadata
            callback.label_items(data)
    checkpoints = None if recipe.count_based else training_checkpoints(cfg, recipe, data, share)
    if checkpoints is not None:   # Lightning places a checkpoint callback after the others
        callbacks.append(checkpoints)
        trainer_overrides["enable_checkpointing"] = True
    resolve_precision(cfg.trainer)
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, logger=logger, callbacks=callbacks,
                                                  **trainer_overrides)
    if trainer.is_global_zero:
        log.info("training %s on %s", recipe.recipe_name, describe_devices(trainer))
    if resume_from is not None and trainer.is_global_zero:
        log.info("resuming from %s", resume_from)
    fit_start = time.perf_counter()
    trainer.fit(recipe, datamodule=dm, ckpt_path=resume_from)
    for callback in trainer.callbacks:   # weights trained after the last validation: kept if better
        if isinstance(callback, RestoreBestWeights):
            callback.consider_final_weights(recipe, lambda: trainer.validate(recipe, datamodule=dm, verbose=False))
    seconds = {"fit": round(counting + time.perf_counter() - fit_start, 1)}
    start = time.perf_counter()
    metrics = {"val": _stage_metrics(trainer.validate(recipe, datamodule=dm, verbose=False)[0], "val")}
    seconds["val"] = round(time.perf_counter() - start, 1)   # one full-ranking pass over the held-out users
    if data.split.test is not None:
        start = time.perf_counter()
        metrics["test"] = _stage_metrics(trainer.test(recipe, datamodule=dm, verbose=False)[0], "test")
        seconds["test"] = round(time.perf_counter() - start, 1)
    final = metrics.get("test", metrics["val"])
    if isinstance(logger, pl.loggers.TensorBoardLogger):   # a row of TensorBoard's HParams tab, final metrics
        write_hparams_session(logger.log_dir, run_hparams(cfg, recipe, data.split.kind, data.describe().sizes()),
                              metrics, trainer.global_step)

    if share is not None and trainer.is_global_zero:   # the solution version holds every user's history
        data = prepare_data(cfg, (0, 1))
    info = {
        "data": {"name": data.group.name, "fingerprint": data.fingerprint, "split": data.split.kind,
                 "event_type": data.event_type, "event_value_threshold": data.event_value_threshold,
                 "event_parameters": data.event_parameters,
                 "n_interactions": int(len(data.sequences.item_idx)), "n_users": len(data.user_vocab),
                 "n_items": len(data.item_vocab)},
        "metrics": metrics,
        "seconds": seconds,        # training (fit, with its validations) and one final val / test pass
        "personalize_metrics": personalize_report(final),
    }
    if checkpoints is not None:   # training time across restarts, checkpoints written by this process
        info["training"] = {"seconds": round(checkpoints.training_seconds(), 1),
                            "checkpoints_written": checkpoints.written,
                            "checkpoint_seconds": round(checkpoints.write_seconds, 2),
                            "resumed_from": checkpoints.resumed_from}
    use_case = cfg.get("use_case")
    if use_case:
        info["use_case"] = {k: use_case.get(k) for k in ("domain", "name", "filter")}
    if not trainer.is_global_zero:   # DDP: the other processes trained and evaluated; one writes.
        # Trainer.save_checkpoint (inside save_solution_version) waits for every process at a barrier and
        # writes on rank 0 only: join it here; nothing is written by this process.
        trainer.save_checkpoint(Path(cfg.output_dir) / "model.ckpt", weights_only=True)
        return {"solution": None, **info}
    out = save_solution_version(Path(cfg.output_dir), trainer, recipe, data, info)
    if checkpoints is not None and not (cfg.get("checkpoints") or {}).get("keep", False):
        shutil.rmtree(checkpoints.directory, ignore_errors=True)   # the solution version is saved: done with them
    return {"solution": str(out), **info}
