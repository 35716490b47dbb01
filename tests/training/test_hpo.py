"""Hyperparameter search (issue #8): `train.py -m hparams_search=<recipe>` end to end on tiny demo data,
and a Personalize hpoConfig translated into the same search."""

import json
import subprocess
import sys

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.personalize_sweepers.sweepers import PersonalizeOptunaSweeper, params_to_specs
from personalize_torch.errors import InputError
from personalize_torch.hpo import distribution, metric_key, objective_value
from tests.conftest import REPO, compose_train_config

TINY = ["data.demo.n_users=150", "data.demo.n_items=60", "logger=none", "trainer.enable_progress_bar=false"]


def test_sweep_saves_the_best_trials_solution_version(tmp_path):
    sweep = tmp_path / "sweep"
    run = subprocess.run([sys.executable, "train.py", "-m", "hparams_search=sims", *TINY,
                          "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep}"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((sweep / "best" / "hpo.json").read_text())
    trials = report["trials"]
    assert len(trials) == 3 and all(t["state"] == "COMPLETE" for t in trials)
    # Each trial's score is what its own solution version measured, and trials really differ in parameters.
    for t in trials:
        own = json.loads(open(f"{t['solution']}/solution.json").read())
        assert own["metrics"]["val"]["ndcg_at_10"] == pytest.approx(t["value"])
        assert own["hyperparameters"]["popularity_discount_factor"] == pytest.approx(
            t["params"]["recipe.popularity_discount_factor"])
        assert isinstance(t["params"]["recipe.min_cointeraction_count"], int)   # int(interval(0, 10))
    assert len({t["params"]["recipe.popularity_discount_factor"] for t in trials}) == 3
    best = max(trials, key=lambda t: t["value"])
    assert report["best_trial"] == best["number"] and report["best_value"] == max(t["value"] for t in trials)
    info = json.loads((sweep / "best" / "solution" / "solution.json").read_text())
    assert info["metrics"]["val"]["ndcg_at_10"] == pytest.approx(best["value"])
    assert (sweep / "best" / "solution" / "model.ckpt").exists()
    tuned = info["tunedHPOParams"]["algorithmHyperParameters"]
    best_factor = best["params"]["recipe.popularity_discount_factor"]
    assert float(tuned["popularity_discount_factor"]) == pytest.approx(best_factor)


def _write(tmp_path, obj):
    path = tmp_path / "create_solution.json"
    path.write_text(json.dumps(obj))
    return path


HPO_REQUEST = {
    "recipeArn": "arn:aws:personalize:::recipe/aws-user-personalization",
    "performHPO": True,
    "solutionConfig": {
        "algorithmHyperParameters": {"num_layers": "1"},
        "hpoConfig": {
            "hpoObjective": {"type": "Maximize", "metricName": "precision_at_25"},
            "hpoResourceConfig": {"maxNumberOfTrainingJobs": "4", "maxParallelTrainingJobs": "2"},
            "algorithmHyperParameterRanges": {
                "integerHyperParameterRanges": [{"name": "hidden_dimension", "minValue": 32, "maxValue": 64},
                                                {"name": "bptt", "minValue": "2", "maxValue": "16"}],
                "continuousHyperParameterRanges": [{"name": "learning_rate", "minValue": 0.0001, "maxValue": 0.01},
                                                   {"name": "dropout", "minValue": 0.1, "maxValue": 0.3}],
                "categoricalHyperParameterRanges": [{"name": "recency_mask", "values": ["true", "false"]}]}}}}


def _sweeper(tmp_path, request, overrides=()):
    sweeper = PersonalizeOptunaSweeper(objective="val/ndcg_at_10", direction="maximize", n_trials=10, n_jobs=1,
                                       timeout_s=None, sampler="tpe", seed=0, params=None)
    sweeper.config = compose_train_config(["hparams_search=personalize", *TINY,
                                           f"solution_config={_write(tmp_path, request)}", *overrides], tmp_path)
    return sweeper


def test_hpo_config_becomes_the_search(tmp_path):
    plan = _sweeper(tmp_path, HPO_REQUEST).search(["hparams_search=personalize"])
    space = plan["space"]
    assert set(space) == {f"++recipe.{n}" for n in ("hidden_dimension", "bptt", "learning_rate", "dropout",
                                                    "recency_mask")}
    dist = {k.removeprefix("++recipe."): distribution(k, v) for k, v in space.items()}
    assert dist["hidden_dimension"] == IntDistribution(32, 64)
    assert dist["bptt"] == IntDistribution(2, 16)
    assert dist["learning_rate"] == FloatDistribution(0.0001, 0.01, log=True)   # 100x wide: log scale
    assert dist["dropout"] == FloatDistribution(0.1, 0.3)
    assert dist["recency_mask"] == CategoricalDistribution(["true", "false"])
    assert "recipe=user_personalization" in plan["fixed"]       # recipeArn picks the recipe
    assert (plan["objective"], plan["direction"]) == ("precision_at_25", "maximize")
    assert metric_key(plan["objective"]) == ("val", "precision_at_25")
    assert (plan["n_trials"], plan["n_jobs"]) == (4, 2)


def test_hpo_config_errors_name_the_parameter(tmp_path):
    def error(request):
        with pytest.raises(InputError) as err:
            _sweeper(tmp_path, request).search([])
        return err.value.column

    ranges = HPO_REQUEST["solutionConfig"]["hpoConfig"]["algorithmHyperParameterRanges"]

    def with_ranges(**changes):
        hpo = {**HPO_REQUEST["solutionConfig"]["hpoConfig"], "algorithmHyperParameterRanges": {**ranges, **changes}}
        return {**HPO_REQUEST, "solutionConfig": {**HPO_REQUEST["solutionConfig"], "hpoConfig": hpo}}

    unknown = with_ranges(integerHyperParameterRanges=[{"name": "hidden_dimensions", "minValue": 1, "maxValue": 2}])
    assert error(unknown) == "hpoConfig.algorithmHyperParameterRanges.hidden_dimensions"
    both = with_ranges(integerHyperParameterRanges=[{"name": "num_layers", "minValue": 1, "maxValue": 3}])
    assert error(both) == "hpoConfig.algorithmHyperParameterRanges.num_layers"
    reversed_range = with_ranges(continuousHyperParameterRanges=[{"name": "dropout", "minValue": 0.5, "maxValue": 0.1}])
    assert error(reversed_range) == "hpoConfig.algorithmHyperParameterRanges.continuousHyperParameterRanges.dropout"
    with pytest.raises(InputError) as err:
        params_to_specs({"recipe.dropout": "0.3"})
    assert err.value.column == "hydra.sweeper.params.recipe.dropout"


def test_objective_names():
    result = {"metrics": {"val": {"ndcg_at_10": 0.25, "precision_at_25": 0.1}, "test": {"ndcg_at_10": 0.2}}}
    assert objective_value(result, "val/ndcg_at_10") == 0.25
    assert objective_value(result, "NORMALIZED_DISCOUNTED_CUMULATIVE_GAIN_AT_10") == 0.25
    assert objective_value(result, "test/ndcg_at_10") == 0.2
    with pytest.raises(InputError) as err:
        objective_value(result, "val/ndcg_at_11x")
    assert err.value.column == "objective"


@pytest.mark.parametrize("name", ["hrnn", "user_personalization", "sims"])
def test_search_configs_name_real_hyperparameters(name, tmp_path):
    """Every configs/hparams_search/<recipe>.yaml composes, and each searched key is a hyperparameter of the
    recipe with a valid range (Personalize's hidden_dimension 32-256 and bptt 2-32 / 2-200 where it has them)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"hparams_search={name}"], return_hydra_config=True)
    accepted = get_class(cfg.recipe._target_).hyperparameter_defaults()
    specs = params_to_specs(cfg.hydra.sweeper.params)
    for key, spec in specs.items():
        assert key.removeprefix("recipe.") in accepted and OmegaConf.select(cfg, key) is not None, key
        distribution(key, spec)
    if "recipe.hidden_dimension" in specs:
        assert (specs["recipe.hidden_dimension"]["low"], specs["recipe.hidden_dimension"]["high"]) == (32, 256)
        assert specs["recipe.bptt"]["type"] == "int" and specs["recipe.bptt"]["low"] == 2
