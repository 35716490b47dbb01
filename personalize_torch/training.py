"""train(cfg): data module first, then the recipe sized from the data, then the Trainer; saves a
solution version and returns its metrics. Hydra configs come in; nothing else here knows about Hydra."""

from __future__ import annotations

import inspect
import logging
import time
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from personalize_torch.callbacks import RestoreBestWeights
from personalize_torch.data.datamodule import InteractionsDataModule
from personalize_torch.data.domains import check_use_case
from personalize_torch.data.sources import load_dataset_group
from personalize_torch.data.stored_events import with_stored_events
from personalize_torch.metrics.ranking_metrics import personalize_report
from personalize_torch.errors import InputError
from personalize_torch.hparams_summary import run_hparams, write_hparams_session
from personalize_torch.recipes import RECIPES, Recipe
from personalize_torch.solution_config import read_solution_config
from personalize_torch.solution_version import save_solution_version

log = logging.getLogger(__name__)


def _stage_metrics(metrics: dict, stage: str) -> dict[str, float]:
    prefix = f"{stage}/"
    return {k[len(prefix):]: float(v) for k, v in metrics.items() if k.startswith(prefix)}


def data_sizes(dm: InteractionsDataModule, recipe_cls: type) -> dict:
    """The sizes a recipe takes from the data (n_items always; context cardinalities if it accepts them)."""
    params = inspect.signature(recipe_cls.__init__).parameters
    sizes = {"n_items": dm.n_items}
    if "context_cardinalities" in params:
        sizes["context_cardinalities"] = dm.context_cardinalities
    if "item_value_slots" in params:
        features = dm.item_features
        sizes.update(item_value_vocab_size=features.vocab_size, item_value_slots=features.categorical.shape[1],
                     item_numeric_features=features.numeric.shape[1])
    if "event_type_names" in params:
        sizes["event_type_names"] = [str(t) for t in dm.event_type_vocab.ids] if dm.event_type_vocab is not None else []
    if "median_history_length" in params:
        sizes["median_history_length"] = dm.median_history_length
    if "item_text_slots" in params:
        sizes["item_text_slots"] = dm.item_text_tokens.shape[1]
    if "user_value_slots" in params:
        users = dm.user_features
        sizes.update(n_users=dm.n_users, user_value_vocab_size=users.vocab_size,
                     user_value_slots=users.categorical.shape[1], user_numeric_features=users.numeric.shape[1])
    return sizes


def build_recipe(recipe_cfg: DictConfig, dm: InteractionsDataModule) -> Recipe:
    """The recipe a config names (`_target_` + hyperparameters), sized from the data."""
    params = {k: v for k, v in OmegaConf.to_container(recipe_cfg, resolve=True).items() if k != "_target_"}
    return make_recipe(hydra.utils.get_class(recipe_cfg._target_), dm, **params)


def make_recipe(recipe_cls: type[Recipe], dm: InteractionsDataModule, **hyperparameters) -> Recipe:
    """A recipe with the sizes it takes from the data, given the item metadata when it reads it."""
    recipe = recipe_cls(**data_sizes(dm, recipe_cls), **hyperparameters)
    if hasattr(recipe, "set_item_features"):
        features = dm.item_features
        recipe.set_item_features(torch.from_numpy(features.categorical), torch.from_numpy(features.numeric))
    if hasattr(recipe, "set_item_text"):
        recipe.set_item_text(torch.from_numpy(dm.item_text_tokens))
    if hasattr(recipe, "set_user_features"):
        users = dm.user_features
        recipe.set_user_features(torch.from_numpy(users.categorical), torch.from_numpy(users.numeric))
    if hasattr(recipe, "set_item_activity"):   # HRNN-Coldstart: which items are cold
        recipe.set_item_activity(torch.from_numpy(dm.item_interaction_counts),
                                 torch.from_numpy(dm.item_creation_timestamps))
    return recipe


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
            if sc["recipe"] != cfg.recipe._target_.rsplit(".", 2)[-2]:
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
                recipe_cls = hydra.utils.get_class(cfg.recipe._target_)
                if "event_type_weights" not in inspect.signature(recipe_cls.__init__).parameters:
                    raise InputError(f"recipe {recipe_cls.recipe_name} does not weight event types; leave out "
                                     "eventParametersList[].weight", file=str(path), column="eventsConfig")
                cfg.recipe.event_type_weights = weights
        for name, value in sc["hyperparameters"].items():
            cfg.recipe[name] = value
        accepted = inspect.signature(hydra.utils.get_class(cfg.recipe._target_).__init__).parameters
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


def load_data(data: DictConfig):
    """The dataset group a `data` config names (also read by AutoML's data rules)."""
    group = load_dataset_group(format=data.format, interactions=data.interactions, items=data["items"],
                               users=data.users, interactions_schema=data.interactions_schema,
                               items_schema=data.items_schema, users_schema=data.users_schema, path=data.path,
                               demo=OmegaConf.to_container(data.demo) if data.demo is not None else None,
                               group=data.get("group"))
    if data.get("events_db"):  # bulk imports + what the server stored (PutEvents / PutItems / PutUsers)
        group = with_stored_events(group, data.events_db)
    return group


def train(cfg: DictConfig) -> dict:
    """Train `cfg.recipe` on `cfg.data`; returns {"solution": path, "metrics": {...}, ...}."""
    apply_solution_config(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    data = cfg.data
    group = load_data(data)
    event_type, use_case = data.event_type, cfg.get("use_case")
    event_parameters = OmegaConf.to_container(data.event_parameters) if data.get("event_parameters") else None
    if use_case:  # a domain use case: its event type (as the data spells it) and its filter
        event_type = check_use_case(group, use_case)
    # data.split null: the recipe's own split (Personalize's user-segmentation split for Item-Affinity)
    split = data.split or getattr(hydra.utils.get_class(cfg.recipe._target_), "default_split", "personalize")
    dm = InteractionsDataModule(group, split=split, event_type=event_type,
                                event_value_threshold=data.event_value_threshold, batch_size=data.batch_size,
                                eval_batch_size=data.eval_batch_size, seed=cfg.seed,
                                check_minimum=data.check_minimum, length_buckets=data.get("length_buckets", True),
                                event_parameters=event_parameters)
    dm.setup()
    recipe = build_recipe(cfg.recipe, dm)
    dm.configure_for(recipe)

    logger = hydra.utils.instantiate(cfg.logger) if cfg.get("logger") else False
    # Count-based recipes fit in one pass; their validation runs once, after fitting.
    trainer_overrides = {"max_epochs": 1, "check_val_every_n_epoch": 2} if recipe.count_based else {}
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    resolve_precision(cfg.trainer)
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, logger=logger, callbacks=callbacks,
                                                  **trainer_overrides)
    fit_start = time.perf_counter()
    trainer.fit(recipe, datamodule=dm)
    for callback in trainer.callbacks:   # weights trained after the last validation: kept if better
        if isinstance(callback, RestoreBestWeights):
            callback.consider_final_weights(recipe, lambda: trainer.validate(recipe, datamodule=dm, verbose=False))
    seconds = {"fit": round(time.perf_counter() - fit_start, 1)}
    start = time.perf_counter()
    metrics = {"val": _stage_metrics(trainer.validate(recipe, datamodule=dm, verbose=False)[0], "val")}
    seconds["val"] = round(time.perf_counter() - start, 1)   # one full-ranking pass over the held-out users
    if dm.split.test is not None:
        start = time.perf_counter()
        metrics["test"] = _stage_metrics(trainer.test(recipe, datamodule=dm, verbose=False)[0], "test")
        seconds["test"] = round(time.perf_counter() - start, 1)
    final = metrics.get("test", metrics["val"])
    if isinstance(logger, pl.loggers.TensorBoardLogger):   # a row of TensorBoard's HParams tab, final metrics
        write_hparams_session(logger.log_dir, run_hparams(cfg, recipe, dm.split.kind, data_sizes(dm, type(recipe))),
                              metrics, trainer.global_step)

    info = {
        "data": {"name": group.name, "fingerprint": dm.fingerprint(), "split": dm.split.kind,
                 "event_type": event_type, "event_value_threshold": data.event_value_threshold,
                 "event_parameters": event_parameters,
                 "n_interactions": int(len(dm.sequences.item_idx)), "n_users": len(dm.user_vocab),
                 "n_items": len(dm.item_vocab)},
        "metrics": metrics,
        "seconds": seconds,        # training (fit, with its validations) and one final val / test pass
        "personalize_metrics": personalize_report(final),
    }
    if use_case:
        info["use_case"] = {k: use_case.get(k) for k in ("domain", "name", "filter")}
    if not trainer.is_global_zero:   # DDP: the other processes trained and evaluated; one writes.
        # Trainer.save_checkpoint (inside save_solution_version) waits for every process at a barrier and
        # writes on rank 0 only: join it here; nothing is written by this process.
        trainer.save_checkpoint(Path(cfg.output_dir) / "model.ckpt")
        return {"solution": None, **info}
    out = save_solution_version(Path(cfg.output_dir), trainer, recipe, dm, info)
    log.info("solution version saved to %s", out)
    return {"solution": str(out), **info}
