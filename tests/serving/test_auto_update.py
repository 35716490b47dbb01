"""Campaign auto-update: items sent with PutItems become recommendable without retraining."""

import time

import pytest
from fastapi.testclient import TestClient

from personalize_torch.serving.campaigns import CampaignSettings
from personalize_torch.serving.events.auto_update import pending_items, update_campaign
from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.inference.predictor import Predictor

ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/shop"
ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
NEW = '{"genres": "Comedy|Drama", "price": 12.5, "creationTimestamp": 1700000000, "description": "A new film."}'


@pytest.fixture()
def predictor(trained_solution):
    return Predictor.from_dir(trained_solution["solution"])


def test_pending_items_are_new_or_changed_ones_in_the_solutions_columns(predictor, event_store):
    store = event_store
    known = predictor.solution.item_vocab.ids[0]
    assert len(pending_items(predictor, store)) == 0
    store.put_items(ITEMS_ARN, [("n1", NEW), (known, '{"price": 1.0}')])
    items = pending_items(predictor, store).set_index("ITEM_ID")
    assert list(items.columns) == [c for c in predictor.solution.items.columns if c != "ITEM_ID"]
    assert items.loc["n1", "GENRES"] == "Comedy|Drama" and float(items.loc["n1", "PRICE"]) == 12.5
    # a changed known item keeps the fields PutItems did not send
    assert float(items.loc[known, "PRICE"]) == 1.0
    assert items.loc[known, "GENRES"] == predictor.solution.items.set_index("ITEM_ID").loc[known, "GENRES"]


def test_update_campaign_adds_the_new_items(predictor, tmp_path, event_store):
    store = event_store
    assert update_campaign(predictor, store, tmp_path) is None          # nothing pending: nothing written
    store.put_items(ITEMS_ARN, [("n1", NEW), ("n2", NEW)])
    updated = update_campaign(predictor, store, tmp_path)
    assert {"n1", "n2"} <= set(updated.solution.item_vocab.ids)
    assert updated.solution.info["training_mode"] == "UPDATE"
    assert len(pending_items(updated, store)) == 0                      # done: not pending any more


def test_server_swaps_in_the_update_on_schedule(predictor, tmp_path):
    campaigns = {"shop": predictor}
    app = create_app(campaigns, settings={"shop": CampaignSettings(auto_update_minutes=0.01)},
                     update_root=tmp_path)
    user = predictor.solution.user_vocab.ids[0]
    with TestClient(app) as client:
        assert client.post("/items", json={"datasetArn": ITEMS_ARN,
                                           "items": [{"itemId": "n1", "properties": NEW}]}).status_code == 200
        deadline = time.time() + 60
        while ("n1" not in set(app.state.campaigns.get("shop").predictor.solution.item_vocab.ids)
               and time.time() < deadline):
            time.sleep(0.2)
        listed = client.post("/recommendations", json={"campaignArn": ARN, "userId": user, "numResults": 500})
        assert listed.status_code == 200
        assert "n1" in {x["itemId"] for x in listed.json()["itemList"]}
