"""train.py's path end to end on demo data: metrics, TensorBoard logs, a loadable solution version."""

import json

import torch

from personalize_torch.data.datamodule import InteractionsDataModule
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.metrics.functional import mask_scores
from personalize_torch.metrics.ranking_metrics import RankingMetrics

PERSONALIZE_NAMES = {"coverage", "mean_reciprocal_rank_at_25", "normalized_discounted_cumulative_gain_at_5",
                     "normalized_discounted_cumulative_gain_at_10", "normalized_discounted_cumulative_gain_at_25",
                     "precision_at_5", "precision_at_10", "precision_at_25"}


def test_train_writes_a_solution_version(trained_solution):
    path = trained_solution["solution"]
    info = json.loads(open(f"{path}/solution.json").read())
    assert info["recipe"] == "popularity_count"
    assert info["hyperparameters"]["n_items"] == info["data"]["n_items"] + 1
    assert set(info["personalize_metrics"]) == PERSONALIZE_NAMES
    assert info["data"]["split"] == "personalize" and len(info["data"]["fingerprint"]) == 16
    ckpt = torch.load(f"{path}/model.ckpt", weights_only=True)
    assert "user_counts" in ckpt["state_dict"]


def test_solution_version_keeps_each_events_slate(trained_solution):
    """The impressions travel with the histories (exploration counts skips from them), event for event."""
    from personalize_torch.solution_version import load_solution_version

    sol = load_solution_version(trained_solution["solution"])
    data = PreparedData(demo_dataset_group(n_users=300, n_items=120))   # conftest.SMALL_DEMO
    assert sol.histories.impressions is not None and len(sol.histories.impressions) == len(sol.histories.item_idx)
    assert sol.histories.impressions.lengths.tolist() == data.sequences.impressions.lengths.tolist()
    assert sol.histories.impressions.values.tolist() == data.sequences.impressions.values.tolist()
    assert sol.histories.shown_not_chosen(sol.item_vocab.size_with_padding).sum() > 0


def test_train_logs_to_tensorboard(trained_solution):
    from pathlib import Path

    logs = Path(trained_solution["solution"]).parent / "logs"
    assert list(logs.rglob("events.out.tfevents.*"))


def test_popularity_beats_random_scores_on_demo_data():
    """Learning vs noise: the demo data's planted long tail makes popularity far better than chance."""
    from personalize_torch.recipes.popularity_count import PopularityCount

    data = PreparedData(demo_dataset_group(n_users=400, n_items=150, seed=5), split="leave_one_out")
    pop = PopularityCount.from_data(data.describe())
    pop.count_statistics(data.split)
    dm = InteractionsDataModule(data, pop.loader_needs())
    for batch in dm.train_dataloader():
        pop.accumulate(batch)
    generator = torch.Generator().manual_seed(0)
    results = {}
    for name in ("popularity", "random"):
        metric = RankingMetrics(data.n_items)
        for _ in range(1 if name == "popularity" else 5):   # random: 5 draws, so one lucky draw cannot decide
            for batch in dm.test_dataloader():
                if name == "popularity":
                    scores = pop.score(batch.inputs)
                else:
                    scores = torch.rand(batch.targets.shape[0], data.n_items, generator=generator)
                metric.update(mask_scores(scores, batch.exclude), batch.targets)
        results[name] = metric.compute()["ndcg_at_10"].item()
    assert results["popularity"] > 3 * results["random"], results
