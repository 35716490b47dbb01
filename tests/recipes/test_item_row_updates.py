"""Item tables updated by rows when the sampled softmax is on (next_item.py, recipes/optimizer.py): the
optimizer is AdamW for dense gradients and lazy row-wise AdamW for row gradients; a training step leaves every
item row it did not read exactly as it was; the recipes still learn the demo data's planted patterns, and
their solution versions save and load."""

import copy
import io

import pytest
import pytorch_lightning as pl
import torch

from personalize_torch.data.datamodule import InteractionsDataModule
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.models.item_rows import gather_rows
from personalize_torch.recipes.hrnn import HRNN
from personalize_torch.recipes.hrnn_meta import HRNNMeta
from personalize_torch.recipes.optimizer import RowSparseAdamW, clip_gradients_
from personalize_torch.recipes.personalized_ranking import PersonalizedRanking
from personalize_torch.recipes.popularity_count import PopularityCount
from personalize_torch.recipes.user_personalization import UserPersonalization
from personalize_torch.solution_version import load_solution_version, save_solution_version
from tests.conftest import fit_small

ADAMW = {"lr": 0.01, "weight_decay": 0.1}


def _params(seed: int = 0) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    return [torch.randn(12, 4, requires_grad=True), torch.randn(12, requires_grad=True)]


def _row_grads(params, rows: torch.Tensor, seed: int) -> None:
    """Gradients on `rows` of each parameter only (sparse), as gather_rows gives them."""
    torch.manual_seed(seed)
    for p in params:
        (gather_rows(p, rows) * torch.randn(len(rows), *p.shape[1:])).sum().backward()


def test_dense_gradients_are_plain_adamw_bit_for_bit():
    ours, reference = _params(), _params()
    ours_opt, reference_opt = RowSparseAdamW(ours, **ADAMW), torch.optim.AdamW(reference, **ADAMW)
    for step in range(4):
        for params, opt in ((ours, ours_opt), (reference, reference_opt)):
            opt.zero_grad()
            torch.manual_seed(step)
            sum((p * torch.randn_like(p)).sum() for p in params).backward()
            opt.step()
    for a, b in zip(ours, reference):
        assert torch.equal(a, b)


def test_rows_gradients_cover_every_row_is_adamw():
    ours, reference = _params(), _params()
    ours_opt, reference_opt = RowSparseAdamW(ours, **ADAMW), torch.optim.AdamW(reference, **ADAMW)
    every_row = torch.arange(12)
    for step in range(4):
        for params, opt in ((ours, ours_opt), (reference, reference_opt)):
            opt.zero_grad()
            _row_grads(params, every_row, seed=step)
            if opt is reference_opt:
                for p in params:
                    p.grad = p.grad.to_dense()
            opt.step()
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b)


def test_rows_without_gradient_stay_exactly_as_they_were():
    params = _params()
    opt = RowSparseAdamW(params, **ADAMW)
    before = [p.detach().clone() for p in params]
    _row_grads(params, torch.tensor([2, 5, 5]), seed=1)
    opt.step()
    opt.zero_grad()
    _row_grads(params, torch.tensor([5, 7]), seed=2)
    opt.step()
    touched = torch.zeros(12, dtype=torch.bool)
    touched[[2, 5, 7]] = True
    for p, old in zip(params, before):
        assert torch.equal(p[~touched], old[~touched])            # no weight decay, no momentum drift
        assert (p[touched] != old[touched]).reshape(3, -1).all(1).all()
        assert torch.equal(opt.state[p]["exp_avg"][~touched], torch.zeros_like(p[~touched]))


def test_optimizer_state_round_trips_through_a_weights_only_checkpoint():
    params, copies = _params(), _params()
    opt = RowSparseAdamW(params, **ADAMW)
    _row_grads(params, torch.tensor([1, 3]), seed=0)
    opt.step()
    buffer = io.BytesIO()
    torch.save({"params": [p.detach() for p in params], "optimizer": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    with torch.no_grad():
        for p, value in zip(copies, saved["params"]):
            p.copy_(value)
    restored = RowSparseAdamW(copies, **ADAMW)
    restored.load_state_dict(saved["optimizer"])
    for group in (params, copies):
        for p in group:
            p.grad = None
        _row_grads(group, torch.tensor([3, 4]), seed=1)
    opt.step()
    restored.step()
    for a, b in zip(params, copies):
        assert torch.equal(a, b)


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_clipping_row_gradients_equals_clipping_the_dense_ones(algorithm):
    params, dense = _params(), _params()
    _row_grads(params, torch.tensor([1, 3, 3]), seed=0)
    _row_grads(dense, torch.tensor([1, 3, 3]), seed=0)
    extra = [torch.randn(5, requires_grad=True), torch.randn(5, requires_grad=True)]   # a dense parameter too
    extra[0].grad = torch.full((5,), 0.7)
    extra[1].grad = torch.full((5,), 0.7)
    for p in dense:
        p.grad = p.grad.to_dense()
    clip_gradients_([*params, extra[0]], 0.5, algorithm)
    if algorithm == "norm":
        torch.nn.utils.clip_grad_norm_([*dense, extra[1]], 0.5)
    else:
        torch.nn.utils.clip_grad_value_([*dense, extra[1]], 0.5)
    for p, d in zip([*params, extra[0]], [*dense, extra[1]]):
        torch.testing.assert_close(p.grad.to_dense(), d.grad)


# --- the recipes --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data():
    return PreparedData(demo_dataset_group(n_users=300, n_items=120, seed=1), split="leave_one_out")


def test_row_updates_are_on_with_the_sampled_softmax_only(data):
    described = data.describe()
    assert UserPersonalization.from_data(described, hidden_dimension=16, full_softmax_max_items=50).sparse_item_rows
    assert HRNN.from_data(described, hidden_dimension=16, full_softmax_max_items=50).sparse_item_rows
    assert PersonalizedRanking.reads_item_rows                   # User-Personalization's loss, inherited
    assert not HRNNMeta.reads_item_rows                          # whole-table hooks: dense unless it opts in
    small = UserPersonalization.from_data(described, hidden_dimension=16)          # 120 items: full softmax
    assert not small.sparse_item_rows and small.batch_rows(torch.tensor([[1, 2]])) is None
    several = HRNN.from_data(described, hidden_dimension=16, full_softmax_max_items=50)
    several.processes = 2                                        # DDP: dense gradients to all-reduce
    assert not several.sparse_item_rows


def test_small_catalogues_train_exactly_as_with_adamw(data):
    """The full softmax path: dense gradients, and the optimizer's steps are torch's AdamW's, bit for bit."""
    recipe = UserPersonalization.from_data(data.describe(), hidden_dimension=16, bptt=10, lr_schedule="constant")
    recipe.count_statistics(data.split)
    reference = copy.deepcopy(recipe)
    batches = iter(InteractionsDataModule(data, recipe.loader_needs(), batch_size=16).train_dataloader())
    batches = [next(batches) for _ in range(2)]
    for model, opt in ((recipe, recipe.configure_optimizers()),
                       (reference, torch.optim.AdamW(reference.parameters(), lr=reference.hparams.learning_rate,
                                                     weight_decay=reference.hparams.weight_decay))):
        torch.manual_seed(0)
        for batch in batches:
            opt.zero_grad()
            model.loss(batch).backward()
            assert not model.model.item_embedding.weight.grad.is_sparse
            opt.step()
    for (name, a), b in zip(recipe.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(a, b), name


ITEM_TABLES = {UserPersonalization: ["model.item_embedding.weight", "item_bias"],
               HRNN: ["model.item_embedding.weight", "model.item_bias"]}


@pytest.mark.parametrize("recipe_cls", [UserPersonalization, HRNN])
def test_a_step_changes_the_rows_it_read_and_no_other(data, recipe_cls):
    """Above full_softmax_max_items, one training step through Lightning (schedule, gradient clipping and all)
    changes every item row the batch read (its items and the sampled negatives) and leaves every other row,
    weight decay included, bit for bit as it was."""
    pl.seed_everything(0)
    hparams = {"batch_size": 4} if recipe_cls is UserPersonalization else {}
    recipe = recipe_cls.from_data(data.describe(), hidden_dimension=16, bptt=5, full_softmax_max_items=50,
                                  num_negatives=6, weight_decay=0.1, **hparams)
    recipe.count_statistics(data.split)
    read = []
    draw = recipe.batch_rows

    def recording(*items):
        rows = draw(*items)
        read.append(rows.ids)
        return rows

    recipe.batch_rows = recording
    tables = dict(recipe.named_parameters())
    before = {name: tables[name].detach().clone() for name in ITEM_TABLES[recipe_cls]}
    dm = InteractionsDataModule(data, recipe.loader_needs(), batch_size=4)
    pl.Trainer(max_steps=1, gradient_clip_val=0.01, limit_val_batches=0, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, accelerator="cpu").fit(recipe, datamodule=dm)
    assert len(read) == 1
    touched = torch.zeros(recipe.n_items, dtype=torch.bool)
    touched[read[0]] = True
    touched[0] = False                                         # padding: never a gradient, stays 0
    assert 10 < int(touched.sum()) < recipe.n_items // 2, int(touched.sum())
    for name, old in before.items():
        new = tables[name].detach()
        assert torch.equal(new[~touched], old[~touched]), name
        changed = (new[touched] != old[touched]).reshape(int(touched.sum()), -1).any(1)
        # Every item read moves its vector; a bias moves when its item is a target or a negative (an item
        # read only as an input has a zero bias gradient).
        assert changed.all() if name.endswith("item_embedding.weight") else changed.sum() > 5, (name, changed)


def _ndcg(fit) -> float:
    return fit.trainer.test(fit.recipe, datamodule=fit.dm, verbose=False)[0]["test/ndcg_at_10"]


@pytest.fixture(scope="module")
def popularity_ndcg(data):
    return _ndcg(fit_small(PopularityCount, data, trainer_args={"limit_val_batches": 0}))


@pytest.mark.parametrize("recipe_cls, hparams", [
    (UserPersonalization, {"bptt": 20, "learning_rate": 0.01, "dropout": 0.1}),
    (HRNN, {"bptt": 20, "learning_rate": 0.02}),
])
def test_row_updates_still_learn_the_planted_pattern(data, popularity_ndcg, tmp_path, recipe_cls, hparams):
    """The sampled softmax with row updates (catalogue 120 > full_softmax_max_items 50) learns the demo data's
    planted chains well above Popularity-Count, and the solution version loads with the same scores."""
    pl.seed_everything(0)
    fit = fit_small(recipe_cls, data, max_epochs=6, batch_size=32, trainer_args={"limit_val_batches": 0},
                    hidden_dimension=32, full_softmax_max_items=50, num_negatives=32, **hparams)
    assert fit.recipe.sparse_item_rows
    ndcg = _ndcg(fit)
    assert ndcg > 1.5 * popularity_ndcg, (ndcg, popularity_ndcg)

    loaded = load_solution_version(save_solution_version(tmp_path / "sv", fit.trainer, fit.recipe, data, {}))
    batch = next(iter(fit.dm.test_dataloader())).inputs
    fit.recipe.eval()
    with torch.no_grad():
        assert torch.equal(loaded.recipe.score(batch), fit.recipe.score(batch))
