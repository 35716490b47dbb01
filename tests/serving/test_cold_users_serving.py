"""A user the solution does not know, sent with PutUsers to the running server: GetRecommendations and
GetPersonalizedRanking rank for them by their properties (the recipe reads Users metadata), on each event
store backend."""

from pathlib import Path

from fastapi.testclient import TestClient

from bench.cold_users import planted_cold_users, train_and_save
from personalize_torch.data.prepared import PreparedData
from personalize_torch.recipes.user_personalization import UserPersonalization
from personalize_torch.serving.events.event_store import EventStore
from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.inference.predictor import Predictor, RequestOptions
from personalize_torch.solution_version import load_solution_version

ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/c"
USERS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/USERS"


def test_put_users_properties_reach_the_recommendations_of_an_unknown_user(tmp_path: Path, events_db):
    group, cold = planted_cold_users(n_users=300, n_segments=5, items_per_segment=10, seed=0)
    data = PreparedData(group, split="leave_one_out", seed=0)
    solution, _ = train_and_save(UserPersonalization, data, tmp_path / "up", 2, seed=0, hidden_dimension=16)
    predictor = Predictor(load_solution_version(solution))
    expected = {s: [r.item_id for r in predictor.recommend(["x"], 5, options=RequestOptions(
        user_metadata={"SEGMENT": s}))[0]] for s in ("s1", "s3")}
    assert expected["s1"] != expected["s3"]
    with EventStore(events_db) as store:
        client = TestClient(create_app({"c": predictor}, events=store))

        def listed(user: str) -> list[str]:
            response = client.post("/recommendations", json={"campaignArn": ARN, "userId": user, "numResults": 5})
            assert response.status_code == 200, response.text
            return [i["itemId"] for i in response.json()["itemList"]]

        before = listed("newbie")   # no metadata: the popular items
        assert client.post("/users", json={"datasetArn": USERS_ARN, "users": [
            {"userId": "newbie", "properties": '{"segment": "s3"}'}]}).status_code == 200
        assert listed("newbie") == expected["s3"] != before
        assert client.post("/users", json={"datasetArn": USERS_ARN, "users": [
            {"userId": "newbie", "properties": '{"segment": "s1"}'}]}).status_code == 200
        assert listed("newbie") == expected["s1"]
        ranked = client.post("/personalize-ranking", json={"campaignArn": ARN, "userId": "newbie",
                                                           "inputList": list(reversed(expected["s1"]))})
        assert [i["itemId"] for i in ranked.json()["personalizedRanking"]] == expected["s1"]
