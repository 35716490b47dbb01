"""Personalize CreateSolution JSON -> recipe, event selection and string-valued hyperparameters."""

import json

import pytest

from personalize_torch.errors import InputError
from personalize_torch.recipes import RECIPES
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


def test_feature_transformation_parameters_set_the_history_percentiles(tmp_path):
    path = tmp_path / "solution.json"
    path.write_text(json.dumps({"recipeArn": "arn:aws:personalize:::recipe/aws-user-personalization",
                                "solutionConfig": {"featureTransformationParameters": {
                                    "max_user_history_length_percentile": "0.5"}}}))
    cfg = compose_train_config([*SMALL_DEMO, f"solution_config={path}"], tmp_path)
    apply_solution_config(cfg)
    recipe = UserPersonalization(n_items=10, **{k: v for k, v in cfg.recipe.items() if k != "_target_"})
    assert recipe.hparams.max_user_history_length_percentile == 0.5
    path.write_text(json.dumps({"solutionConfig": {
        "featureTransformationParameters": {"max_user_history_length_percentile": "0.5"},
        "algorithmHyperParameters": {"max_user_history_length_percentile": "0.9"}}}))
    with pytest.raises(InputError) as err:
        read_solution_config(path)
    assert err.value.column == "featureTransformationParameters.max_user_history_length_percentile"


def test_featurization_keys_without_a_counterpart_are_left_out_and_recipes_without_percentiles_train(tmp_path):
    """As Personalize's DescribeSolution shows them: short percentile names, cold-start keys we do not have."""
    from personalize_torch.recipes.similar_items import SimilarItems

    path = tmp_path / "solution.json"
    featurization = {"cold_start_max_duration": "5", "max_hist_length_percentile": "0.9"}
    path.write_text(json.dumps({"recipeArn": "arn:aws:personalize:::recipe/aws-user-personalization",
                                "solutionConfig": {"featureTransformationParameters": featurization}}))
    cfg = compose_train_config([*SMALL_DEMO, f"solution_config={path}"], tmp_path)
    apply_solution_config(cfg)
    recipe = UserPersonalization(n_items=10, **{k: v for k, v in cfg.recipe.items() if k != "_target_"})
    assert recipe.hparams.max_user_history_length_percentile == 0.9
    path.write_text(json.dumps({"recipeArn": "arn:aws:personalize:::recipe/aws-similar-items",
                                "solutionConfig": {"featureTransformationParameters": featurization}}))
    cfg = compose_train_config([*SMALL_DEMO, f"solution_config={path}"], tmp_path)
    apply_solution_config(cfg)
    SimilarItems(n_items=10, **{k: v for k, v in cfg.recipe.items() if k != "_target_"})   # no unknown keyword


def test_crossed_history_percentiles_are_named():
    with pytest.raises(InputError) as err:
        UserPersonalization(n_items=10, min_user_history_length_percentile=0.9, max_user_history_length_percentile=0.1)
    assert err.value.column == "min_user_history_length_percentile"


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


def test_events_config_selects_event_types_and_weights_them(tmp_path):
    """solutionConfig.eventsConfig: the listed types (each with its threshold) are the training events, and
    their weights become User-Personalization's event_type_weights; train.py records the selection."""
    from personalize_torch.training import train

    path = tmp_path / "solution.json"
    path.write_text(json.dumps({
        "recipeArn": "arn:aws:personalize:::recipe/aws-user-personalization",
        "solutionConfig": {"eventsConfig": {"eventParametersList": [
            {"eventType": "purchase", "weight": "1.0"},
            {"eventType": "click", "eventValueThreshold": 4.0, "weight": 0.3}]},
            "algorithmHyperParameters": {"hidden_dimension": "16", "bptt": "8"}}}))
    cfg = compose_train_config([*SMALL_DEMO, f"solution_config={path}", "logger=none", "trainer.max_epochs=1",
                                "data.split=leave_one_out"], tmp_path)
    result = train(cfg)
    inter = __import__("personalize_torch.data.sources", fromlist=["x"]).demo_dataset_group(
        n_users=300, n_items=120).interactions
    kept = (inter.EVENT_TYPE == "purchase") | ((inter.EVENT_TYPE == "click") & (inter.EVENT_VALUE >= 4.0))
    assert 0 < kept.sum() < len(inter) and result["data"]["n_interactions"] == kept.sum()
    assert result["data"]["event_parameters"] == [{"event_type": "purchase", "event_value_threshold": None},
                                                  {"event_type": "click", "event_value_threshold": 4.0}]
    from personalize_torch.serving.inference.predictor import Predictor

    recipe = Predictor.from_dir(result["solution"]).recipe
    assert recipe.hparams.event_type_weights == {"purchase": 1.0, "click": 0.3}
    assert recipe.event_type_weight.tolist() == pytest.approx([1.0, 0.3, 1.0])   # index 0: no type


def test_events_config_errors_name_the_entry(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"solutionConfig": {"eventsConfig": {"eventParametersList": [{"eventType": "click", '
                   '"weight": "heavy"}]}}}')
    with pytest.raises(InputError) as err:
        read_solution_config(bad)
    assert err.value.column == "eventsConfig.eventParametersList[0].weight"
    bad.write_text(json.dumps({"recipeArn": "arn:aws:personalize:::recipe/aws-hrnn", "solutionConfig": {
        "eventsConfig": {"eventParametersList": [{"eventType": "click", "weight": 0.5}]}}}))
    cfg = compose_train_config([*SMALL_DEMO, f"solution_config={bad}"], tmp_path)
    with pytest.raises(InputError, match="does not weight event types"):
        apply_solution_config(cfg)


@pytest.mark.parametrize("recipe", ["item_attribute_affinity", "personalized_ranking", "hrnn"])
def test_a_solution_config_naming_the_chosen_recipe_keeps_its_overrides(recipe, tmp_path):
    """The recipe is told by its name, not its module (Item-Attribute-Affinity lives in item_affinity.py):
    a solution config naming the recipe already chosen keeps the command line's recipe.* overrides."""
    path = tmp_path / "solution.json"
    path.write_text(json.dumps({"recipeArn": f"arn:aws:personalize:::recipe/aws-{recipe.replace('_', '-')}"}))
    cfg = compose_train_config([*SMALL_DEMO, f"recipe={recipe}", "recipe.learning_rate=0.0123",
                                f"solution_config={path}"], tmp_path)
    apply_solution_config(cfg)
    assert cfg.recipe.learning_rate == 0.0123 and cfg.recipe._target_.endswith(RECIPES[recipe].__name__)


def test_an_unknown_hyperparameter_is_named_with_the_recipes_own(tmp_path):
    path = tmp_path / "solution.json"
    path.write_text(json.dumps({"recipeArn": "arn:aws:personalize:::recipe/aws-user-personalization",
                                "solutionConfig": {"algorithmHyperParameters": {"hidden_dimensions": "64"}}}))
    cfg = compose_train_config([*SMALL_DEMO, f"solution_config={path}"], tmp_path)
    with pytest.raises(InputError, match="no hyperparameter 'hidden_dimensions'.*hidden_dimension,") as err:
        apply_solution_config(cfg)
    assert err.value.column == "algorithmHyperParameters.hidden_dimensions" and err.value.file == str(path)


def test_build_recipe_names_unknown_and_data_given_hyperparameters(tmp_path):
    from omegaconf import OmegaConf

    from personalize_torch.training import build_recipe, prepare_data

    cfg = compose_train_config([*SMALL_DEMO, "recipe=hrnn_meta"], tmp_path)
    data = prepare_data(cfg)
    for name, message in (("dropout_rate", "no hyperparameter 'dropout_rate'"), ("n_users", "comes from the data")):
        recipe_cfg = OmegaConf.create({**OmegaConf.to_container(cfg.recipe), name: 3})
        with pytest.raises(InputError, match=message) as err:
            build_recipe(recipe_cfg, data)
        assert err.value.column == f"recipe.{name}"
