"""AutoML across recipes (issue #8): data rules skip what cannot work, the better recipe wins on planted data."""

import json
import subprocess
import sys

import pytest

from personalize_torch.automl import DEFAULT_RECIPES, data_rule_failures
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.solution_config import read_solution_config, recipe_arn, recipe_name_from_arn
from tests.conftest import REPO


def test_meta_recipes_need_metadata():
    group = demo_dataset_group(n_users=150, n_items=60)
    assert data_rule_failures(group, DEFAULT_RECIPES) == {}
    group.users = None
    group.items = group.items[["ITEM_ID", "CREATION_TIMESTAMP"]]      # no metadata left
    failures = data_rule_failures(group, DEFAULT_RECIPES)
    assert set(failures) == {"hrnn_meta", "hrnn_coldstart"} and "metadata" in failures["hrnn_meta"]


def test_recipe_arns_round_trip(tmp_path):
    for name in ("hrnn_meta", "user_personalization", "sims"):
        assert recipe_name_from_arn(recipe_arn(name)) == name
    assert recipe_arn("hrnn_meta") == "arn:aws:personalize:::recipe/aws-hrnn-metadata"
    path = tmp_path / "automl.json"
    path.write_text(json.dumps({"performAutoML": True, "solutionConfig": {"autoMLConfig": {
        "metricName": "precision_at_25", "recipeList": [recipe_arn("hrnn_meta"), recipe_arn("sims")]}}}))
    sc = read_solution_config(path)
    assert sc["perform_automl"] and sc["automl"] == {"objective": "precision_at_25", "recipes": ["hrnn_meta", "sims"]}


def test_automl_skips_what_the_data_cannot_support_and_picks_the_better_recipe(tmp_path):
    """Demo interactions + Items with GENRES but no CREATION_TIMESTAMP: HRNN-Coldstart cannot tell new items
    (its own InputError, recorded as the reason); on the last-event split SIMS's co-occurrences beat
    Popularity-Count's counts several times over (the planted taste clusters and chains)."""
    group = demo_dataset_group(n_users=150, n_items=60)
    group.interactions[["USER_ID", "ITEM_ID", "TIMESTAMP"]].to_csv(tmp_path / "interactions.csv", index=False)
    group.items[["ITEM_ID", "GENRES"]].to_csv(tmp_path / "items.csv", index=False)
    sweep = tmp_path / "sweep"
    run = subprocess.run([sys.executable, "train.py", "-m", "automl=default",
                          "hydra.sweeper.recipes=[hrnn_coldstart,popularity_count,sims]",
                          f"data.interactions={tmp_path / 'interactions.csv'}", f"data.items={tmp_path / 'items.csv'}",
                          "data.split=leave_one_out", "logger=none", "trainer.enable_progress_bar=false",
                          f"hydra.sweep.dir={sweep}"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    info = json.loads((sweep / "best" / "solution" / "solution.json").read_text())
    result = info["autoMLResult"]
    by_recipe = {c["recipe"]: c for c in result["candidates"]}
    assert by_recipe["hrnn_coldstart"]["state"] == "SKIPPED" and by_recipe["hrnn_coldstart"]["score"] is None
    assert "CREATION_TIMESTAMP" in by_recipe["hrnn_coldstart"]["reason"]
    pop, sims = by_recipe["popularity_count"]["score"], by_recipe["sims"]["score"]
    assert sims > 1.5 * pop, (sims, pop)
    assert result["bestRecipeArn"] == "arn:aws:personalize:::recipe/aws-sims" and info["recipe"] == "sims"
    assert info["metrics"]["val"]["ndcg_at_10"] == pytest.approx(sims)


def test_a_search_request_names_its_sweep_command(tmp_path):
    from personalize_torch.solution_config import sweep_command

    path = tmp_path / "request.json"
    path.write_text(json.dumps({"performAutoML": "true", "solutionConfig": {}}))
    assert sweep_command(path) == ("performAutoML", f"python train.py -m automl=default solution_config={path}")
    path.write_text(json.dumps({"recipeArn": recipe_arn("hrnn"), "performHPO": True}))
    assert sweep_command(path)[0] == "performHPO" and "hparams_search=personalize" in sweep_command(path)[1]
    path.write_text(json.dumps({"recipeArn": recipe_arn("hrnn"), "performHPO": False}))
    assert sweep_command(path) is None
