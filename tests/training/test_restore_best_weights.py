"""RestoreBestWeights: the best validated weights are restored; weights trained after the last validation
are validated by train() and kept only when they are better."""

import torch

from personalize_torch.callbacks import RestoreBestWeights
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.recipes.user_personalization import UserPersonalization
from tests.conftest import fit_small


def weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def callback_with(best_state, final_state, best=0.5):
    cb = RestoreBestWeights()
    cb.best, cb.best_state, cb.unvalidated_state = best, best_state, final_state
    return cb


def test_final_weights_kept_only_when_their_validation_beats_the_best():
    module = torch.nn.Linear(3, 2)
    best_state = weights(module)
    final_state = {k: v + 1 for k, v in best_state.items()}

    def validation_scoring(value):
        def validate():  # what a validation pass does: the callback sees its metric at the end
            cb.best = max(cb.best, value)
        return validate

    cb = callback_with(best_state, final_state)
    assert cb.consider_final_weights(module, validation_scoring(0.6)) is True
    assert same(weights(module), final_state)

    cb = callback_with(best_state, final_state)
    assert cb.consider_final_weights(module, validation_scoring(0.4)) is False
    assert same(weights(module), best_state)
    assert cb.unvalidated_state is None


def test_unvalidated_final_epoch_is_set_aside_and_compared():
    data = PreparedData(demo_dataset_group(n_users=120, n_items=50, seed=5), split="leave_one_out")
    cb = RestoreBestWeights()
    # Validation after epochs 2 and 4 only: the fifth epoch's weights are never validated during fitting.
    fit = fit_small(UserPersonalization, data, max_epochs=5, batch_size=16,
                    trainer_args={"check_val_every_n_epoch": 2, "callbacks": [cb], "num_sanity_val_steps": 0},
                    hidden_dimension=16, bptt=10, learning_rate=0.01)
    recipe, trainer, dm = fit.recipe, fit.trainer, fit.dm
    assert cb.best_epoch is not None and cb.unvalidated_state is not None
    assert same(weights(recipe), cb.best_state)                       # the best is loaded meanwhile
    final_state = cb.unvalidated_state
    best_before = cb.best
    kept = cb.consider_final_weights(recipe, lambda: trainer.validate(recipe, datamodule=dm, verbose=False))
    assert kept == (cb.best > best_before)
    assert same(weights(recipe), final_state if kept else cb.best_state)
