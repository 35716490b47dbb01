"""UPDATE mode: new items join a trained solution version without retraining."""

import pandas as pd
import pytest
import pytorch_lightning as pl

from personalize_torch.data import constants as C
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.recipes import RECIPES
from personalize_torch.recipes.user_personalization import UserPersonalization
from personalize_torch.serving.inference.predictor import Predictor
from personalize_torch.solution_version import load_solution_version, save_solution_version
from personalize_torch.update import main as update_main
from tests.conftest import fit_small

SEED = 0


@pytest.fixture(scope="module")
def up_solution(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("up")
    pl.seed_everything(SEED)
    data = PreparedData(demo_dataset_group(n_users=150, n_items=60, seed=4), split="leave_one_out")
    fit = fit_small(UserPersonalization, data, max_epochs=4, trainer_args={"limit_val_batches": 0},
                    hidden_dimension=16, bptt=10)
    return save_solution_version(tmp / "solution", fit.trainer, fit.recipe, data, {})


def test_new_items_are_served_by_their_metadata(up_solution, tmp_path):
    before = load_solution_version(up_solution)
    template = before.items.iloc[0]
    new = pd.DataFrame([{**template.to_dict(), C.ITEM_ID: "brand-new-1"}, {**template.to_dict(), C.ITEM_ID: "brand-new-2"}])
    new.to_csv(tmp_path / "new_items.csv", index=False)
    update_main(["--solution", str(up_solution), "--items", str(tmp_path / "new_items.csv"),
                 "--output", str(tmp_path / "updated")])
    after = load_solution_version(tmp_path / "updated")
    assert len(after.item_vocab) == len(before.item_vocab) + 2
    assert list(after.item_vocab.ids[:len(before.item_vocab)]) == list(before.item_vocab.ids)
    assert after.info["training_mode"] == "UPDATE" and after.info["n_new_items"] == 2

    user = before.user_vocab.ids[0]
    old_rank = [r.item_id for r in Predictor(before).recommend([user], 500)[0]]
    new_rank = [r.item_id for r in Predictor(after).recommend([user], 500)[0]]
    assert [i for i in new_rank if not i.startswith("brand-new")] == old_rank   # existing order untouched
    assert {"brand-new-1", "brand-new-2"} <= set(new_rank)
    table = after.recipe.item_table()
    idx = after.item_vocab.to_idx(["brand-new-1", "brand-new-2"])
    assert table[idx[0]].equal(table[idx[1]])   # same metadata, no interactions -> same vector


def test_update_refuses_to_overwrite_its_source(up_solution, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        update_main(["--solution", str(up_solution), "--items", str(tmp_path / "x.csv"), "--output", str(up_solution)])
    assert exit_info.value.code == 2


def test_new_items_rank_by_how_much_the_user_likes_items_with_their_metadata(up_solution, tmp_path):
    """Per user, two new items without interactions: one with the metadata of the user's favourite item, one
    with that of the user's least liked. The first ranks above the second for most users."""
    before = load_solution_version(up_solution)
    users = list(before.user_vocab.ids[:40])
    items = before.items.set_index(C.ITEM_ID)
    rows = []
    for n, recs in enumerate(Predictor(before).recommend(users, 500, exclude_seen=False)):
        for kind, item in (("liked", recs[0].item_id), ("disliked", recs[-1].item_id)):
            rows.append({**items.loc[item].to_dict(), C.ITEM_ID: f"new-{kind}-{n}"})
    pd.DataFrame(rows).to_csv(tmp_path / "new_items.csv", index=False)
    update_main(["--solution", str(up_solution), "--items", str(tmp_path / "new_items.csv"),
                 "--output", str(tmp_path / "updated")])
    lists = Predictor(load_solution_version(tmp_path / "updated")).recommend(users, 1000, exclude_seen=False)
    wins = 0
    for n, recs in enumerate(lists):
        order = [r.item_id for r in recs]
        wins += order.index(f"new-liked-{n}") < order.index(f"new-disliked-{n}")
    assert wins >= 0.7 * len(users), wins   # about half for a model that ignores metadata


@pytest.mark.parametrize("name", sorted(n for n, cls in RECIPES.items() if not cls.combines_solution_versions))
def test_every_recipe_is_rebuilt_from_the_grown_data(name, tmp_path):
    """UPDATE rebuilds any recipe from the solution version's data description grown by the new items (Users
    metadata, contextual fields and item text included) and serves the new items; known items keep their
    scores' order."""
    data = PreparedData(demo_dataset_group(n_users=150, n_items=60, seed=4), split="leave_one_out")
    hyperparameters = {} if RECIPES[name].count_based else {"hidden_dimension": 16} if "hrnn" in name else {}
    fit = fit_small(RECIPES[name], data, trainer_args={"limit_val_batches": 0, "limit_train_batches": 2},
                    **hyperparameters)
    source = save_solution_version(tmp_path / "solution", fit.trainer, fit.recipe, data, {})
    before = load_solution_version(source)
    new = pd.DataFrame([{**before.items.iloc[0].to_dict(), C.ITEM_ID: "brand-new-1"}])
    new.to_csv(tmp_path / "new_items.csv", index=False)
    update_main(["--solution", str(source), "--items", str(tmp_path / "new_items.csv"),
                 "--output", str(tmp_path / "updated")])
    after = load_solution_version(tmp_path / "updated")
    assert type(after.recipe) is type(before.recipe) and len(after.item_vocab) == len(before.item_vocab) + 1
    assert after.info["data_description"]["n_items"] == after.recipe.n_items == len(after.item_vocab) + 1
    user = before.user_vocab.ids[0]
    old = Predictor(before).recommend([user], 10)[0]
    new_list = Predictor(after).recommend([user], 11)[0]
    assert [r.item_id for r in new_list if r.item_id != "brand-new-1"][:len(old)] == [r.item_id for r in old]
