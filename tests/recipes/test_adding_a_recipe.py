"""docs/adding_a_recipe.md is true: the recipe written there, built from the page's own text, trains through
train(cfg) on demo data, learns more than popularity, saves, loads and serves."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from personalize_torch.recipes import RECIPES
from personalize_torch.serving.inference.predictor import Predictor
from personalize_torch.solution_version import load_solution_version
from personalize_torch.training import train
from tests.conftest import SMALL_DEMO, compose_train_config

PAGE = Path(__file__).resolve().parents[2] / "docs" / "adding_a_recipe.md"


def fenced(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), flags=re.S)


@pytest.fixture
def recipe_from_the_page(monkeypatch):
    """The page's module, importable under the name its config's _target_ gives, and in RECIPES."""
    config = OmegaConf.create(fenced("yaml")[0])
    module_name, class_name = config._target_.rsplit(".", 1)
    module = types.ModuleType(module_name)
    exec(compile(fenced("python")[0], str(PAGE), "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, module_name, module)
    cls = getattr(module, class_name)
    monkeypatch.setitem(RECIPES, cls.recipe_name, cls)
    return cls, config


def test_the_pages_recipe_trains_saves_and_serves(recipe_from_the_page, tmp_path):
    cls, config = recipe_from_the_page
    defaults = cls.hyperparameter_defaults()
    assert {k: v for k, v in config.items() if k != "_target_"} == {k: defaults[k] for k in config if k != "_target_"}
    assert fenced("text")[0].strip() == f"{cls.__name__}.recipe_name: {cls.__name__},"   # the registry's line

    overrides = [*SMALL_DEMO, "data.split=leave_one_out", "trainer.max_epochs=10"]
    popularity = train(compose_train_config(overrides, tmp_path / "popularity"))["metrics"]["test"]["ndcg_at_10"]
    cfg = compose_train_config(overrides, tmp_path)
    cfg.recipe = config
    result = train(cfg)
    assert result["metrics"]["test"]["ndcg_at_10"] > 1.5 * popularity, (result["metrics"]["test"], popularity)

    solution = load_solution_version(result["solution"])
    assert type(solution.recipe) is cls and solution.recipe.hparams.history_length == 20
    user = solution.user_vocab.ids[0]
    recommended = Predictor(solution).recommend([user], num_results=5)[0]
    assert len(recommended) == 5 and all(r.item_id in set(solution.item_vocab.ids) for r in recommended)
