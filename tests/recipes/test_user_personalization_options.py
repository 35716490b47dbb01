"""User-Personalization options: `lr_schedule` (warm-up, then cosine decay to 0 by max_epochs or max_time),
`negative_sampling`, `exposure_prior`, and hyperparameter checks."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

import personalize_torch.recipes.next_item as next_item
from personalize_torch.data.batching import SequenceBatch
from personalize_torch.data.datamodule import InteractionsDataModule
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.errors import InputError
from personalize_torch.recipes.user_personalization import UserPersonalization
from tests.conftest import fit_small


class RecordLearningRate(pl.Callback):
    def __init__(self):
        self.rates = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def train_rates(trainer_options=None, **hparams):
    data = PreparedData(demo_dataset_group(n_users=120, n_items=50, seed=5), split="leave_one_out")
    options = dict(trainer_options or {"max_epochs": 3})
    record = RecordLearningRate()
    fit_small(UserPersonalization, data, max_epochs=options.pop("max_epochs", None), batch_size=16,
              trainer_args={**options, "callbacks": [record], "limit_val_batches": 0},
              hidden_dimension=16, bptt=10, learning_rate=0.01, **hparams)
    return record.rates


def test_cosine_schedule_warms_up_then_decays_to_zero():
    rates = train_rates(lr_schedule="cosine", warmup_steps=4)
    assert len(rates) > 10
    assert rates[0] == pytest.approx(0.01 / 4)                       # first warm-up step
    assert rates[3] == pytest.approx(0.01)                            # peak after warm-up
    assert all(a >= b for a, b in zip(rates[3:], rates[4:]))         # then never rises
    assert rates[-1] < 0.01 * 0.02                                    # and ends near 0


def test_cosine_schedule_decays_to_zero_by_max_time():
    # 1000 planned epochs, but a 3-second budget: the decay follows the clock, so the run ends annealed.
    rates = train_rates({"max_epochs": 1000, "max_time": {"seconds": 3}}, lr_schedule="cosine")
    assert rates[0] == pytest.approx(0.01, rel=0.05)
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert rates[len(rates) // 2] == pytest.approx(0.005, abs=0.003)   # half the time: half the rate
    assert rates[-1] < 0.01 * 0.02


def test_final_decay_schedule_is_constant_then_falls_to_zero_over_the_last_fifth():
    rates = train_rates({"max_epochs": 5})                            # the default schedule
    n = len(rates)
    assert n >= 20
    assert set(rates[:int(0.75 * n)]) == {0.01}                       # constant for the first 80%
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert rates[int(0.9 * n)] == pytest.approx(0.005, abs=0.0015)    # halfway down at 90%
    assert rates[-1] == pytest.approx(0.01 / (0.2 * n))                # one step from 0


def test_constant_schedule_keeps_the_learning_rate():
    assert set(train_rates(lr_schedule="constant")) == {0.01}


@pytest.fixture(scope="module")
def small_data():
    return PreparedData(demo_dataset_group(n_users=60, n_items=30, seed=1), split="leave_one_out")


@pytest.mark.parametrize("hparams, named", [
    ({"lr_schedule": "linear"}, "lr_schedule"),
    ({"hidden_dimension": 43, "num_heads": 2}, "hidden_dimension 43 must be a multiple of num_heads"),
    ({"negative_sampling": "hard"}, "negative_sampling"),
])
def test_bad_hyperparameters_are_named_in_the_error(small_data, hparams, named):
    with pytest.raises(InputError, match=named):
        UserPersonalization.from_data(small_data.describe(), **hparams)


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_negative_sampling_proposal(monkeypatch, small_data, sampling):
    seen = {}

    def capture(hidden, targets, table, log_q, *args, **kwargs):
        seen["log_q"] = log_q
        return hidden.sum() * 0.0

    monkeypatch.setattr(next_item, "sampled_softmax_loss", capture)
    recipe = UserPersonalization.from_data(small_data.describe(), loss="sampled", negative_sampling=sampling,
                                           num_negatives=8)
    recipe.item_counts.copy_(torch.arange(recipe.n_items).float())   # item i seen i times
    recipe.catalogue_loss(torch.zeros(3, recipe.hparams.hidden_dimension), torch.tensor([1, 2, 3]),
                          torch.zeros(recipe.n_items, recipe.hparams.hidden_dimension), None)
    q = seen["log_q"].exp()
    assert q[0] == 0 and q.sum() == pytest.approx(1.0)                # padding is never a negative
    if sampling == "uniform":
        assert torch.allclose(q[1:], torch.full_like(q[1:], 1 / (recipe.n_items - 1)))
    else:
        assert bool((q[2:] > q[1:-1]).all())                            # more popular, more often


def test_exposure_prior_is_the_log_share_of_impressions_and_enters_the_scores():
    data = PreparedData(demo_dataset_group(n_users=120, n_items=50, seed=5), split="leave_one_out")
    recipe = fit_small(UserPersonalization, data, max_epochs=1, batch_size=16, trainer_args={"limit_val_batches": 0},
                       hidden_dimension=16, bptt=10, exposure_prior=True, impression_weight=1.0).recipe
    shown = data.split.train.times_shown(recipe.n_items)[1:]    # impressions, not rows (tests/serving/test_exploration.py)
    assert shown.sum() < len(data.split.train.impressions.values)   # the demo's purchase rows repeat their slate
    prior = recipe.item_log_exposure[1:].numpy()
    assert np.allclose(prior - prior.mean(), np.log(shown + 1.0) - np.log(shown + 1.0).mean(), atol=1e-5)
    assert abs(prior.mean()) < 1e-5                       # centred: items added later by UPDATE get 0
    recipe.eval()
    items = torch.tensor([[0, 3, 7]])
    probs = recipe.score(SequenceBatch(torch.zeros(1, dtype=torch.long), items, torch.zeros_like(items)))
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad():                                  # the prior moves the scores as a log-odds term
        recipe.item_log_exposure[5] += 2.0
    moved = recipe.score(SequenceBatch(torch.zeros(1, dtype=torch.long), items, torch.zeros_like(items)))
    ratio = (moved[0, 5] / moved[0, 6]) / (probs[0, 5] / probs[0, 6])
    assert float(ratio) == pytest.approx(float(np.exp(2.0)), rel=1e-3)


def test_solution_versions_from_before_the_exposure_prior_still_load(small_data):
    old = UserPersonalization.from_data(small_data.describe(), hidden_dimension=16, exposure_prior=False)
    assert "item_log_exposure" not in old.state_dict()
    new = UserPersonalization.from_data(small_data.describe(), hidden_dimension=16)      # the default: on
    new.load_state_dict(old.state_dict())                                # strict
    assert float(new.item_log_exposure.abs().sum()) == 0.0


@pytest.mark.parametrize("median, hidden, dropout, weight_decay", [
    (4.0, 64, 0.3, 0.3), (19.5, 64, 0.3, 0.3), (20.0, 128, 0.1, 0.0), (96.0, 128, 0.1, 0.0), (None, 64, 0.3, 0.3)])
def test_auto_hyperparameters_follow_the_median_history_length(median, hidden, dropout, weight_decay):
    recipe = UserPersonalization(n_items=30, num_heads=1, median_history_length=median)
    assert (recipe.hparams.hidden_dimension, recipe.hparams.dropout, recipe.hparams.weight_decay) == \
        (hidden, dropout, weight_decay)
    assert recipe.model.item_embedding.weight.shape == (30, hidden)
    assert recipe.model.blocks[0].drop.p == dropout
    assert super(next_item.NextItemRecipe, recipe).configure_optimizers().defaults["weight_decay"] == weight_decay
    given = UserPersonalization(n_items=30, num_heads=1, median_history_length=median, hidden_dimension="24",
                                dropout="0.35", weight_decay=0.05)     # Personalize sends strings
    assert (given.hparams.hidden_dimension, given.hparams.dropout, given.hparams.weight_decay) == (24, 0.35, 0.05)
    assert given.model.item_embedding.weight.shape == (30, 24)


@pytest.mark.parametrize("name, value", [("dropout", "lots"), ("dropout", 0.95), ("weight_decay", -1.0),
                                         ("hidden_dimension", "64.5"), ("hidden_dimension", 4),
                                         ("hidden_dimension", "inf")])
def test_bad_regularization_is_named(name, value):
    with pytest.raises(InputError) as err:
        UserPersonalization(n_items=30, num_heads=1, **{"hidden_dimension": 8, name: value})
    assert err.value.column == name


def test_the_data_gives_its_median_history_length(small_data):
    recipe = UserPersonalization.from_data(small_data.describe(), hidden_dimension=8, num_heads=1)
    median = float(np.median(small_data.split.train.lengths))
    assert recipe.hparams.median_history_length == median
    assert recipe.hparams.dropout == (0.1 if median >= 20 else 0.3)


def test_every_training_user_trains_by_default_and_personalizes_0_99_leaves_out_the_longest():
    """Default: no user left out (Beauty: +2% test NDCG@10, bench/RESULTS.md); Personalize's 0.99 leaves out
    the users with the longest histories, still evaluated."""
    data = PreparedData(demo_dataset_group(n_users=60, n_items=30, seed=1), split="leave_one_out")
    lengths = data.split.train.lengths
    recipe = UserPersonalization.from_data(data.describe(), hidden_dimension=8, num_heads=1)
    assert len(InteractionsDataModule(data, recipe.loader_needs()).train_rows()) == len(lengths)
    recipe = UserPersonalization.from_data(data.describe(), hidden_dimension=8, num_heads=1,
                                           max_user_history_length_percentile=0.99)
    kept = InteractionsDataModule(data, recipe.loader_needs()).train_rows()
    assert 0 < len(lengths) - len(kept) and lengths[kept].max() < lengths.max()


def test_history_percentiles_that_keep_no_training_user_are_an_error():
    from personalize_torch.errors import InputError

    data = PreparedData(demo_dataset_group(n_users=60, n_items=30, seed=1), split="leave_one_out")
    lengths = np.sort(data.split.train.lengths)
    i = int(np.flatnonzero(np.diff(lengths) > 0)[0])       # lengths[i] < lengths[i + 1]
    q = (i + 0.5) / (len(lengths) - 1)                     # its quantile falls strictly between the two
    recipe = UserPersonalization.from_data(data.describe(), hidden_dimension=8, num_heads=1,
                                           min_user_history_length_percentile=q, max_user_history_length_percentile=q)
    dm = InteractionsDataModule(data, recipe.loader_needs())
    with pytest.raises(InputError) as err:
        dm.train_rows()
    assert err.value.column == "max_user_history_length_percentile"


@pytest.mark.parametrize("catalogue, loss, full", [(16_384, "auto", True), (16_385, "auto", False),
                                                    (16_385, "full", True), (100, "sampled", False)])
def test_the_loss_is_chosen_by_catalogue_size_and_can_be_overridden(catalogue, loss, full):
    recipe = UserPersonalization(n_items=catalogue + 1, hidden_dimension=8, num_heads=1, loss=loss)   # + padding
    assert recipe.uses_full_softmax is full


def test_recency_mask_weights_each_predicted_event_by_its_time():
    """From 1 - recency_strength for the oldest training event to 1 for the newest, linear in time; off with
    recency_mask false."""
    recipe = UserPersonalization(n_items=10, hidden_dimension=8, num_heads=1, recency_strength=0.4)
    recipe.time_range.copy_(torch.tensor([100.0, 200.0], dtype=torch.float64))
    weights = recipe.recency_weights(torch.tensor([[100, 150, 200, 250]]))
    torch.testing.assert_close(weights, torch.tensor([[0.6, 0.8, 1.0, 1.0]]))
    assert UserPersonalization(n_items=10, hidden_dimension=8, num_heads=1,
                               recency_mask=False).recency_weights(torch.tensor([[1, 2]])) is None
