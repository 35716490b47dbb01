"""Config files, `_target_`s and the RECIPES registry agree; every config composes."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class

from personalize_torch.recipes import RECIPES

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def recipe_configs() -> list[str]:
    return sorted(p.stem for p in (CONFIGS / "recipe").glob("*.yaml"))


def test_recipe_configs_match_registry():
    assert recipe_configs() == sorted(RECIPES)
    for name in recipe_configs():
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = compose(config_name="train", overrides=[f"recipe={name}"])
        cls = get_class(cfg.recipe._target_)
        assert RECIPES[name] is cls and cls.recipe_name == name


@pytest.mark.parametrize("data", sorted(p.stem for p in (CONFIGS / "data").glob("*.yaml")))
def test_every_data_preset_composes(data):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"data={data}"])
    assert cfg.data.split in (None, "personalize", "leave_one_out", "user_segmentation")
    assert cfg.data.format in ("personalize", "movielens", "amazon_seq", "mind")


def test_serve_config_composes():
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="serve", overrides=["solution=/tmp/x", "port=9999"])
    assert cfg.port == 9999 and cfg.solution == "/tmp/x"


def test_serve_config_takes_campaigns_and_filters_from_the_command_line():
    """README's `python serve.py 'campaigns={...}' 'filters={...}'` compose (Hydra refuses new keys in {})."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="serve", overrides=[
            'filters={no-purchased: "EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (\\"purchase\\")"}',
            "campaigns={shop: path/a, news: {solution: path/b, exploration_weight: 0.3}}"])
    assert cfg.filters["no-purchased"] == 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'
    assert cfg.campaigns.shop == "path/a" and cfg.campaigns.news.exploration_weight == 0.3


def test_recipe_configs_give_the_classes_own_defaults():
    """train.py (the yaml) and the Python API (the constructor) train the same model by default."""
    import inspect

    from omegaconf import OmegaConf

    for name in recipe_configs():
        cfg = OmegaConf.to_container(OmegaConf.load(CONFIGS / "recipe" / f"{name}.yaml"))
        params = inspect.signature(get_class(cfg["_target_"]).__init__).parameters
        for key, value in cfg.items():
            default = params[key].default if key in params else inspect.Parameter.empty
            if default is inspect.Parameter.empty or (default is None and value == []):
                continue
            assert value == default, f"{name}.yaml {key}: {value!r}, the class's default {default!r}"


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml")))
def test_every_experiment_composes_and_names_its_data_and_recipe(experiment):
    """bench/RESULTS.md's recorded runs: `python train.py experiment=<name>` composes, on a real data preset,
    with the recipe and trainer settings the file says, and without a logger (figures, not logs)."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment={experiment}"])
    data, recipe = experiment.split("_", 1) if not experiment.startswith("ml1m_half") else ("ml1m_half",
                                                                                           experiment[10:])
    assert get_class(cfg.recipe._target_).recipe_name == recipe
    assert cfg.data.path and data.replace("_half", "") in cfg.data.path.lower().replace("-", "")
    assert not cfg.logger
