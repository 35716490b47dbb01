"""`trainer.precision: auto` (bf16 autocast on a CUDA GPU, float32 elsewhere) and float32 evaluation scores."""

import pytest
import torch
from omegaconf import OmegaConf

from personalize_torch.data.datamodule import InteractionsDataModule
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.metrics.ranking_metrics import RankingMetrics
from personalize_torch.recipes.user_personalization import UserPersonalization
from personalize_torch.training import resolve_precision
from tests.conftest import SMALL_DEMO, compose_train_config


@pytest.mark.parametrize("accelerator, cuda, bf16, expected", [
    ("auto", False, False, "32-true"),
    ("auto", True, True, "bf16-mixed"),
    ("gpu", True, True, "bf16-mixed"),
    ("auto", True, False, "32-true"),     # a GPU without bf16 (pre-Ampere) trains in float32
    ("cpu", True, True, "32-true"),       # a CPU run on a machine that has a GPU
])
def test_auto_precision_is_bf16_on_a_cuda_gpu_only(monkeypatch, accelerator, cuda, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    cfg = OmegaConf.create({"accelerator": accelerator, "precision": "auto"})
    resolve_precision(cfg)
    assert cfg.precision == expected


def test_a_precision_given_is_kept(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = OmegaConf.create({"accelerator": "auto", "precision": "16-mixed"})
    resolve_precision(cfg)
    assert cfg.precision == "16-mixed"


def test_train_config_defaults_to_auto_precision(tmp_path):
    cfg = compose_train_config(SMALL_DEMO, tmp_path)
    assert cfg.trainer.precision == "auto"


def test_evaluation_scores_stay_float32_under_bf16_autocast():
    """Under autocast the catalogue product would give bf16 logits: ties and swapped places in a full ranking.
    Evaluation turns autocast off, so metrics are the same with or without it."""
    torch.manual_seed(0)
    data = PreparedData(demo_dataset_group(n_users=150, n_items=400, seed=3), split="leave_one_out")
    recipe = UserPersonalization.from_data(data.describe(), hidden_dimension=32, bptt=20).eval()
    dm = InteractionsDataModule(data, recipe.loader_needs())
    with torch.no_grad():   # spread the item vectors, as training does, so bf16 rounding changes the order
        recipe.model.item_embedding.weight.normal_(0, 1.0)
    batch = next(iter(dm.test_dataloader()))
    plain = recipe.evaluation_scores(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = recipe.evaluation_scores(batch)
        with torch.no_grad():
            raw_bf16 = recipe.score(batch.inputs)
    assert autocast.dtype == torch.float32
    torch.testing.assert_close(autocast, plain)
    assert not torch.allclose(raw_bf16.float(), recipe.score(batch.inputs), rtol=1e-4, atol=1e-7)  # what it avoids
    metrics = [RankingMetrics(data.n_items) for _ in range(2)]
    metrics[0].update(plain, batch.targets)
    metrics[1].update(autocast, batch.targets)
    assert metrics[0].compute()["ndcg_at_10"] == metrics[1].compute()["ndcg_at_10"]


@pytest.mark.gpu
def test_user_personalization_trains_with_bf16_on_cuda_and_serves_on_cpu(tmp_path):
    """The default config on a GPU: bf16 autocast, better than popularity, and a solution version that loads
    and serves on a CPU."""
    from personalize_torch.serving.inference.predictor import Predictor
    from personalize_torch.training import train

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    overrides = [*SMALL_DEMO, "recipe=user_personalization", "recipe.hidden_dimension=32", "trainer.max_epochs=8",
                 "logger=none", "trainer.accelerator=gpu"]
    cfg = compose_train_config(overrides, tmp_path)
    result = train(cfg)
    assert cfg.trainer.precision == "bf16-mixed"
    popularity = train(compose_train_config([*SMALL_DEMO, "logger=none"], tmp_path / "pop"))
    assert result["metrics"]["test"]["ndcg_at_10"] > popularity["metrics"]["test"]["ndcg_at_10"]
    predictor = Predictor.from_dir(result["solution"])
    user = predictor.solution.user_vocab.ids[0]
    (items,) = predictor.recommend([user], 10)
    assert len(items) == 10
