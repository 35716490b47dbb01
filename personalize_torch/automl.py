"""AutoML across recipes, as Personalize's `performAutoML`: train each candidate recipe on the same data and
split, keep the best on validation, and record why the others lost or were skipped.

    python train.py -m automl=default [data=...] [hydra.sweeper.recipes=[sims,popularity_count]]
    python train.py -m automl=default solution_config=automl.json    # autoMLConfig.recipeList / metricName

Data rules are applied before any training, as Personalize does: a Meta recipe needs Items or Users
metadata. Rules that need the prepared data (HRNN-Coldstart: categorical Items metadata, a
CREATION_TIMESTAMP and at least one cold item) are the recipe's own checks: it raises an InputError before
its first training step, and the candidate is recorded as skipped with that message.

This module knows nothing about Hydra; the sweeper in `hydra_plugins/personalize_sweepers` launches the
candidates (each one a normal `training.train` run) and calls these functions.
"""

from __future__ import annotations

from pathlib import Path

import personalize_torch.configs
from personalize_torch.data import constants as C
from personalize_torch.data.dataset_group import DatasetGroup
from personalize_torch.errors import InputError
from personalize_torch.hpo import best_trial
from personalize_torch.recipes import RECIPES
from personalize_torch.solution_config import recipe_arn

# Personalize's AutoML candidates for USER_PERSONALIZATION.
DEFAULT_RECIPES = ("hrnn", "hrnn_meta", "hrnn_coldstart", "user_personalization")
# Recipes that are pointless without metadata (they would train as their metadata-free parent).
METADATA_RECIPES = ("hrnn_meta", "hrnn_coldstart")
# performAutoML + performHPO: the winner is tuned with this many trials when hpoConfig does not say.
DEFAULT_HPO_TRIALS = 10
# The ranges that tune each recipe after AutoML picked it: configs/hparams_search/<name>.yaml (HRNN-Metadata
# and HRNN-Coldstart have HRNN's hyperparameters). A recipe not listed has nothing to tune.
TUNING_RANGES = {"user_personalization": "user_personalization", "hrnn": "hrnn", "hrnn_meta": "hrnn",
                 "hrnn_coldstart": "hrnn", "sims": "sims"}


def tuning_ranges_file(recipe: str) -> Path | None:
    """The hparams_search config whose `hydra.sweeper.params` tune `recipe`, or None."""
    name = TUNING_RANGES.get(recipe)
    return None if name is None else Path(personalize_torch.configs.__file__).parent / "hparams_search" / f"{name}.yaml"


def check_recipes(recipes) -> list[str]:
    recipes = [str(r) for r in recipes]
    if not recipes:
        raise InputError("no candidate recipes", column="hydra.sweeper.recipes")
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        raise InputError(f"unknown recipe(s) {', '.join(unknown)}; available: {', '.join(sorted(RECIPES))}",
                         column="hydra.sweeper.recipes")
    if len(set(recipes)) != len(recipes):
        raise InputError(f"a recipe is listed twice: {recipes}", column="hydra.sweeper.recipes")
    return recipes


def _metadata_columns(df, id_column: str) -> list[str]:
    if df is None:
        return []
    reserved = {id_column, C.CREATION_TIMESTAMP}
    return [c for c in df.columns if c not in reserved]


def data_rule_failures(group: DatasetGroup, recipes) -> dict[str, str]:
    """{recipe: why it cannot use this dataset group} for the candidates a data rule excludes."""
    item_meta = _metadata_columns(group.items, C.ITEM_ID)
    user_meta = _metadata_columns(group.users, C.USER_ID)
    failures = {}
    for recipe in recipes:
        if recipe in METADATA_RECIPES and not item_meta and not (recipe == "hrnn_meta" and user_meta):
            what = "Items metadata" if recipe == "hrnn_coldstart" else "Items or Users metadata"
            failures[recipe] = f"{recipe} needs {what}, and the dataset group {group.name!r} has none"
    return failures


def automl_result(candidates: list[dict], objective: str, direction: str) -> dict:
    """Personalize's `autoMLResult` ({"bestRecipeArn"}) plus every candidate's score, or why it has none.

    `candidates`: [{"recipe", "state": COMPLETE | SKIPPED | FAILED, "value", "reason", ...}]."""
    best = best_trial([{**c, "number": i} for i, c in enumerate(candidates)], direction)
    if best is None:
        reasons = "; ".join(f"{c['recipe']}: {c.get('reason')}" for c in candidates)
        raise InputError(f"no candidate recipe trained: {reasons}", column="hydra.sweeper.recipes")
    return {
        "bestRecipeArn": recipe_arn(best["recipe"]),
        "bestRecipe": best["recipe"],
        "objective": objective,
        "direction": direction,
        "candidates": [{"recipe": c["recipe"], "recipeArn": recipe_arn(c["recipe"]), "state": c["state"],
                        "score": c.get("value"), **({"reason": c["reason"]} if c.get("reason") else {})}
                       for c in candidates],
    }
