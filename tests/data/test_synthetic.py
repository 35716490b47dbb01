"""Tests of the built-in demo data set: shape, Personalize constraints and every planted pattern."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from personalize_torch.data.constants import (
    CREATION_TIMESTAMP,
    EVENT_TYPE,
    EVENT_VALUE,
    IMPRESSION,
    INTERACTIONS,
    ITEM_ID,
    ITEMS,
    MIN_INTERACTIONS,
    MIN_USERS_WITH_TWO_INTERACTIONS,
    MULTI_VALUE_SEPARATOR,
    REQUIRED_FIELDS,
    RESERVED_OPTIONAL_FIELDS,
    TIMESTAMP,
    USER_ID,
    USERS,
)
from personalize_torch.data.synthetic import (
    AGE_GROUP,
    CLICK,
    DESCRIPTION,
    DEVICE,
    DEVICES,
    GENRES,
    MEMBERSHIP,
    PRICE,
    PURCHASE,
    SLATE_SIZE,
    DemoData,
    generate_demo_data,
    main,
    write_demo_data,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo() -> DemoData:
    return generate_demo_data()


@pytest.fixture(scope="module")
def clicks(demo: DemoData) -> pd.DataFrame:
    """Clicks in per-user time order."""
    c = demo.interactions[demo.interactions[EVENT_TYPE] == CLICK]
    return c.sort_values([USER_ID, TIMESTAMP], kind="stable").reset_index(drop=True)


def _consecutive(clicks: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(same-user mask, current item, next item) over consecutive clicks."""
    users = clicks[USER_ID].to_numpy()
    items = clicks[ITEM_ID].to_numpy()
    same = users[1:] == users[:-1]
    return same, items[:-1][same], items[1:][same]


def _slates(frame: pd.DataFrame) -> list[list[str]]:
    return [s.split(MULTI_VALUE_SEPARATOR) for s in frame[IMPRESSION]]


# ---------------------------------------------------------------- basics


def test_deterministic_for_a_seed():
    a = generate_demo_data(n_users=150, n_items=80, seed=3)
    b = generate_demo_data(n_users=150, n_items=80, seed=3)
    for name in ("interactions", "items", "users"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert a.truth == b.truth
    c = generate_demo_data(n_users=150, n_items=80, seed=4)
    assert not a.interactions.equals(c.interactions)


def test_columns_dtypes_and_schemas(demo: DemoData):
    inter, items, users = demo.interactions, demo.items, demo.users
    assert list(inter.columns) == [USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE, EVENT_VALUE, IMPRESSION, DEVICE]
    assert list(items.columns) == [ITEM_ID, GENRES, PRICE, CREATION_TIMESTAMP, DESCRIPTION]
    assert list(users.columns) == [USER_ID, MEMBERSHIP, AGE_GROUP]
    for frame, string_cols in (
        (inter, [USER_ID, ITEM_ID, EVENT_TYPE, IMPRESSION, DEVICE]),
        (items, [ITEM_ID, GENRES, DESCRIPTION]),
        (users, [USER_ID, MEMBERSHIP, AGE_GROUP]),
    ):
        for col in string_cols:
            assert pd.api.types.is_string_dtype(frame[col]), col
            assert frame[col].notna().all(), col
    assert inter[TIMESTAMP].dtype == np.int64
    assert inter[EVENT_VALUE].dtype == np.float64
    assert items[PRICE].dtype == np.float64
    assert items[CREATION_TIMESTAMP].dtype == np.int64
    assert inter[USER_ID].str.match(r"^u\d+$").all() and inter[ITEM_ID].str.match(r"^i\d+$").all()

    for schema, frame, name in (
        (demo.interactions_schema, inter, INTERACTIONS),
        (demo.items_schema, items, ITEMS),
        (demo.users_schema, users, USERS),
    ):
        assert schema["type"] == "record" and schema["name"] == name
        assert schema["namespace"] == "com.amazonaws.personalize.schema" and schema["version"] == "1.0"
        fields = {f["name"]: f for f in schema["fields"]}
        assert list(fields) == list(frame.columns)
        for col, allowed in {**REQUIRED_FIELDS[name], **RESERVED_OPTIONAL_FIELDS[name]}.items():
            if col in fields:
                assert fields[col]["type"] in allowed, col
        json.dumps(schema)  # serializable as is
    f_int = {f["name"]: f for f in demo.interactions_schema["fields"]}
    assert f_int[TIMESTAMP]["type"] == "long" and f_int[EVENT_VALUE]["type"] == "float"
    assert f_int[DEVICE] == {"name": DEVICE, "type": "string", "categorical": True}
    f_items = {f["name"]: f for f in demo.items_schema["fields"]}
    assert f_items[GENRES]["categorical"] is True and f_items[DESCRIPTION]["textual"] is True
    assert f_items[PRICE]["type"] == "float" and f_items[CREATION_TIMESTAMP]["type"] == "long"
    f_users = {f["name"]: f for f in demo.users_schema["fields"]}
    assert f_users[MEMBERSHIP]["categorical"] is True and f_users[AGE_GROUP]["categorical"] is True


def test_personalize_minimums_and_integrity(demo: DemoData):
    inter = demo.interactions
    assert len(inter) >= MIN_INTERACTIONS
    assert (inter[USER_ID].value_counts() >= 2).sum() >= MIN_USERS_WITH_TWO_INTERACTIONS
    assert inter[ITEM_ID].isin(demo.items[ITEM_ID]).all()
    assert inter[USER_ID].isin(demo.users[USER_ID]).all()
    assert demo.items[ITEM_ID].is_unique and demo.users[USER_ID].is_unique
    assert len(demo.users) == 1000 and len(demo.items) == 400
    assert inter[TIMESTAMP].is_monotonic_increasing
    assert set(inter[EVENT_TYPE]) == {CLICK, PURCHASE}
    assert set(inter[DEVICE]) == set(DEVICES)
    assert inter[EVENT_VALUE].between(1.0, 5.0).all()
    per_user = inter.groupby(USER_ID).size()
    assert per_user.min() >= 15


def test_purchases_follow_their_click(demo: DemoData):
    inter = demo.interactions.sort_values([USER_ID, TIMESTAMP], kind="stable").reset_index(drop=True)
    purchases = np.flatnonzero(inter[EVENT_TYPE].to_numpy() == PURCHASE)
    assert 0.05 < purchases.size / len(inter) < 0.4
    before = inter.iloc[purchases - 1].reset_index(drop=True)
    after = inter.iloc[purchases].reset_index(drop=True)
    assert (before[EVENT_TYPE] == CLICK).all()
    for col in (USER_ID, ITEM_ID, DEVICE, IMPRESSION):
        assert (before[col] == after[col]).all(), col
    delay = after[TIMESTAMP] - before[TIMESTAMP]
    assert delay.between(1, 60).all()


# ---------------------------------------------------------------- planted patterns


def test_long_tail_popularity(demo: DemoData, clicks: pd.DataFrame):
    counts = clicks[ITEM_ID].value_counts()
    top_share = counts.iloc[: len(demo.items) // 10].sum() / counts.sum()
    assert top_share > 0.35  # a uniform catalog would give ~0.10
    planted = pd.Series(demo.truth.item_popularity)
    assert np.isclose(planted.sum(), 1.0)
    observed = counts.reindex(planted.index, fill_value=0)
    assert observed.rank().corr(planted.rank()) > 0.4


def test_taste_clusters(demo: DemoData, clicks: pd.DataFrame):
    truth = demo.truth
    n_clusters = len(truth.genres)
    in_cluster = clicks[USER_ID].map(truth.user_cluster) == clicks[ITEM_ID].map(truth.item_cluster)
    assert in_cluster.mean() > 0.7 > 5 / n_clusters
    # the first genre of an item is its cluster's genre, and the description mentions its genres
    first = demo.items[GENRES].str.split(MULTI_VALUE_SEPARATOR).str[0]
    assert (first == demo.items[ITEM_ID].map(lambda i: truth.genres[truth.item_cluster[i]])).all()
    for genres, text in zip(demo.items[GENRES], demo.items[DESCRIPTION]):
        for g in genres.split(MULTI_VALUE_SEPARATOR):
            assert g.lower() in text.lower()
    assert demo.items[GENRES].str.contains(MULTI_VALUE_SEPARATOR, regex=False).mean() > 0.2
    # the rating-like EVENT_VALUE is higher when the item fits the user's taste
    values = clicks[EVENT_VALUE]
    assert values[in_cluster].mean() > values[~in_cluster].mean() + 1.0


def test_sequential_chains(demo: DemoData, clicks: pd.DataFrame):
    truth = demo.truth
    with_successor = [i for i, s in truth.successor.items() if s is not None]
    assert 0.4 < len(with_successor) / len(truth.successor) < 0.9
    assert all(truth.item_cluster[i] == truth.item_cluster[truth.successor[i]] for i in with_successor)
    assert len(set(truth.successor[i] for i in with_successor)) == len(with_successor)  # chains, no merges

    _, cur, nxt = _consecutive(clicks)
    succ = np.array([truth.successor[i] for i in cur], dtype=object)
    has = np.array([s is not None for s in succ])
    hit = (nxt[has] == succ[has]).mean()
    # chance level: the same successors paired with a random other next click
    shuffled = (nxt[has] == np.random.default_rng(0).permutation(succ[has])).mean()
    assert hit > 0.35
    assert shuffled < 0.05
    assert hit > 10 * shuffled


def test_sessions(demo: DemoData, clicks: pd.DataFrame):
    truth = demo.truth
    same, _, _ = _consecutive(clicks)
    gaps = np.diff(clicks[TIMESTAMP].to_numpy())[same]
    assert gaps.min() >= 1
    within = gaps <= truth.max_within_session_gap
    between = gaps >= truth.min_between_session_gap
    assert (within | between).all()  # bimodal: nothing between 30 min and 2 h
    assert 0.6 < within.mean() < 0.95
    sessions_per_user = (between.sum() + clicks[USER_ID].nunique()) / clicks[USER_ID].nunique()
    assert sessions_per_user > 3
    # one device per session
    dev = clicks[DEVICE].to_numpy()
    assert (dev[1:][same][within] == dev[:-1][same][within]).all()


def test_impressions(demo: DemoData, clicks: pd.DataFrame):
    truth = demo.truth
    slates = _slates(clicks)
    sizes = np.array([len(s) for s in slates])
    assert sizes.min() >= SLATE_SIZE[0] and sizes.max() <= SLATE_SIZE[1]
    assert all(len(set(s)) == len(s) for s in slates)
    assert all(item in s for item, s in zip(clicks[ITEM_ID], slates))
    chosen_pos = np.array([s.index(item) for item, s in zip(clicks[ITEM_ID], slates)])
    assert (chosen_pos == 0).mean() < 0.3  # position does not give the choice away

    skipped_in, skipped_pop = [], []
    for user, item, slate in zip(clicks[USER_ID], clicks[ITEM_ID], slates):
        cluster = truth.user_cluster[user]
        for other in slate:
            if other != item:
                skipped_in.append(truth.item_cluster[other] == cluster)
                skipped_pop.append(truth.item_popularity[other])
    chosen_in = (clicks[USER_ID].map(truth.user_cluster) == clicks[ITEM_ID].map(truth.item_cluster)).mean()
    assert chosen_in > 0.7
    assert np.mean(skipped_in) < 0.3
    assert chosen_in > 3 * np.mean(skipped_in)
    # the skipped items are the exposure (popularity) draws
    assert np.mean(skipped_pop) > 1.3 * clicks[ITEM_ID].map(truth.item_popularity).mean()
    # and nothing is shown before it exists
    created = demo.items.set_index(ITEM_ID)[CREATION_TIMESTAMP].to_dict()
    newest = np.array([max(created[i] for i in s) for s in slates])
    assert (newest <= clicks[TIMESTAMP].to_numpy()).all()


def test_slate_choice_picks_from_the_slate_by_utility():
    demo = generate_demo_data(n_users=300, n_items=120, seed=4, slate_choice=True)
    truth = demo.truth
    c = demo.interactions[demo.interactions[EVENT_TYPE] == CLICK]
    slates = _slates(c)
    sizes = np.array([len(s) for s in slates])
    assert sizes.min() >= SLATE_SIZE[0] and sizes.max() <= SLATE_SIZE[1]
    assert all(len(set(s)) == len(s) and item in s for item, s in zip(c[ITEM_ID], slates))
    in_cluster = {(u, i): truth.user_cluster[u] == truth.item_cluster[i] for u in truth.user_cluster
                  for i in truth.item_cluster}
    chosen_in = np.mean([in_cluster[u, i] for u, i in zip(c[USER_ID], c[ITEM_ID])])
    shown_in = np.mean([in_cluster[u, o] for u, s in zip(c[USER_ID], slates) for o in s])
    # the user picks in-cluster items far more often than the slate offers them ...
    assert chosen_in > 2 * shown_in
    # ... but only from what was shown, so the slate (drawn by exposure) bounds the choice: a click is
    # in-cluster at most as often as its slate holds one (plus followed chain successors)
    has_in = np.mean([any(in_cluster[u, o] for o in s) for u, s in zip(c[USER_ID], slates)])
    assert chosen_in <= has_in + 0.05


def test_late_items(demo: DemoData):
    truth = demo.truth
    merged = demo.interactions.merge(demo.items[[ITEM_ID, CREATION_TIMESTAMP]], on=ITEM_ID, how="left")
    assert (merged[TIMESTAMP] >= merged[CREATION_TIMESTAMP]).all()
    created = demo.items.set_index(ITEM_ID)[CREATION_TIMESTAMP]
    late = created[created > truth.start_time]
    assert sorted(late.index) == sorted(truth.late_items)
    assert 0.05 * len(created) <= len(late) <= 0.2 * len(created)
    t_min, t_max = demo.interactions[TIMESTAMP].min(), demo.interactions[TIMESTAMP].max()
    assert (late > t_min + 0.3 * (t_max - t_min)).all()
    with_events = demo.interactions.loc[demo.interactions[ITEM_ID].isin(late.index), ITEM_ID].nunique()
    assert with_events >= 0.8 * len(late)
    assert (created[created <= truth.start_time] < t_min).all()


def test_device_context_moves_price(demo: DemoData, clicks: pd.DataFrame):
    price = clicks[ITEM_ID].map(demo.items.set_index(ITEM_ID)[PRICE])
    by_device = price.groupby(clicks[DEVICE]).mean()
    assert by_device["mobile"] < 0.85 * by_device["desktop"]
    assert by_device["mobile"] < by_device["tablet"] < by_device["desktop"]
    share = clicks[DEVICE].value_counts(normalize=True)
    assert share["mobile"] > share["desktop"] > share["tablet"] > 0.05


def test_user_metadata_predicts_cluster(demo: DemoData):
    users = demo.users
    cluster = users[USER_ID].map(demo.truth.user_cluster)
    key = users[MEMBERSHIP] + "/" + users[AGE_GROUP]
    majority = cluster.groupby(key).agg(lambda s: s.value_counts().index[0])
    accuracy = (key.map(majority) == cluster).mean()
    baseline = cluster.value_counts(normalize=True).iloc[0]
    assert accuracy > 3 * baseline
    assert accuracy > 0.45


# ---------------------------------------------------------------- I/O, CLI, sizes


def test_write_round_trip(tmp_path: Path):
    data = generate_demo_data(n_users=120, n_items=60, seed=7)
    paths = write_demo_data(data, tmp_path / "demo")
    assert set(paths) == {
        "interactions", "items", "users", "interactions_schema", "items_schema", "users_schema",
    }  # fmt: skip
    assert paths["interactions"].name == "interactions.csv"
    assert paths["items_schema"].name == "items.schema.json"
    for name in ("interactions", "items", "users"):
        back = pd.read_csv(paths[name])
        pd.testing.assert_frame_equal(back, getattr(data, name))
        with open(paths[f"{name}_schema"]) as fh:
            assert json.load(fh) == getattr(data, f"{name}_schema")


def test_cli_main(tmp_path: Path):
    paths = main(["--out", str(tmp_path), "--n-users", "80", "--n-items", "50", "--seed", "2"])
    assert all(p.exists() for p in paths.values())
    assert pd.read_csv(paths["users"]).shape[0] == 80
    assert pd.read_csv(paths["items"]).shape[0] == 50


def test_cli_module(tmp_path: Path):
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "personalize_torch.data.synthetic", "--out", str(out), "--n-users", "60", "--seed", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for name in ("interactions.csv", "items.csv", "users.csv", "interactions.schema.json"):
        assert (out / name).exists(), name
    expected = generate_demo_data(n_users=60, seed=1)
    pd.testing.assert_frame_equal(pd.read_csv(out / "users.csv"), expected.users)


def test_other_sizes_and_bad_arguments():
    many = generate_demo_data(n_users=100, n_items=100, n_clusters=20, events_per_user=(2, 4), seed=1)
    assert len(many.truth.genres) == 20 and len(set(many.truth.genres)) == 20
    assert many.interactions.groupby(USER_ID).size().min() >= 2
    assert many.interactions[ITEM_ID].isin(many.items[ITEM_ID]).all()
    one = generate_demo_data(n_users=30, n_items=20, n_clusters=1, seed=1)
    assert set(one.truth.item_cluster.values()) == {0}
    with pytest.raises(ValueError):
        generate_demo_data(n_items=5)
    with pytest.raises(ValueError):
        generate_demo_data(events_per_user=(10, 5))
    with pytest.raises(ValueError):
        generate_demo_data(n_clusters=0)


def test_generation_is_fast():
    t0 = time.perf_counter()
    generate_demo_data(seed=11)
    assert time.perf_counter() - t0 < 5.0  # ~0.3-0.5 s in practice; generous bound against CI noise
