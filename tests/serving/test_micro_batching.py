"""Concurrent GetRecommendations requests share model calls and still get exactly their own answers."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from personalize_torch.serving.inference.micro_batching import MicroBatcher


def wait_until(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_rows_waiting_together_are_one_call_and_each_gets_its_own_result():
    batcher = MicroBatcher(max_batch=16)
    first_started, release = threading.Event(), threading.Event()
    calls = []

    def run(rows):
        calls.append(list(rows))
        if rows == [0]:               # hold the first call so the others queue up behind it
            first_started.set()
            release.wait(10)
        return [r * 10 for r in rows]

    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher.submit, "k", 0, run)
        assert first_started.wait(10)
        rest = [pool.submit(batcher.submit, "k", r, run) for r in range(1, 6)]
        wait_until(lambda: batcher._queue.qsize() == 5)
        release.set()
        assert first.result() == 0 and [f.result() for f in rest] == [10, 20, 30, 40, 50]
    assert calls[0] == [0] and sorted(calls[1]) == [1, 2, 3, 4, 5] and len(calls) == 2
    assert list(batcher.batch_sizes) == [1, 5]
    batcher.close()


def test_rows_with_different_keys_are_not_mixed_and_a_bad_row_fails_alone():
    batcher = MicroBatcher(max_batch=16)
    gate = threading.Event()
    seen = []

    def run(rows):
        seen.append(sorted(rows))
        if rows == ["hold"]:
            gate.wait(10)
        if "bad" in rows:
            raise ValueError("bad row")
        return [r.upper() for r in rows]

    with ThreadPoolExecutor(8) as pool:
        held = pool.submit(batcher.submit, "a", "hold", run)
        wait_until(lambda: seen)
        futures = {r: pool.submit(batcher.submit, k, r, run) for k, r in
                   [("a", "x"), ("b", "y"), ("a", "bad"), ("a", "z")]}
        wait_until(lambda: batcher._queue.qsize() == 4)
        gate.set()
        assert held.result() == "HOLD"
        assert futures["x"].result() == "X" and futures["y"].result() == "Y" and futures["z"].result() == "Z"
        with pytest.raises(ValueError, match="bad row"):
            futures["bad"].result()
    assert ["y"] in seen                          # key "b" ran on its own
    assert ["bad", "x", "z"] in seen              # key "a" together first, then row by row
    batcher.close()


def test_max_batch_one_runs_every_row_alone():
    batcher = MicroBatcher(max_batch=1)
    calls = []

    def run(rows):
        calls.append(list(rows))
        time.sleep(0.01)
        return rows

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda r: batcher.submit("k", r, run), range(6))) == list(range(6))
    assert sorted(calls) == [[r] for r in range(6)]
    batcher.close()
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(max_batch=0)


def test_concurrent_http_requests_get_the_answers_they_get_alone(tmp_path):
    """A User-Personalization campaign with a parameterised filter: 24 concurrent requests for different
    users, numResults and filter values return what each returns when sent alone."""
    import httpx

    from personalize_torch.filters import Filter
    from personalize_torch.serving.http.app import create_app
    from tests.conftest import serving, tiny_user_personalization

    predictor = tiny_user_personalization(tmp_path, bptt=8, limit_train_batches=3)
    genres = sorted({g for v in predictor.solution.items["GENRES"].dropna() for g in str(v).split("|")})[:3]
    arn = "arn:aws:personalize:us-east-1:1:campaign/up"
    farn = "arn:aws:personalize:us-east-1:1:filter/genre"
    users = list(predictor.solution.user_vocab.ids[:12]) + ["never-seen-user"]
    bodies = []
    for i, user in enumerate(users):
        bodies.append({"campaignArn": arn, "userId": user, "numResults": 5})
        bodies.append({"campaignArn": arn, "userId": user, "numResults": 5, "filterArn": farn,
                       "filterValues": {"GENRE": f'"{genres[i % len(genres)]}"'}})
    app = create_app({"up": predictor}, {"genre": Filter.parse("INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")},
                     max_batch=32)
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        alone = [client.post("/recommendations", json=b).json()["itemList"] for b in bodies]
        app.state.batcher.batch_sizes.clear()
        barrier = threading.Barrier(len(bodies))

        def ask(body):
            with httpx.Client(base_url=url, timeout=30) as c:
                barrier.wait()
                return c.post("/recommendations", json=body).json()["itemList"]

        with ThreadPoolExecutor(len(bodies)) as pool:
            together = list(pool.map(ask, bodies))
    for a, t in zip(alone, together):
        assert [x["itemId"] for x in t] == [x["itemId"] for x in a]
        assert [x["score"] for x in t] == pytest.approx([x["score"] for x in a], rel=1e-4)
    assert max(app.state.batcher.batch_sizes) > 1           # some requests did share a model call
