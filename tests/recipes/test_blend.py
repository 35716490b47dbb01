"""Blend: weights chosen on validation over the simplex, never worse than its best member there."""

import pytest
import torch

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.errors import InputError
from personalize_torch.recipes.blend import simplex_grid, standardized
from personalize_torch.serving.inference.predictor import Predictor
from personalize_torch.training import train
from tests.conftest import compose_train_config

DATA = ["data.demo.n_users=300", "data.demo.n_items=120", "data.split=leave_one_out", "logger=none"]


def test_simplex_grid_and_standardized_scores():
    grid = simplex_grid(3, 0.5)
    assert sorted(grid) == sorted([(1, 0, 0), (0, 1, 0), (0, 0, 1), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)])
    z = standardized(torch.tensor([[0.0, 1.0, 2.0, 3.0], [9.0, 5.0, 5.0, -torch.inf]]))
    assert z[0, 0] == 0 and torch.allclose(z[0, 1:].mean(), torch.tensor(0.0))
    assert z[0, 3] > z[0, 2] > z[0, 1] and torch.isfinite(z).all()
    assert z[1, 1] == z[1, 2] and z[1, 3] < z[1, 1]                  # -inf: below every finite score


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("members")
    return {recipe: train(compose_train_config([*DATA, f"recipe={recipe}", *extra], tmp / recipe))
            for recipe, extra in (("popularity_count", []), ("sims", []))}


def test_blend_beats_or_matches_its_members_and_serves(members, tmp_path):
    paths = [members["popularity_count"]["solution"], members["sims"]["solution"]]
    result = train(compose_train_config([*DATA, "recipe=blend", f"recipe.solutions=[{paths[0]},{paths[1]}]"],
                                        tmp_path))
    val = {name: r["metrics"]["val"]["ndcg_at_10"] for name, r in members.items()}
    assert result["metrics"]["val"]["ndcg_at_10"] >= max(val.values()) - 1e-6
    predictor = Predictor.from_dir(result["solution"])       # stands alone: member weights are inside
    weights = predictor.recipe.weights.tolist()
    assert sum(weights) == pytest.approx(1.0) and len(weights) == 2
    assert weights[1] > 0                                     # SIMS (far better on demo chains) is used
    user = predictor.solution.user_vocab.ids[0]
    assert len(predictor.recommend([user], 10)[0]) == 10
    # scores are the weighted standardized member scores
    inputs = SequenceBatch(torch.zeros(1, dtype=torch.long), torch.tensor([[3, 5, 7]]), torch.zeros(1, 3))
    members_z = predictor.recipe.member_scores(inputs)
    torch.testing.assert_close(predictor.recipe.score(inputs), (torch.tensor(weights)[:, None, None] * members_z).sum(0))


def test_members_from_other_data_are_refused(members, tmp_path):
    paths = [members["popularity_count"]["solution"], members["sims"]["solution"]]
    other = [*DATA[:-1], "data.demo.seed=5", "logger=none"]
    with pytest.raises(InputError, match="other data|items"):
        train(compose_train_config([*other, "recipe=blend", f"recipe.solutions=[{paths[0]},{paths[1]}]"], tmp_path))
    with pytest.raises(InputError, match="solutions"):
        train(compose_train_config([*DATA, "recipe=blend", f"recipe.solutions=[{paths[0]}]"], tmp_path))
