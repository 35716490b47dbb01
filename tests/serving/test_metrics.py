"""`GET /metrics`: Prometheus counters and histograms that match the requests sent (by operation, campaign and
error type), the records ingested, micro-batches, the solution version each campaign serves and user-state
cache hits; with two worker processes one scrape sums both."""

import glob
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.http.worker_processes import wait_until_serving
from personalize_torch.serving.inference.predictor import Predictor
from tests.conftest import REPO, free_port, kill_worker_and_await_replacement, serving, worker_pids

ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/{}"
DATASET = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/{}"
KEY = "metrics-key"
BEARER = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def predictor(trained_solution):
    return Predictor.from_dir(trained_solution["solution"])


Samples = dict[tuple[str, frozenset], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(client, url: str = "") -> Samples:
    response = client.get(f"{url}/metrics", headers=BEARER)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_of(samples: Samples, operation: str, campaign: str) -> float:
    return value(samples, "personalize_torch_requests_total", operation=operation, campaign=campaign)


def test_counters_and_histograms_match_the_requests_sent_while_scraping(predictor, trained_solution):
    app = create_app({"shop": predictor, "news": predictor}, api_key=KEY)
    users = list(predictor.solution.user_vocab.ids[:4])
    ok = {"campaignArn": ARN.format("shop"), "numResults": 5}
    scraped: list[float] = []
    with serving(app) as url:
        def client_thread(user: str) -> None:
            with httpx.Client(timeout=30, headers={"x-api-key": KEY}) as c:
                for _ in range(3):
                    assert c.post(f"{url}/recommendations", json={**ok, "userId": user}).status_code == 200

        def scraper(stop: threading.Event) -> None:
            with httpx.Client(timeout=30) as c:
                deadline = None
                while True:
                    scraped.append(requests_of(scrape(c, url), "GetRecommendations", "shop"))
                    # A request is counted just after its answer is sent (its latency includes the sending): the
                    # last ones may reach the count a moment after their clients have returned.
                    if stop.is_set():
                        deadline = deadline or time.monotonic() + 5
                        if scraped[-1] >= 12 or time.monotonic() > deadline:
                            return

        stop = threading.Event()
        watching = threading.Thread(target=scraper, args=(stop,))
        watching.start()
        senders = [threading.Thread(target=client_thread, args=(u,)) for u in users]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        stop.set()
        watching.join()

        with httpx.Client(timeout=30, headers={"x-api-key": KEY}) as c:
            post = lambda path, body, **kw: c.post(f"{url}{path}", json=body, **kw).status_code
            assert post("/recommendations", {"campaignArn": ARN.format("nope"), "userId": users[0]}) == 404
            assert post("/recommendations", {"campaignArn": ARN.format("nope"), "userId": users[1]}) == 404
            assert post("/recommendations", {"campaignArn": ARN.format("shop")}) == 400          # no userId / itemId
            assert post("/recommendations", {**ok, "userId": users[0], "numResults": 501}) == 400  # before a campaign
            assert post("/recommendations", {**ok, "userId": users[0]}, headers={"x-api-key": "wrong"}) == 403
            ranking = {"campaignArn": ARN.format("news"), "userId": users[0], "inputList": list(
                predictor.solution.item_vocab.ids[1:4])}
            assert post("/personalize-ranking", ranking) == 200 and post("/personalize-ranking", ranking) == 200
            events = [{"eventType": "click", "itemId": "i1", "sentAt": 1700000000 + i} for i in range(3)]
            assert post("/events", {"trackingId": "t", "sessionId": "s", "userId": "u", "eventList": events}) == 200
            assert post("/items", {"datasetArn": DATASET.format("ITEMS"), "items": [
                {"itemId": "new-1"}, {"itemId": "new-2"}]}) == 200
            assert post("/users", {"datasetArn": DATASET.format("USERS"), "users": [{"userId": "u"}]}) == 200
            final = scrape(c, url)
            for _ in range(50):   # the last answer (PutUsers) is counted just after it was sent
                if requests_of(final, "PutUsers", "") >= 1:
                    break
                time.sleep(0.1)
                final = scrape(c, url)

    # Scrapes while the requests ran saw the count grow, never fall, up to what was sent.
    assert scraped == sorted(scraped) and scraped[-1] == 12
    assert requests_of(final, "GetRecommendations", "shop") == 12 + 1
    assert requests_of(final, "GetRecommendations", "") == 2 + 1 + 1   # no campaign answered these
    assert requests_of(final, "GetPersonalizedRanking", "news") == 2
    for operation in ("PutEvents", "PutItems", "PutUsers"):
        assert requests_of(final, operation, "") == 1
    errors = {(dict(labels)["operation"], dict(labels)["campaign"], dict(labels)["error_type"]): v
              for (name, labels), v in final.items() if name == "personalize_torch_request_errors_total"}
    assert errors == {("GetRecommendations", "", "ResourceNotFoundException"): 2,
                      ("GetRecommendations", "shop", "InvalidInputException"): 1,
                      ("GetRecommendations", "", "InvalidInputException"): 1,
                      ("GetRecommendations", "", "UnrecognizedClientException"): 1}
    for (name, labels), count in final.items():   # one latency observation per request, in each label set
        if name == "personalize_torch_requests_total" and dict(labels)["operation"] != "Metrics":
            assert value(final, "personalize_torch_request_duration_seconds_count", **dict(labels)) == count
            assert value(final, "personalize_torch_request_duration_seconds_bucket", le="+Inf", **dict(labels)) == count
    assert value(final, "personalize_torch_request_duration_seconds_sum", operation="GetRecommendations",
                 campaign="shop") > 0
    assert [value(final, "personalize_torch_ingested_records_total", kind=k) for k in ("events", "items", "users")] \
        == [3, 2, 1]
    # Every successful GetRecommendations is one row of one model call, and waited once in the queue.
    assert value(final, "personalize_torch_micro_batch_size_sum") == 12
    assert 1 <= value(final, "personalize_torch_micro_batch_size_count") <= 12
    assert value(final, "personalize_torch_micro_batch_queue_wait_seconds_count") == 12
    solution = str(Path(trained_solution["solution"]).resolve())
    for campaign in ("shop", "news"):
        assert value(final, "personalize_torch_campaign_model", campaign=campaign, solution_version=solution,
                     recipe="popularity_count") == 1


def test_a_deploy_moves_the_campaigns_model_gauge(predictor, trained_solution, tmp_path):
    shutil.copytree(Path(trained_solution["solution"]), tmp_path / "v2")
    client = TestClient(create_app({"shop": predictor}, deploy_root=tmp_path))
    before = str(Path(trained_solution["solution"]).resolve())
    after = str((tmp_path / "v2").resolve())
    labels = {"campaign": "shop", "recipe": "popularity_count"}
    first = parse(client.get("/metrics").text)
    assert value(first, "personalize_torch_campaign_model", solution_version=before, **labels) == 1
    assert client.put("/campaigns/shop", json={"solution": "v2"}).status_code == 200
    second = parse(client.get("/metrics").text)
    assert value(second, "personalize_torch_campaign_model", solution_version=before, **labels) == 0
    assert value(second, "personalize_torch_campaign_model", solution_version=after, **labels) == 1
    assert requests_of(second, "DeployCampaign", "") == 1
    assert requests_of(second, "Metrics", "") == 1   # the first scrape (a scrape counts once it is answered)


def test_user_state_cache_hits_and_misses(tmp_path):
    from tests.conftest import tiny_user_personalization

    up = tiny_user_personalization(tmp_path, bptt=6, limit_train_batches=2)
    cached = Predictor(up.solution, cache_user_states=True)
    cached.user_states.warm()
    client = TestClient(create_app({"up": cached}))
    known = list(up.solution.user_vocab.ids[:3])
    for user in known + ["a-user-the-model-has-not-seen"]:
        assert client.post("/recommendations", json={"campaignArn": ARN.format("up"), "userId": user}).status_code == 200
    samples = parse(client.get("/metrics").text)
    assert value(samples, "personalize_torch_user_state_cache_hits_total", campaign="up") == 3
    assert value(samples, "personalize_torch_user_state_cache_misses_total", campaign="up") == 1
    # a known user with streamed events is computed again
    event = {"eventType": "click", "itemId": up.solution.item_vocab.ids[1], "sentAt": 1700000000}
    assert client.post("/events", json={"trackingId": "t", "sessionId": "s", "userId": known[0],
                                        "eventList": [event]}).status_code == 200
    assert client.post("/recommendations", json={"campaignArn": ARN.format("up"), "userId": known[0]}).status_code == 200
    samples = parse(client.get("/metrics").text)
    assert value(samples, "personalize_torch_user_state_cache_misses_total", campaign="up") == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers need fork()")
def test_one_scrape_sums_two_worker_processes(trained_solution, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    metrics_parent = tmp_path / "tmp"   # where the server makes its metrics directory (TMPDIR)
    metrics_parent.mkdir()
    server = subprocess.Popen([sys.executable, str(REPO / "serve.py"), f"solution={trained_solution['solution']}",
                               f"port={port}", f"events_db={tmp_path / 'events.sqlite'}", "workers=2",
                               f"api_key={KEY}", "access_log=false", "log_level=warning",
                               f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO,
                              env={**os.environ, "TMPDIR": str(metrics_parent)})
    try:
        assert wait_until_serving(url, timeout=60)
        (metrics_dir,) = glob.glob(str(metrics_parent / "personalize-torch-metrics-*"))
        # Each new connection: a ping (which worker answers) and a GetRecommendations on the same connection.
        answered = {0: 0, 1: 0}
        for _ in range(40):
            with httpx.Client(timeout=10, headers={"x-api-key": KEY}) as c:
                worker = c.get(f"{url}/ping").json()["worker"]
                assert c.post(f"{url}/recommendations", json={"campaignArn": ARN.format("default"),
                                                              "userId": "u1"}).status_code == 200
                answered[worker] += 1
            if min(answered.values()) >= 2 and sum(answered.values()) >= 8:
                break
        assert min(answered.values()) >= 1
        sent = sum(answered.values())
        with httpx.Client(timeout=10) as c:
            assert c.get(f"{url}/metrics").status_code == 403      # the API key applies
            samples = scrape(c, url)
        assert requests_of(samples, "GetRecommendations", "default") == sent
        assert requests_of(samples, "Ping", "") == sent + 1   # and wait_until_serving's
        assert value(samples, "personalize_torch_micro_batch_size_sum") == sent
        model = [v for (name, _), v in samples.items() if name == "personalize_torch_campaign_model"]
        assert model == [1]   # the largest over the live workers, one series

        # A killed worker's counts stay in the totals; its gauges leave the scrape; a new worker takes its place.
        first = worker_pids(server.pid)[0]
        assert glob.glob(f"{metrics_dir}/gauge_livemax_{first}.db")
        pids = kill_worker_and_await_replacement(server.pid, first)
        assert len(pids) == 2 and first not in pids
        assert not glob.glob(f"{metrics_dir}/gauge_livemax_{first}.db")
        with httpx.Client(timeout=10) as c:
            samples = scrape(c, url)
        assert requests_of(samples, "GetRecommendations", "default") == sent
        assert [v for (name, _), v in samples.items() if name == "personalize_torch_campaign_model"] == [1]
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    assert not os.path.exists(metrics_dir)   # removed when the server stopped
