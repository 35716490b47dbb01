"""Personalize Events: PutEvents / PutItems / PutUsers are stored durably and change the next
GetRecommendations at once; an unmodified boto3 `personalize-events` client works."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timezone

import boto3
import botocore.exceptions
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from tests.conftest import REPO, SMALL_DEMO, compose_train_config, serving
from tests.serving.event_databases import BACKENDS, new_events_db

from personalize_torch.data.batching import SequenceBatch, sequence_batch
from personalize_torch.metrics.functional import mask_scores, ranked_items
from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.events.event_store import Event, EventStore, field_name, property_fields
from personalize_torch.serving.inference.predictor import Predictor, RecentEvents, RequestOptions, append_events

CAMPAIGN = "arn:aws:personalize:us-east-1:123456789012:campaign/similar"
ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
USERS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/USERS"
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def sims(tmp_path_factory) -> Predictor:
    """SIMS trained on small demo data: after an event on item X, a user's recommendations are X's neighbours."""
    from personalize_torch.training import train

    cfg = compose_train_config(SMALL_DEMO + ["recipe=sims", "logger=none"], tmp_path_factory.mktemp("sims"))
    return Predictor.from_dir(train(cfg)["solution"])


def items_with_neighbours(predictor: Predictor, n: int = 2) -> list[str]:
    """The `n` items with the most neighbours."""
    counts = (predictor.recipe.neighbor_idx > 0).sum(1)
    return list(predictor.solution.item_vocab.to_id(torch.argsort(counts, descending=True, stable=True)[:n].numpy()))


def neighbours(predictor: Predictor, item: str, leave_out: set[str] = frozenset()) -> list[str]:
    """The item's stored neighbours, best first, without `leave_out`."""
    idx = predictor.solution.item_vocab.to_idx([item])[0]
    nb = predictor.recipe.neighbor_idx[idx].long().numpy()
    return [i for i in predictor.solution.item_vocab.to_id(nb[nb > 0]) if i not in leave_out]


def history_of(predictor: Predictor, user: str) -> set[str]:
    row = predictor.solution.history_rows([user])[0]
    return set(predictor.solution.item_vocab.to_id(predictor.solution.histories.items_of(row)))


def clients(url: str):
    kw = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    return boto3.client("personalize-runtime", **kw), boto3.client("personalize-events", **kw)


@pytest.fixture(scope="module", params=BACKENDS)
def served(sims, tmp_path_factory, request):
    """One server over SIMS with a durable event store (SQLite file, PostgreSQL); yields (runtime, events, store)."""
    with new_events_db(request.param, tmp_path_factory.mktemp("events")) as location, EventStore(location) as store, \
            serving(create_app({"similar": sims}, events=store)) as url:
        yield (*clients(url), store)


def recommended(runtime, user: str, n: int = 5) -> list[str]:
    response = runtime.get_recommendations(campaignArn=CAMPAIGN, userId=user, numResults=n)
    return [x["itemId"] for x in response["itemList"]]


def test_put_events_changes_a_known_users_recommendations(sims, served):
    runtime, events, _ = served
    user = sims.solution.user_vocab.ids[3]
    seen = history_of(sims, user)
    x = next(i for i in items_with_neighbours(sims, 10) if i not in seen)
    before = recommended(runtime, user)
    response = events.put_events(trackingId="tracker", userId=user, sessionId=f"session-{user}",
                                 eventList=[{"eventType": "click", "itemId": x, "sentAt": NOW}])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    after = recommended(runtime, user)
    # SIMS reads the newest event: the streamed one. Its neighbours come first, without the user's items.
    assert after != before and x not in after
    assert after == neighbours(sims, x, seen | {x})[:5]
    assert after == [r.item_id for r in sims.recommend([user], 5, options=RequestOptions(
        events=RecentEvents([x], [NOW.timestamp()])))[0]]


def test_new_user_gets_popular_items_then_personalised_ones(sims, served):
    runtime, events, _ = served
    user = "brand-new-user"
    assert recommended(runtime, user) == [r.item_id for r in sims.recommend([user], 5)[0]]  # popular items
    x, y = items_with_neighbours(sims, 2)
    events.put_events(trackingId="tracker", userId=user, sessionId="s-new",
                      eventList=[{"eventType": "click", "itemId": x, "sentAt": NOW}])
    assert recommended(runtime, user) == neighbours(sims, x, {x})[:5]
    # Newest last: a later event on y leads; x, already interacted with, is left out. An event with an
    # item the solution does not know is stored and ignored for scoring.
    events.put_events(trackingId="tracker", userId=user, sessionId="s-new",
                      eventList=[{"eventType": "click", "itemId": y, "sentAt": NOW.timestamp() + 60},
                                 {"eventType": "click", "itemId": "not-in-the-solution",
                                  "sentAt": NOW.timestamp() + 30}])
    assert recommended(runtime, user) == neighbours(sims, y, {x, y})[:5]
    # Related items asked for with this userId leave out the user's streamed items too.
    z = items_with_neighbours(sims, 3)[2]
    related = runtime.get_recommendations(campaignArn=CAMPAIGN, itemId=z, userId=user, numResults=20)["itemList"]
    assert related and not {x, y, z} & {r["itemId"] for r in related}


def test_anonymous_session_then_login(sims, served):
    runtime, events, store = served
    x, y = items_with_neighbours(sims, 2)
    events.put_events(trackingId="tracker", sessionId="anon-session-1",
                      eventList=[{"eventType": "click", "itemId": x, "sentAt": NOW}])
    # An anonymous visitor asks with its sessionId as the userId.
    assert recommended(runtime, "anon-session-1") == neighbours(sims, x, {x})[:5]
    # After logging in (same session), the anonymous event belongs to the user too.
    events.put_events(trackingId="tracker", userId="alice", sessionId="anon-session-1",
                      eventList=[{"eventType": "click", "itemId": y, "sentAt": NOW.timestamp() + 1}])
    assert [e.item_id for e in store.user_events("alice")] == store.user_event_columns("alice").item_ids == [x, y]
    assert recommended(runtime, "alice") == neighbours(sims, y, {x, y})[:5]


def test_invalid_input_like_personalize(served):
    runtime, events, store = served
    before = store.count_events()
    event = {"eventType": "click", "itemId": "i1", "sentAt": NOW}
    with pytest.raises(botocore.exceptions.ClientError) as err:
        events.put_events(trackingId="tracker", userId="u", sessionId="s", eventList=[event] * 11)
    assert isinstance(err.value, events.exceptions.InvalidInputException)
    assert "eventList" in err.value.response["Error"]["Message"]
    with pytest.raises(events.exceptions.InvalidInputException):
        events.put_events(trackingId="tracker", sessionId="s", eventList=[{**event, "properties": "not json"}])
    with pytest.raises(events.exceptions.InvalidInputException):
        events.put_items(datasetArn=ITEMS_ARN, items=[{"itemId": "i"}] * 11)
    assert store.count_events() == before  # nothing of a rejected call is stored


def test_raw_requests_are_validated():
    client = TestClient(create_app({}))
    ok = {"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "click", "sentAt": 1700000000}]}
    assert client.post("/events", json=ok).status_code == 200
    bad = [
        {**ok, "eventList": []},
        {"trackingId": "t", "eventList": ok["eventList"]},                                  # no sessionId
        {**ok, "eventList": [{"eventType": "click"}]},                                      # no sentAt
        {**ok, "eventList": [{"eventType": "click", "sentAt": 1700000000000}]},             # milliseconds
        {**ok, "eventList": [{"eventType": "click", "sentAt": 1, "properties": "[1, 2]"}]},  # not an object
        {**ok, "eventList": [{"eventType": "click", "sentAt": 1, "impression": ["a"] * 26}]},
        {**ok, "eventList": [{"eventType": "click", "sentAt": 1, "recommendationId": "r" * 41}]},
        {**ok, "userId": "u" * 257},
        {**ok, "eventList": [{"eventType": "", "sentAt": 1}]},
        {"datasetArn": "not-an-arn", "items": [{"itemId": "i"}]},
    ]
    for body in bad:
        r = client.post("/items" if "datasetArn" in body else "/events", json=body)
        assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "InvalidInputException", body
    iso = {**ok, "eventList": [{"eventType": "click", "sentAt": "2024-01-02T03:04:05Z"}]}
    assert client.post("/events", json=iso).status_code == 200
    assert client.app.state.events.user_events("s")[-1].sent_at == 1704164645.0


def test_put_items_and_users_are_stored_and_replaced(served):
    _, events, store = served
    events.put_items(datasetArn=ITEMS_ARN, items=[{"itemId": "new-1", "properties": '{"genres": "Comedy"}'},
                                                  {"itemId": "new-2"}])
    events.put_items(datasetArn=ITEMS_ARN, items=[{"itemId": "new-1", "properties": '{"genres": "Drama"}'}])
    events.put_users(datasetArn=USERS_ARN, users=[{"userId": "alice", "properties": '{"membership": "gold"}'}])
    assert [(r.id, r.properties) for r in store.items(ITEMS_ARN)] == [("new-1", '{"genres": "Drama"}'),
                                                                      ("new-2", None)]
    assert [(r.dataset_arn, r.id, r.properties) for r in store.users()] == [(USERS_ARN, "alice",
                                                                            '{"membership": "gold"}')]


def test_every_field_survives_a_restart_of_the_store_and_the_app(sims, events_db):
    x = items_with_neighbours(sims, 1)[0]
    store = EventStore(events_db)
    client = TestClient(create_app({"similar": sims}, events=store))
    event = {"eventId": "e1", "eventType": "click", "eventValue": 2.5, "itemId": x, "sentAt": 1700000000.25,
             "properties": '{"device": "mobile"}', "recommendationId": "RID-1", "impression": [x, "other"],
             "metricAttribution": {"eventAttributionSource": "email"}}
    assert client.post("/events", json={"trackingId": "t", "userId": "bob", "sessionId": "s-bob",
                                        "eventList": [event]}).status_code == 200
    store.close()  # the server stops

    with EventStore(events_db) as reopened:
        (got,) = reopened.user_events("bob")
        assert (got.event_id, got.event_type, got.event_value, got.item_id, got.sent_at, got.properties,
                got.recommendation_id, got.impression, got.metric_attribution, got.tracking_id, got.user_id,
                got.session_id) == ("e1", "click", 2.5, x, 1700000000.25, '{"device": "mobile"}', "RID-1",
                                    (x, "other"), "email", "t", "bob", "s-bob")
        client = TestClient(create_app({"similar": sims}, events=reopened))
        r = client.post("/recommendations", json={"campaignArn": CAMPAIGN, "userId": "bob", "numResults": 3})
        assert [i["itemId"] for i in r.json()["itemList"]] == neighbours(sims, x, {x})[:3]


WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from personalize_torch.serving.events.event_store import Event, EventStore
store = EventStore(sys.argv[1])
for n in range(100000):
    (seq,) = store.put_events("t", "s", "u", [Event("click", float(n), f"i{n}")])
    print(seq, flush=True)  # acknowledged
"""


def test_acknowledged_events_survive_kill_9(events_db):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, events_db, str(REPO)], stdout=subprocess.PIPE, text=True)
    acknowledged = [int(proc.stdout.readline()) for _ in range(50)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    with EventStore(events_db) as store:
        stored = {e.seq for e in store.events()}
    assert set(acknowledged) <= stored


def test_concurrent_writers_and_readers(events_db):
    with EventStore(events_db) as store:
        errors = []

        def work(k: int) -> None:
            try:
                for n in range(15):
                    store.put_events("t", f"s{k}", f"u{k}", [Event("click", float(n), f"i{n}")] * 2)
                    assert len(store.user_events(f"u{k}")) == 2 * (n + 1)
            except Exception as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert not errors and store.count_events() == 4 * 15 * 2


def test_sql_like_ids_are_stored_verbatim(events_db):
    nasty = "x'); DROP TABLE events; -- %s %(u)s ?"
    with EventStore(events_db) as store:
        store.put_events("t' OR '1'='1", "s\"; DELETE FROM events; --", nasty,
                         [Event("click'--", 1.0, "i' OR 1=1 --", properties='{"k": "\'; --"}')])
        store.put_items(ITEMS_ARN + "'--", [("' OR ''='", None)])
        store.put_users(USERS_ARN, [(nasty, '{"a": "b"}')])
        (got,) = store.user_events(nasty)
        assert (got.tracking_id, got.session_id, got.user_id, got.event_type, got.item_id, got.properties) == \
            ("t' OR '1'='1", "s\"; DELETE FROM events; --", nasty, "click'--", "i' OR 1=1 --", '{"k": "\'; --"}')
        assert store.user_events("' OR 1=1 --") == [] and store.count_events() == 1
        assert [r.id for r in store.items()] == ["' OR ''='"] and [r.id for r in store.users()] == [nasty]


def test_property_names_follow_personalize():
    assert field_name("numberOfRatings") == "NUMBER_OF_RATINGS" and field_name("device") == "DEVICE"
    assert field_name("DEVICE") == "DEVICE"
    assert property_fields('{"device": "mobile", "numberOfRatings": 12}') == {"DEVICE": "mobile",
                                                                              "NUMBER_OF_RATINGS": "12"}
    assert property_fields(None) == {} and property_fields("[1]") == {}


def test_append_events_merges_newest_last_and_cuts_to_the_input_length():
    history = SequenceBatch(torch.tensor([1, 2, 0]), torch.tensor([[0, 5, 6], [7, 8, 9], [0, 0, 0]]),
                            torch.tensor([[0, 1, 2], [1, 2, 3], [0, 0, 0]]), None,
                            torch.tensor([[[0], [1], [2]], [[1], [1], [1]], [[0], [0], [0]]]))
    extra = torch.tensor([[3, 0], [0, 4], [11, 12]])  # 0 = no event (padding or an unknown item)
    merged = append_events(history, extra, torch.tensor([[10, 0], [0, 20], [30, 31]]),
                           torch.tensor([[[3], [0]], [[0], [2]], [[1], [2]]]), max_len=3)
    assert merged.items.tolist() == [[5, 6, 3], [8, 9, 4], [0, 11, 12]]
    assert merged.timestamps.tolist() == [[1, 2, 10], [2, 3, 20], [0, 30, 31]]
    assert merged.context[..., 0].tolist() == [[1, 2, 3], [1, 1, 2], [0, 1, 2]]
    assert merged.user_idx.tolist() == [1, 2, 0]
    longer = append_events(history, extra, torch.zeros(3, 2, dtype=torch.long))
    assert longer.items.tolist() == [[0, 5, 6, 3], [7, 8, 9, 4], [0, 0, 11, 12]]
    assert longer.context[..., 0].tolist() == [[0, 1, 2, 0], [1, 1, 1, 0], [0, 0, 0, 0]]  # events without context
    no_context = dataclasses.replace(history, context=None)
    assert append_events(no_context, extra, torch.zeros(3, 2, dtype=torch.long)).context is None


def test_event_selection_of_the_solution_applies_to_streamed_events(sims):
    """A solution trained on eventType=purchase reads only streamed purchases (clicks are stored, not used)."""
    info = {**sims.solution.info, "data": {**sims.solution.info["data"], "event_type": "purchase"}}
    purchases_only = Predictor(dataclasses.replace(sims.solution, info=info))
    x, y = items_with_neighbours(sims, 2)
    events = RecentEvents([x, y], [1.0, 2.0], event_types=["purchase", "click"])
    (got,) = purchases_only.recommend(["nobody"], 5, options=RequestOptions(events=events))
    assert [r.item_id for r in got] == neighbours(sims, x, {x})[:5]


def test_streamed_events_feed_a_sequence_model_and_its_context(tmp_path):
    """User-Personalization: streamed events extend the history the transformer reads (exactly as if they
    were stored), are excluded, and their `properties` give the events' context (DEVICE)."""
    from tests.conftest import tiny_user_personalization

    up = tiny_user_personalization(tmp_path, bptt=6, limit_train_batches=2)
    sol = up.solution
    user = sol.user_vocab.ids[0]
    row = sol.history_rows([user])
    seen = set(sol.item_vocab.to_id(sol.histories.items_of(row[0])))
    new = [i for i in sol.item_vocab.ids if i not in seen][:2]
    device = sol.context_vocabs["DEVICE"]
    events = RecentEvents(new, [2e9, 2e9 + 1], contexts=[{"DEVICE": "desktop"}, {"DEVICE": "mobile"}])
    got = up.recommend([user], 10, options=RequestOptions(events=events))[0]

    # The same thing by hand: the last bptt - 2 stored events, then the two new ones.
    hist = sequence_batch(sol.histories, row, 4)
    items = torch.cat([hist.items, torch.from_numpy(sol.item_vocab.to_idx(new)).view(1, 2)], 1)
    context = torch.cat([hist.context, torch.tensor(device.to_idx(["desktop", "mobile"])).view(1, 2, 1)], 1)
    with torch.no_grad():
        scores = up.recipe.score(SequenceBatch(hist.user_idx, items, torch.zeros_like(items), None, context))
    exclude = torch.from_numpy(np.concatenate([sol.histories.items_of(row[0]), sol.item_vocab.to_idx(new)])).view(1, -1)
    expected = ranked_items(mask_scores(scores, exclude), 10)[0].numpy()
    assert [r.item_id for r in got] == list(sol.item_vocab.to_id(expected))
    assert not set(new) & {r.item_id for r in got}
    assert [r.item_id for r in got] != [r.item_id for r in up.recommend([user], 10)[0]]
    # The newest event's context (from its properties) is the context of the next event.
    as_tablet = RecentEvents(new, [2e9, 2e9 + 1], contexts=[{"DEVICE": "desktop"}, {"DEVICE": "tablet"}])
    tablet = up.recommend([user], 10, options=RequestOptions(events=as_tablet))[0]
    assert [r.score for r in tablet] != [r.score for r in got]
