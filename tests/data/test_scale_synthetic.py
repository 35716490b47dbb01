"""Tests of the scale data generator: files, Personalize schemas, determinism and every planted pattern,
on a tiny data set written in several chunks (so the chunked path is the one tested)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from personalize_torch.data.constants import (
    CREATION_TIMESTAMP,
    EVENT_TYPE,
    INTERACTIONS,
    ITEM_ID,
    ITEMS,
    TIMESTAMP,
    USER_ID,
    USERS,
)
from personalize_torch.data.csv_import import read_dataset_csv
from personalize_torch.data.scale_synthetic import (
    BETWEEN_SESSION_GAP,
    CATEGORY,
    CLICK,
    PRICE,
    PURCHASE,
    SEGMENT,
    WITHIN_SESSION_GAP,
    ScaleParams,
    _true_rank,
    build_planted_model,
    main,
    oracle_ndcg_at_k,
    parse_count,
    write_scale_data,
)
from personalize_torch.data.schema import load_schema

N_INTERACTIONS, N_ITEMS, N_CATALOGUE, N_USERS = 20_000, 2_000, 2_500, 2_000
PARAMS = ScaleParams(n_interactions=N_INTERACTIONS, n_items=N_ITEMS, n_users=N_USERS,
                     n_catalogue_items=N_CATALOGUE, seed=0, chunk_events=3_000)
ORACLE_USERS = 500
FILES = {"interactions.csv", "items.csv", "users.csv", "interactions.schema.json", "items.schema.json",
         "users.schema.json", "truth.json"}


def _write(folder: Path, params: ScaleParams = PARAMS) -> dict:
    return write_scale_data(folder, params, with_items=True, with_users=True, oracle_users=ORACLE_USERS)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scale")
    _write(out)
    return out


@pytest.fixture(scope="module")
def events(folder) -> pd.DataFrame:
    df = pd.read_csv(folder / "interactions.csv", dtype={USER_ID: str, ITEM_ID: str})
    df["user"] = df[USER_ID].str[1:].astype(int)
    df["item"] = df[ITEM_ID].str[1:].astype(int)
    return df


@pytest.fixture(scope="module")
def model():
    return build_planted_model(PARAMS)


def _ids(column: pd.Series, prefix: str) -> np.ndarray:
    assert column.str.fullmatch(prefix + r"\d{7}").all()
    return column.str[1:].astype(int).to_numpy()


def test_files_schemas_and_exact_row_counts(folder):
    assert {p.name for p in folder.iterdir()} == FILES  # nothing half-written left behind
    for name, dataset_type, n_rows in (("interactions", INTERACTIONS, N_INTERACTIONS), ("items", ITEMS, N_CATALOGUE),
                                       ("users", USERS, N_USERS)):
        schema = load_schema(folder / f"{name}.schema.json", dataset_type)
        frame = pd.read_csv(folder / f"{name}.csv")
        assert list(frame.columns) == schema.names
        assert len(frame) == n_rows
        imported, _ = read_dataset_csv(folder / f"{name}.csv", dataset_type, schema)  # the project's own importer
        assert len(imported) == n_rows
    assert load_schema(folder / "items.schema.json").get(CATEGORY).categorical
    assert load_schema(folder / "users.schema.json").get(SEGMENT).categorical
    items = pd.read_csv(folder / "items.csv")
    assert items[PRICE].dtype == float and (items[PRICE] > 0).all()
    assert items[CREATION_TIMESTAMP].dtype == np.int64 and (items[CREATION_TIMESTAMP] < PARAMS.start_time).all()


def test_ids_in_range_and_every_user_has_at_least_three_events(folder, events):
    users = _ids(events[USER_ID], "u")
    assert users.min() == 0 and users.max() == N_USERS - 1
    assert (np.bincount(users, minlength=N_USERS) >= 3).all()
    items = _ids(events[ITEM_ID], "i")
    assert items.min() >= 0 and items.max() < N_ITEMS  # catalogue-only items never get an event
    catalogue = _ids(pd.read_csv(folder / "items.csv", dtype=str)[ITEM_ID], "i")
    np.testing.assert_array_equal(catalogue, np.arange(N_CATALOGUE))
    np.testing.assert_array_equal(_ids(pd.read_csv(folder / "users.csv", dtype=str)[USER_ID], "u"), np.arange(N_USERS))


def test_activity_is_long_tailed(events):
    counts = events.groupby("user").size()
    assert counts.min() == 3
    assert counts.max() > 4 * counts.mean()


def test_same_seed_same_bytes_other_seed_differs(folder, tmp_path):
    _write(tmp_path / "again")
    for name in FILES:
        assert (tmp_path / "again" / name).read_bytes() == (folder / name).read_bytes(), name
    _write(tmp_path / "other", ScaleParams(**{**PARAMS.__dict__, "seed": 1}))
    assert (tmp_path / "other" / "interactions.csv").read_bytes() != (folder / "interactions.csv").read_bytes()


def test_popularity_is_long_tailed(events):
    counts = np.sort(np.bincount(events["item"], minlength=N_ITEMS))[::-1]
    top_share = counts[: N_ITEMS // 100].sum() / counts.sum()
    assert top_share > 0.3  # uniform would give 0.01


def test_items_category_is_the_cluster_and_picks_stay_in_cluster(folder, events, model):
    items = pd.read_csv(folder / "items.csv")
    assert (items[CATEGORY] == np.array(model.cluster_names)[model.item_cluster]).all()
    item_cluster = model.item_cluster[events["item"]]
    user_cluster = model.user_cluster[events["user"]]
    share = (item_cluster == user_cluster).mean()
    # off-cluster picks land in the user's cluster by chance with the cluster's weight
    mass = np.bincount(model.item_cluster[:N_ITEMS], weights=model.weight)
    expected = PARAMS.p_in_cluster + (1 - PARAMS.p_in_cluster) * mass[user_cluster].mean()
    assert share == pytest.approx(expected, abs=0.015)
    users = pd.read_csv(folder / "users.csv")
    segment_is_cluster = (users[SEGMENT] == np.array(model.cluster_names)[model.user_cluster]).mean()
    assert segment_is_cluster == pytest.approx(0.7 + 0.3 / PARAMS.resolved().n_clusters, abs=0.04)


def test_next_event_follows_the_successor(events, model):
    same_user = events["user"].to_numpy()[1:] == events["user"].to_numpy()[:-1]
    prev, nxt = events["item"].to_numpy()[:-1][same_user], events["item"].to_numpy()[1:][same_user]
    follow = (nxt == model.successor[prev]).mean()
    assert follow == pytest.approx(PARAMS.p_successor, abs=0.03)
    assert (model.item_cluster[model.successor] == model.item_cluster[:N_ITEMS]).all()


def test_timestamps_sorted_per_user_and_sessions_visible(events):
    assert events.groupby("user")[TIMESTAMP].apply(lambda t: t.is_monotonic_increasing).all()
    same_user = events["user"].to_numpy()[1:] == events["user"].to_numpy()[:-1]
    gaps = np.diff(events[TIMESTAMP].to_numpy())[same_user]
    within = gaps <= WITHIN_SESSION_GAP[2]
    between = gaps >= BETWEEN_SESSION_GAP[0]
    assert (within | between).all()  # nothing in between: two separate modes
    assert 0.75 < within.mean() < 0.95
    assert np.median(gaps[between]) > 86400 / 2 and np.median(gaps[within]) < 600


def test_event_types_mostly_clicks(events):
    share = events[EVENT_TYPE].value_counts(normalize=True)
    assert set(share.index) == {CLICK, PURCHASE}
    assert share[CLICK] > 0.9


def test_oracle_beats_popularity_and_reads_back_from_the_files(folder):
    truth = json.loads((folder / "truth.json").read_text())
    assert truth["evaluation"]["n_users"] == ORACLE_USERS
    assert truth["oracle"]["ndcg_at_10"] > 2 * truth["popularity"]["ndcg_at_10"]
    assert truth["oracle"]["ndcg_at_10"] > truth["taste_only_oracle"]["ndcg_at_10"] + 0.15  # the sequence matters
    assert truth["oracle"]["recall_at_10"] >= truth["oracle"]["ndcg_at_10"]
    again = oracle_ndcg_at_k(folder, k=10, n_users_sample=ORACLE_USERS)
    for name in ("oracle", "taste_only_oracle", "popularity"):
        assert again[name] == truth[name]


def test_oracle_rank_equals_a_full_catalogue_ranking(events, model):
    last = np.flatnonzero(np.r_[events["user"].to_numpy()[1:] != events["user"].to_numpy()[:-1], True])[:200]
    users, prev, target = (events["user"].to_numpy()[last], events["item"].to_numpy()[last - 1],
                           events["item"].to_numpy()[last])
    cluster = model.user_cluster[users]
    p = PARAMS.resolved()
    mass = np.bincount(model.item_cluster[:N_ITEMS], weights=model.weight)
    in_c = model.item_cluster[None, :N_ITEMS] == cluster[:, None]
    prob = (1 - p.p_successor) * (p.p_in_cluster * model.weight / mass[cluster][:, None] * in_c
                                  + (1 - p.p_in_cluster) * model.weight)  # (200, n_items)
    prob[np.arange(users.size), model.successor[prev]] += p.p_successor
    full_rank = (prob >= prob[np.arange(users.size), target][:, None]).sum(axis=1)
    np.testing.assert_array_equal(_true_rank(model, cluster, prev, target, 10, p.p_successor),
                                  np.minimum(full_rank, 11))


def test_parse_count():
    assert [parse_count(s) for s in ("200k", "1M", "10M", "100M", "1.5M", "1000")] == [
        200_000, 1_000_000, 10_000_000, 100_000_000, 1_500_000, 1000]
    with pytest.raises(argparse.ArgumentTypeError):
        parse_count("ten")


def test_cli_writes_the_requested_files(tmp_path, capsys):
    main(["--out", str(tmp_path), "--interactions", "6k", "--items", "500", "--users", "1k", "--quiet"])
    assert {p.name for p in tmp_path.iterdir()} == {"interactions.csv", "interactions.schema.json", "truth.json"}
    assert len(pd.read_csv(tmp_path / "interactions.csv")) == 6000
    assert "oracle" in json.loads(capsys.readouterr().out)
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--interactions", "2k", "--items", "500", "--users", "1k"])  # < 3 per user
