"""HRNN: session cutting, the hierarchical state updates, Personalize's hyperparameters, and learning on
the demo data's planted sequential chains (it must beat Popularity-Count)."""

import pytest
import pytorch_lightning as pl
import torch

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.data.datamodule import InteractionsDataModule
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.errors import InputError
from personalize_torch.metrics.functional import mask_scores
from personalize_torch.metrics.ranking_metrics import RankingMetrics
from personalize_torch.models.hrnn import HierarchicalGRU, one_cpu_thread, session_starts
from personalize_torch.recipes.hrnn import HRNN
from personalize_torch.recipes.popularity_count import PopularityCount
from tests.conftest import fit_small


def test_session_starts_cut_at_the_gap_and_ignore_padding():
    items = torch.tensor([[0, 0, 5, 6, 7, 8],
                          [1, 2, 3, 4, 5, 6],
                          [0, 0, 0, 0, 0, 0]])
    times = torch.tensor([[0, 0, 100, 200, 5000, 5100],
                          [10, 20, 1820, 3621, 3622, 99999],
                          [0, 0, 0, 0, 0, 0]])
    starts = session_starts(items, times, gap=1800)
    assert starts.tolist() == [[False, False, True, False, True, False],
                               [True, False, False, True, False, True],   # 1800 s is not a gap, 1801 s is
                               [False] * 6]
    # Position-only timestamps (the amazon_seq files): one session per user.
    positions = torch.arange(6).expand(2, 6)
    assert session_starts(items[:2], positions, gap=1800).sum(1).tolist() == [1, 1]
    # A gap below 1 second: every event is its own session.
    assert session_starts(items[:2], positions, gap=0).sum(1).tolist() == [4, 6]


def test_states_follow_the_hierarchy():
    """Within a session the session GRU runs on; at a session start the state comes from the user GRU,
    which has read the previous session's last state; each context also holds the previous item's
    embedding; padding changes nothing."""
    torch.manual_seed(0)
    model = HierarchicalGRU(n_items=10, dim=8, dropout=0.0, embedding_dropout=0.0).eval()
    items = torch.tensor([[0, 3, 4, 5, 6]])
    starts = torch.tensor([[False, True, False, True, False]])
    with torch.no_grad():
        contexts, going_on, restarted = model(items, starts)
        assert contexts.shape == (1, 5, 16) and going_on.shape == restarted.shape == (1, 16)
        x = model.item_embedding(items)[0]
        zero = torch.zeros(1, 8)
        h0 = torch.tanh(model.session_init(zero))
        h1 = model.session_gru(x[1:2], h0)
        h2 = model.session_gru(x[2:3], h1)
        user = model.user_gru(h2, zero)
        h2b = torch.tanh(model.session_init(user))          # the second session's first state
        h3 = model.session_gru(x[3:4], h2b)
        h4 = model.session_gru(x[4:5], h3)
        expected = torch.cat([torch.cat([h0, h0, h1, h2b, h3]), torch.cat([zero, zero, x[1:4]])], 1)
        torch.testing.assert_close(contexts[0], expected)
        torch.testing.assert_close(going_on, torch.cat([h4, x[4:5]], 1))
        new_session = torch.tanh(model.session_init(model.user_gru(h4, user)))
        torch.testing.assert_close(restarted, torch.cat([new_session, x[4:5]], 1))
        # More left padding gives the same contexts for the real events.
        padded, _, _ = model(torch.cat([torch.zeros(1, 3, dtype=torch.long), items], 1),
                             torch.cat([torch.zeros(1, 3, dtype=torch.bool), starts], 1))
        torch.testing.assert_close(padded[0, 3:], contexts[0])


def test_scores_shapes_and_users_without_history():
    recipe = HRNN(n_items=12, hidden_dimension=16).eval()
    recipe.item_counts[1:] = torch.arange(11, dtype=torch.float)     # item 11 most popular
    batch = SequenceBatch(torch.tensor([1, 2, 3]),
                          torch.tensor([[0, 4, 5], [1, 2, 3], [0, 0, 0]]),
                          torch.tensor([[0, 10, 20], [0, 5000, 5010], [0, 0, 0]]))
    loss = recipe.train().loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    with torch.no_grad():
        scores = recipe.eval().score(batch)
        empty = recipe.score(SequenceBatch(torch.tensor([1]), torch.zeros(1, 0, dtype=torch.long),
                                           torch.zeros(1, 0, dtype=torch.long)))
    assert scores.shape == (3, 12) and torch.isfinite(scores).all()
    assert (scores[:, 0] == 0).all()                                   # padding is never likely
    assert scores[2].argmax() == 11 and empty[0].argmax() == 11        # no history: most popular
    assert torch.allclose(scores[:2].sum(1), torch.ones(2))


def test_one_cpu_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    with one_cpu_thread():
        with one_cpu_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_personalize_string_hyperparameters_and_ranges():
    recipe = HRNN(n_items=20, hidden_dimension="64", bptt="16", recency_mask="false", session_gap_seconds="3600",
                  min_user_history_length_percentile="0.05")
    hp = recipe.hparams
    assert (hp.hidden_dimension, hp.bptt, hp.recency_mask, hp.session_gap_seconds) == (64, 16, False, 3600)
    assert recipe.input_length == 16 and recipe.train_length == 17
    assert recipe.train_user_length_percentiles == (0.05, 0.99)
    with pytest.raises(InputError, match="bptt"):
        HRNN(n_items=20, bptt=1)
    with pytest.raises(InputError, match="loss"):
        HRNN(n_items=20, loss="bpr")


def _ndcg(recipe, dm) -> float:
    metric = RankingMetrics(dm.data.n_items)
    recipe.eval()
    with torch.no_grad():
        for batch in dm.test_dataloader():
            metric.update(mask_scores(recipe.score(batch.inputs), batch.exclude), batch.targets)
    return metric.compute()["ndcg_at_10"].item()


def test_hrnn_learns_the_planted_chains_and_beats_popularity(tmp_path):
    pl.seed_everything(0)
    data = PreparedData(demo_dataset_group(n_users=300, n_items=120, seed=1), split="leave_one_out")
    pop = PopularityCount(data.n_items)
    for batch in InteractionsDataModule(data, pop.loader_needs(), batch_size=32).train_dataloader():
        pop.accumulate(batch)
    fit = fit_small(HRNN, data, max_epochs=10, batch_size=32,
                    trainer_args={"limit_val_batches": 0, "default_root_dir": tmp_path},
                    hidden_dimension=32, learning_rate=5e-3)
    hrnn, dm = fit.recipe, fit.dm
    assert 0 < hrnn.new_session_rate < 0.5          # the demo data has sessions; most events continue one
    results = {"hrnn": _ndcg(hrnn, dm), "popularity": _ndcg(pop, dm)}
    assert results["hrnn"] > 1.5 * results["popularity"], results
