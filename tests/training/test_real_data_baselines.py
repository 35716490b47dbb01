"""Reference numbers on real data (../shared/data): Popularity-Count on ml-100k leave-one-out."""

import pytest

from tests.conftest import compose_train_config, shared_data


@pytest.mark.real_data
def test_popularity_count_ml100k_leave_one_out(tmp_path):
    from personalize_torch.training import train

    path = shared_data("movielens", "ml-100k")
    cfg = compose_train_config(["data=ml100k", f"data.path={path}", "logger=none"], tmp_path)
    test = train(cfg)["metrics"]["test"]
    # An independent count of the same protocol gives NDCG@10 0.0449 (bench/RESULTS.md).
    assert test["ndcg_at_10"] == pytest.approx(0.0449, abs=5e-4)
    assert test["hit_rate_at_10"] == pytest.approx(0.0859, abs=5e-4)
