"""Personalize CreateSolution JSON -> recipe, event selection and string-valued hyperparameters."""

import json

import pytest

from personalize_torch.errors import InputError
from personalize_torch.recipes.user_personalization import UserPersonalization
from personalize_torch.solution_config import read_solution_config, recipe_name_from_arn
from personalize_torch.training import apply_solution_config
from tests.conftest import SMALL_DEMO, compose_train_config


def test_recipe_names_from_arns():
    assert recipe_name_from_arn("arn:aws:personalize:::recipe/aws-user-personalization") == "user_personalization"
    assert recipe_name_from_arn("arn:aws:personalize:::recipe/aws-popularity-count") == "popularity_count"


def test_solution_config_sets_recipe_events_and_hyperparameters(tmp_path):
    path = tmp_path / "solution.json"
    path.write_text(json.dumps({
        "recipeArn": "arn:aws:personalize:::recipe/aws-user-personalization", "eventType": "click",
        "solutionConfig": {"eventValueThreshold": "2.5",
                           "algorithmHyperParameters": {"hidden_dimension": "32", "bptt": "8",
                                                        "recency_mask": "false"}}}))
    cfg = compose_train_config([*SMALL_DEMO, f"solution_config={path}"], tmp_path)
    apply_solution_config(cfg)
    assert cfg.data.event_type == "click" and cfg.data.event_value_threshold == 2.5
    recipe = UserPersonalization(n_items=10, **{k: v for k, v in cfg.recipe.items() if k != "_target_"})
    assert recipe.hparams.hidden_dimension == 32 and recipe.hparams.bptt == 8
    assert recipe.hparams.recency_mask is False


def test_bad_values_name_the_parameter(tmp_path):
    with pytest.raises(InputError) as err:
        UserPersonalization(n_items=10, hidden_dimension="wide")
    assert err.value.column == "hidden_dimension"
    with pytest.raises(InputError) as err:
        UserPersonalization(n_items=10, bptt="1")
    assert err.value.column == "bptt"
    bad = tmp_path / "bad.json"
    bad.write_text('{"solutionConfig": {"eventValueThreshold": "high"}}')
    with pytest.raises(InputError) as err:
        read_solution_config(bad)
    assert err.value.column == "eventValueThreshold"
