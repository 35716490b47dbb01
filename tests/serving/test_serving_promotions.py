"""Promotions, popular back-fill and metadataColumns through the HTTP app (and boto3), and back-fill in
batch jobs, on a Popularity-Count solution trained on small demo data."""

import json
from collections import Counter

import boto3
import botocore.exceptions
import pytest
from fastapi.testclient import TestClient
from tests.conftest import serving

from personalize_torch.batch import main as batch_main
from personalize_torch.filters import Filter
from personalize_torch.serving.campaigns import CampaignSettings
from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.inference.filter_catalogue import history_table
from personalize_torch.serving.inference.predictor import Predictor, RequestOptions

ARN = "arn:aws:personalize:us-east-1:123456789012:{}/{}"
FILTERS = {"genre": Filter.parse("INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)"),
           "not-genre": Filter.parse("EXCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")}


@pytest.fixture(scope="module")
def predictor(trained_solution):
    return Predictor.from_dir(trained_solution["solution"])


@pytest.fixture(scope="module")
def client(predictor):
    return TestClient(create_app({"shop": predictor, "filled": predictor}, FILTERS,
                                 {"shop": CampaignSettings(), "filled": CampaignSettings(backfill_popular=True)}))


def genres(predictor, item_id) -> set[str]:
    items = predictor.solution.items.set_index("ITEM_ID")
    return set(str(items.loc[item_id, "GENRES"]).split("|"))


def rarest_genre(predictor) -> str:
    counts = Counter(g for value in predictor.solution.items["GENRES"] for g in str(value).split("|"))
    return min(counts, key=lambda g: (counts[g], g))


def body(predictor, **extra) -> dict:
    return {"campaignArn": ARN.format("campaign", "shop"), "userId": predictor.solution.user_vocab.ids[3],
            "numResults": 10, **extra}


def test_promotion_places_the_top_promoted_items_among_the_filtered_rest(predictor, client):
    genre = sorted(genres(predictor, predictor.solution.items["ITEM_ID"][0]))[0]
    user = predictor.solution.user_vocab.ids[3]
    promotion = {"name": "in-house", "percentPromotedItems": 30, "filterArn": ARN.format("filter", "genre"),
                 "filterValues": {"GENRE": json.dumps(genre)}}
    r = client.post("/recommendations", json=body(predictor, promotions=[promotion],
                                                  filterArn=ARN.format("filter", "not-genre"),
                                                  filterValues={"GENRE": json.dumps(genre)}))
    assert r.status_code == 200, r.text
    items = r.json()["itemList"]
    promoted = [x for x in items if x.get("promotionName") == "in-house"]
    rest = [x for x in items if "promotionName" not in x]
    assert len(items) == 10 and len(promoted) == 3 and len({x["itemId"] for x in items}) == 10
    assert all(x["reason"] == ["Promoted item"] for x in promoted)
    # promoted: the best-scored items of the promotion's filter, in score order (the request filter,
    # which excludes that genre, does not apply to them)
    best_of_genre = predictor.recommend([user], 3, options=RequestOptions(
        filter=FILTERS["genre"], filter_values={"GENRE": json.dumps(genre)}))[0]
    assert [x["itemId"] for x in promoted] == [x.item_id for x in best_of_genre]
    assert [x["score"] for x in promoted] == [round(x.score, 8) for x in best_of_genre]
    # the rest: the request filter's best, in order
    best_other = predictor.recommend([user], 7, options=RequestOptions(
        filter=FILTERS["not-genre"], filter_values={"GENRE": json.dumps(genre)}))[0]
    assert [x["itemId"] for x in rest] == [x.item_id for x in best_other]
    assert all(genre not in genres(predictor, x["itemId"]) for x in rest)


def test_promotion_errors_name_the_field(predictor, client):
    promotion = {"name": "p", "percentPromotedItems": 20, "filterArn": ARN.format("filter", "genre"),
                 "filterValues": {"GENRE": '"Comedy"'}}
    two = client.post("/recommendations", json=body(predictor, promotions=[promotion, {**promotion, "name": "q"}]))
    assert two.status_code == 400 and two.headers["x-amzn-ErrorType"] == "InvalidInputException"
    assert "promotions" in two.json()["message"]
    unknown = client.post("/recommendations", json=body(predictor, promotions=[
        {**promotion, "filterArn": ARN.format("filter", "nope")}]))
    assert unknown.status_code == 404 and "promotions[0].filterArn" in unknown.json()["message"]
    no_filter = client.post("/recommendations", json=body(predictor, promotions=[
        {"name": "p", "percentPromotedItems": 20}]))
    assert no_filter.status_code == 400 and "filterArn" in no_filter.json()["message"]
    percent = client.post("/recommendations", json=body(predictor, promotions=[{**promotion, "percentPromotedItems": 0}]))
    assert percent.status_code == 400 and "percentPromotedItems" in percent.json()["message"]
    missing_value = client.post("/recommendations", json=body(predictor, promotions=[{**promotion, "filterValues": {}}]))
    assert missing_value.status_code == 400 and "GENRE" in missing_value.json()["message"]


def test_backfill_popular_fills_short_filtered_lists(predictor, client):
    genre = rarest_genre(predictor)
    user = predictor.solution.user_vocab.ids[3]
    of_genre = {i for i in predictor.solution.items["ITEM_ID"] if genre in genres(predictor, i)}
    request = body(predictor, numResults=len(of_genre), filterArn=ARN.format("filter", "genre"),
                   filterValues={"GENRE": json.dumps(genre)})
    short = client.post("/recommendations", json=request).json()["itemList"]
    filled = client.post("/recommendations", json={**request, "campaignArn": ARN.format("campaign", "filled")}
                         ).json()["itemList"]
    table = history_table(predictor.solution)
    seen = set(table.loc[table["USER_ID"] == user, "ITEM_ID"])
    assert seen & of_genre, "the test needs a user who has seen an item of the genre"
    # without back-fill: the unseen items of the genre; with it, the seen ones follow, most popular first
    assert {x["itemId"] for x in short} == of_genre - seen and all("reason" not in x for x in short)
    assert filled[:len(short)] == short and len(filled) == len(of_genre)
    added = filled[len(short):]
    assert all(x["reason"] == ["Popular item"] and "score" not in x for x in added)
    assert {x["itemId"] for x in added} == of_genre & seen
    users_per_item = table.drop_duplicates(["USER_ID", "ITEM_ID"]).groupby("ITEM_ID").size()
    counts = [int(users_per_item.get(x["itemId"], 0)) for x in added]
    assert counts == sorted(counts, reverse=True)


def test_metadata_columns(predictor, client):
    r = client.post("/recommendations", json=body(predictor, metadataColumns={"ITEMS": ["GENRES", "PRICE"]}))
    assert r.status_code == 200, r.text
    items = predictor.solution.items.set_index("ITEM_ID")
    for x in r.json()["itemList"]:
        assert set(x["metadata"]) == {"GENRES", "PRICE"}
        assert x["metadata"]["GENRES"] == items.loc[x["itemId"], "GENRES"]
        assert float(x["metadata"]["PRICE"]) == items.loc[x["itemId"], "PRICE"]  # 16.0 is written "16"
    bad = client.post("/recommendations", json=body(predictor, metadataColumns={"ITEMS": ["COLOUR"]}))
    assert bad.status_code == 400 and bad.headers["x-amzn-ErrorType"] == "InvalidInputException"
    assert "COLOUR" in bad.json()["message"] and "GENRES" in bad.json()["message"]
    dataset = client.post("/recommendations", json=body(predictor, metadataColumns={"USERS": ["AGE"]}))
    assert dataset.status_code == 400 and "ITEMS" in dataset.json()["message"]
    plain = client.post("/recommendations", json=body(predictor)).json()["itemList"]
    assert all(set(x) == {"itemId", "score"} for x in plain)


def test_boto3_promotions_and_metadata(predictor):
    app = create_app({"shop": predictor}, FILTERS)
    genre = sorted(genres(predictor, predictor.solution.items["ITEM_ID"][0]))[0]
    with serving(app) as url:
        runtime = boto3.client("personalize-runtime", endpoint_url=url, region_name="us-east-1",
                               aws_access_key_id="x", aws_secret_access_key="x")
        out = runtime.get_recommendations(
            campaignArn=ARN.format("campaign", "shop"), userId=predictor.solution.user_vocab.ids[3], numResults=8,
            promotions=[{"name": "genre-push", "percentPromotedItems": 25, "filterArn": ARN.format("filter", "genre"),
                         "filterValues": {"GENRE": json.dumps(genre)}}],
            metadataColumns={"ITEMS": ["GENRES"]})
        items = out["itemList"]
        promoted = [x for x in items if x.get("promotionName") == "genre-push"]
        assert len(items) == 8 and len(promoted) == 2
        assert all(genre in x["metadata"]["GENRES"].split("|") for x in promoted)
        assert all(x["reason"] == ["Promoted item"] for x in promoted)
        with pytest.raises(botocore.exceptions.ClientError) as err:
            runtime.get_recommendations(campaignArn=ARN.format("campaign", "shop"), userId="u1",
                                        metadataColumns={"ITEMS": ["NOPE"]})
        assert err.value.response["Error"]["Code"] == "InvalidInputException"


def test_batch_backfill_flag(trained_solution, predictor, tmp_path):
    genre = rarest_genre(predictor)
    of_genre = {i for i in predictor.solution.items["ITEM_ID"] if genre in genres(predictor, i)}
    users = list(predictor.solution.user_vocab.ids[:4])
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"userId": u}) + "\n" for u in users))
    common = ["--solution", trained_solution["solution"], "--input", str(src), "--num-results", str(len(of_genre)),
              "--filter", "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)",
              "--filter-values", json.dumps({"GENRE": json.dumps(genre)})]
    batch_main(common + ["--output", str(tmp_path / "plain.jsonl")])
    batch_main(common + ["--output", str(tmp_path / "filled.jsonl"), "--backfill-popular"])
    plain = [json.loads(line)["output"] for line in (tmp_path / "plain.jsonl").read_text().splitlines()]
    filled = [json.loads(line)["output"] for line in (tmp_path / "filled.jsonl").read_text().splitlines()]
    assert all(set(o) == {"recommendedItems", "scores"} for o in plain)
    for p, f in zip(plain, filled):
        n = len(p["recommendedItems"])
        assert set(f) == {"recommendedItems", "scores", "reasons"}
        assert f["recommendedItems"][:n] == p["recommendedItems"] and f["scores"][:n] == p["scores"]
        assert set(f["recommendedItems"]) == of_genre
        assert f["reasons"] == [None] * n + [["Popular item"]] * (len(of_genre) - n)
        assert f["scores"][n:] == [None] * (len(of_genre) - n)
    assert any(len(p["recommendedItems"]) < len(of_genre) for p in plain)
