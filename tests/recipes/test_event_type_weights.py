"""Per-event-type loss weights (`event_type_weights`, Personalize's eventsConfig weights), on planted data:
users click along one chain of items and buy along another; what they buy next is what is evaluated."""

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl

from personalize_torch.data import constants as C
from personalize_torch.data.dataset_group import DatasetGroup
from personalize_torch.data.prepared import PreparedData
from personalize_torch.errors import InputError
from personalize_torch.recipes.user_personalization import UserPersonalization
from tests.conftest import fit_small


def clicks_and_purchases(n_users: int = 400, seed: int = 0) -> DatasetGroup:
    """Each user clicks items c, c+1, c+2, ... (items 30-59) and buys items p, p+1, ... (items 0-29), a
    purchase after about 3 clicks; every history ends with a click and then a purchase (the test target),
    so the most likely next *event* is a click while the evaluated event is a purchase."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        p, c = int(rng.integers(30)), int(rng.integers(30))
        kinds = ["purchase" if rng.random() < 0.3 else "click" for _ in range(int(rng.integers(8, 14)))]
        for t, kind in enumerate(kinds + ["click", "purchase"]):
            if kind == "purchase":
                item, p = f"p{p % 30}", p + 1
            else:
                item, c = f"c{c % 30}", c + 1
            rows.append((f"u{u}", item, 1_700_000_000 + t, kind))
    frame = pd.DataFrame(rows, columns=[C.USER_ID, C.ITEM_ID, C.TIMESTAMP, C.EVENT_TYPE])
    return DatasetGroup(frame, name="clicks_and_purchases")


def test_ndcg(**hparams) -> float:
    pl.seed_everything(0)
    data = PreparedData(clicks_and_purchases(), split="leave_one_out")
    fit = fit_small(UserPersonalization, data, max_epochs=6, batch_size=32, trainer_args={"limit_val_batches": 0},
                    hidden_dimension=32, bptt=16, learning_rate=0.01, recency_mask=False, **hparams)
    return fit.trainer.test(fit.recipe, datamodule=fit.dm, verbose=False)[0]["test/ndcg_at_10"]


test_ndcg.__test__ = False


def test_weighting_purchases_predicts_purchases():
    plain = test_ndcg()
    weighted = test_ndcg(event_type_weights={"click": 0.0, "purchase": 1.0})
    # Unweighted, the model predicts the next click rather than the purchase; weighted, the model
    # learns what is bought next.
    assert weighted > 0.85 and weighted > plain + 0.15, (plain, weighted)


def test_event_type_weights_are_checked_against_the_data():
    data = PreparedData(clicks_and_purchases(100), split="leave_one_out").describe()
    with pytest.raises(InputError, match="'view' is not in the training data; types: click, purchase"):
        UserPersonalization.from_data(data, event_type_weights={"view": 2.0})
    with pytest.raises(InputError, match="must be a number"):
        UserPersonalization.from_data(data, event_type_weights={"click": "lots"})
    with pytest.raises(InputError, match="nothing to learn"):
        UserPersonalization.from_data(data, event_type_weights={"click": 0, "purchase": 0})
    # Personalize sends hyperparameters as strings: a JSON object is accepted
    recipe = UserPersonalization.from_data(data, event_type_weights='{"click": "0.25"}')
    assert recipe.event_type_weight.tolist() == [1.0, 0.25, 1.0]
