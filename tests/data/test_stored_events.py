"""Training on bulk imports plus what the server stored (PutEvents / PutItems / PutUsers)."""

import pytest

from personalize_torch.data import constants as C
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.data.stored_events import stored_interactions, with_stored_events
from personalize_torch.errors import InputError
from personalize_torch.serving.events.event_store import Event, EventStore
from personalize_torch.serving.inference.predictor import Predictor
from personalize_torch.training import train
from tests.conftest import SMALL_DEMO, compose_train_config

ITEMS_ARN = "arn:aws:personalize:us-east-1:123:dataset/shop/ITEMS"
USERS_ARN = "arn:aws:personalize:us-east-1:123:dataset/shop/USERS"


def fill_store(path) -> None:
    with EventStore(path) as store:
        store.put_events("t", "s1", None, [Event("click", 2_000_000_000, "i3", properties='{"device": "mobile"}')])
        store.put_events("t", "s1", "newcomer", [Event("purchase", 2_000_000_100, "i4", event_value=4.5,
                                                       impression=("i4", "i5"))])
        store.put_events("t", "s2", None, [Event("click", 2_000_000_200, "i5"),
                                           Event("click", 2_000_000_300, None)])   # no item: not an interaction
        store.put_items(ITEMS_ARN, [("i3", '{"price": 9.5}'), ("brand-new-item", '{"genres": "Comedy", "price": 3}')])
        store.put_users(USERS_ARN, [("newcomer", '{"membership": "gold"}')])


def test_stored_events_become_interactions_rows(tmp_path):
    fill_store(tmp_path / "events.sqlite")
    columns = [C.USER_ID, C.ITEM_ID, C.TIMESTAMP, C.EVENT_TYPE, C.EVENT_VALUE, C.IMPRESSION, "DEVICE"]
    rows = stored_interactions(tmp_path / "events.sqlite", columns)
    assert list(rows.columns) == columns
    # the anonymous click of session s1 belongs to the user who later used s1; s2 stays a session
    assert rows[C.USER_ID].tolist() == ["newcomer", "newcomer", "s2"]
    assert rows[C.ITEM_ID].tolist() == ["i3", "i4", "i5"]
    assert rows[C.TIMESTAMP].tolist() == [2_000_000_000, 2_000_000_100, 2_000_000_200]
    assert rows[C.EVENT_TYPE].tolist() == ["click", "purchase", "click"]
    assert rows[C.IMPRESSION].tolist()[1] == "i4|i5" and rows["DEVICE"].tolist()[0] == "mobile"
    assert rows[C.EVENT_VALUE].tolist()[1] == 4.5


def test_group_gains_events_items_and_users(tmp_path):
    fill_store(tmp_path / "events.sqlite")
    group = demo_dataset_group(n_users=60, n_items=40)
    merged = with_stored_events(group, tmp_path / "events.sqlite")
    assert len(merged.interactions) == len(group.interactions) + 3
    items = merged.items.set_index(C.ITEM_ID)
    assert items.loc["i3", "PRICE"] == 9.5 and items.loc["brand-new-item", "GENRES"] == "Comedy"
    assert items.loc["i3", "GENRES"] == group.items.set_index(C.ITEM_ID).loc["i3", "GENRES"]   # other fields kept
    assert merged.users.set_index(C.USER_ID).loc["newcomer", "MEMBERSHIP"] == "gold"
    assert "brand-new-item" in merged.catalogue_item_ids()


def test_train_py_reads_the_store(tmp_path):
    fill_store(tmp_path / "events.sqlite")
    result = train(compose_train_config([*SMALL_DEMO, f"+data.events_db={tmp_path / 'events.sqlite'}", "logger=none"],
                                        tmp_path))
    solution = Predictor.from_dir(result["solution"]).solution
    assert {"newcomer", "s2"} <= set(solution.user_vocab.ids)
    assert "brand-new-item" in set(solution.item_vocab.ids)
    assert result["data"]["n_interactions"] == 12_780 + 3


def test_a_file_that_is_not_an_event_store_is_named(tmp_path):
    bad = tmp_path / "x.sqlite"
    bad.write_text("hello")
    with pytest.raises(InputError, match="data.events_db"):
        stored_interactions(bad, [C.USER_ID, C.ITEM_ID, C.TIMESTAMP])
    with pytest.raises(InputError, match="not found"):
        stored_interactions(tmp_path / "missing.sqlite", [C.USER_ID])


def test_a_group_imported_from_csv_gains_events_items_and_users(tmp_path):
    """Imported ids are Categoricals: the store's new users, items and rows join them as ids."""
    from personalize_torch.data.dataset_group import DatasetGroup
    from personalize_torch.data.prepared import PreparedData

    fill_store(tmp_path / "events.sqlite")
    demo = demo_dataset_group(n_users=60, n_items=40)
    for name, frame in (("i.csv", demo.interactions), ("items.csv", demo.items), ("u.csv", demo.users)):
        frame.to_csv(tmp_path / name, index=False)
    group = DatasetGroup.from_csv(tmp_path / "i.csv", tmp_path / "items.csv", tmp_path / "u.csv")
    merged = with_stored_events(group, tmp_path / "events.sqlite")
    assert len(merged.interactions) == len(group.interactions) + 3
    assert not merged.interactions[C.USER_ID].isna().any() and not merged.interactions[C.ITEM_ID].isna().any()
    assert merged.items.set_index(C.ITEM_ID).loc["brand-new-item", "GENRES"] == "Comedy"
    assert merged.users.set_index(C.USER_ID).loc["newcomer", "MEMBERSHIP"] == "gold"
    data = PreparedData(merged)
    assert {"newcomer", "s2"} <= set(data.user_vocab.ids) and "brand-new-item" in set(data.item_vocab.ids)
