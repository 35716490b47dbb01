"""Throttling as Personalize does it: per-campaign and PutEvents request rates (token buckets), answered at once with
HTTP 400 ThrottlingException in AWS's shape, which boto3's retries handle."""

import boto3
import botocore.config
import botocore.exceptions
import pytest
from fastapi.testclient import TestClient

from personalize_torch.errors import InputError
from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.http.throttling import Throttles, ThrottleSettings, TokenBucket
from personalize_torch.serving.inference.predictor import Predictor
from tests.conftest import serving

ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/{}"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def predictor(trained_solution):
    return Predictor.from_dir(trained_solution["solution"])


def test_token_bucket_admits_its_rate_and_burst():
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert [bucket.admit() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.15                                     # one token back (and a half)
    assert [bucket.admit(), bucket.admit()] == [True, False]
    clock.now += 60                                       # never more than the burst
    assert sum(bucket.admit() for _ in range(20)) == 5


def test_each_campaign_has_its_own_bucket_and_workers_share_the_rate():
    clock = Clock()
    throttles = Throttles(ThrottleSettings(campaign_requests_per_second=2, put_events_per_second=None), clock)
    assert [throttles.admit_campaign("a") for _ in range(3)] == [True, True, False]
    assert throttles.admit_campaign("b") and all(throttles.admit_put_events() for _ in range(100))
    assert ThrottleSettings(8, 4).share(2) == ThrottleSettings(4, 2)
    with pytest.raises(InputError, match="put_events_per_second"):
        ThrottleSettings(put_events_per_second=0)


def test_over_the_rate_is_throttling_exception_in_aws_shape(predictor):
    throttling = ThrottleSettings(campaign_requests_per_second=0.01, put_events_per_second=0.01)   # burst 1, no refill
    client = TestClient(create_app({"shop": predictor, "news": predictor}, throttling=throttling))
    user = predictor.solution.user_vocab.ids[0]
    recommendations = {"campaignArn": ARN.format("shop"), "userId": user}
    assert client.post("/recommendations", json=recommendations).status_code == 200      # the burst: one call
    ranking = {**recommendations, "inputList": list(predictor.solution.item_vocab.ids[:3])}
    for path, body in [("/recommendations", recommendations), ("/personalize-ranking", ranking)]:
        refused = client.post(path, json=body)
        assert refused.status_code == 400 and refused.headers["x-amzn-ErrorType"] == "ThrottlingException"
        assert refused.json()["__type"] == "ThrottlingException" and "shop" in refused.json()["message"]
    assert client.post("/recommendations", json={"campaignArn": ARN.format("news"), "userId": user}).status_code == 200
    events = {"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "click", "sentAt": 1.7e9}]}
    assert client.post("/events", json=events).status_code == 200
    throttled = client.post("/events", json=events)
    assert throttled.status_code == 400 and throttled.json()["__type"] == "ThrottlingException"
    assert client.get("/ping").status_code == 200 and client.get("/metrics").status_code == 200   # not throttled


def test_boto3_retries_a_throttled_call_until_it_is_admitted(predictor):
    throttling = ThrottleSettings(campaign_requests_per_second=4, put_events_per_second=4, burst_seconds=0.25)
    user = predictor.solution.user_vocab.ids[0]
    with serving(create_app({"shop": predictor}, throttling=throttling)) as url:
        def client(service: str, attempts: int):
            return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="k",
                                aws_secret_access_key="s",
                                config=botocore.config.Config(retries={"mode": "standard", "max_attempts": attempts}))
        runtime, patient = client("personalize-runtime", 1), client("personalize-runtime", 10)
        with pytest.raises(botocore.exceptions.ClientError) as err:   # a burst of one, then 4 a second
            for _ in range(20):
                runtime.get_recommendations(campaignArn=ARN.format("shop"), userId=user)
        assert err.value.response["Error"]["Code"] == "ThrottlingException"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        answer = patient.get_recommendations(campaignArn=ARN.format("shop"), userId=user)
        assert answer["ResponseMetadata"]["RetryAttempts"] >= 1 and answer["itemList"]
        events = client("personalize-events", 10)
        attempts = []
        while len(attempts) < 20 and sum(attempts) == 0:   # until a call was throttled, and retried
            attempts.append(events.put_events(trackingId="t", sessionId="s", eventList=[
                {"eventType": "click", "sentAt": 1.7e9}])["ResponseMetadata"]["RetryAttempts"])
        assert attempts[0] == 0 and attempts[-1] >= 1
