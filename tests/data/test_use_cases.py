"""Domain use cases: presets over the recipes, checked against the data, with their filters served."""

import json
from dataclasses import dataclass
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hydra import compose, initialize_config_dir

from personalize_torch.data import constants as C
from personalize_torch.data.dataset_group import DatasetGroup
from personalize_torch.data.domains import DOMAIN_SCHEMAS, check_use_case, main as write_schemas
from personalize_torch.data.schema import parse_schema
from personalize_torch.data.synthetic import generate_demo_data
from personalize_torch.errors import InputError
from personalize_torch.recipes import RECIPES
from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.inference.predictor import Predictor
from personalize_torch.training import train
from tests.conftest import REPO, compose_train_config, serving, shared_data

USE_CASES = sorted(str(p.relative_to(REPO / "configs" / "use_case").with_suffix(""))
                   for p in (REPO / "configs" / "use_case").rglob("*.yaml"))


def test_the_ten_personalize_use_cases_exist():
    assert len(USE_CASES) == 10 and {u.split("/")[0] for u in USE_CASES} == {"ecommerce", "video_on_demand"}


@pytest.mark.parametrize("use_case", USE_CASES)
def test_every_use_case_composes_to_a_registered_recipe(use_case):
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"use_case={use_case}"])
    recipe = cfg.recipe._target_.rsplit(".", 1)[-1]
    assert recipe in {cls.__name__ for cls in RECIPES.values()}
    assert cfg.use_case.domain in DOMAIN_SCHEMAS and cfg.use_case.name


def test_domain_schemas_are_valid_import_schemas(tmp_path):
    for domain in DOMAIN_SCHEMAS:
        write_schemas(["--domain", domain, "--out", str(tmp_path / domain)])
        for dataset in (C.INTERACTIONS, C.ITEMS, C.USERS):
            path = tmp_path / domain / f"{dataset.lower()}.schema.json"
            assert parse_schema(json.loads(path.read_text()), dataset, str(path)).dataset_type == dataset


def group_with(event_types) -> DatasetGroup:
    inter = pd.DataFrame({C.USER_ID: ["u1", "u2"], C.ITEM_ID: ["a", "b"], C.TIMESTAMP: [1, 2],
                          C.EVENT_TYPE: event_types})
    return DatasetGroup(inter, source="interactions.csv")


def test_event_types_match_case_insensitively_and_missing_ones_are_named():
    use_case = {"domain": "VIDEO_ON_DEMAND", "name": "most-popular", "event_type": "Watch",
                "required_event_types": ["Watch"]}
    assert check_use_case(group_with(["watch", "click"]), use_case) == "watch"
    with pytest.raises(InputError) as err:
        check_use_case(group_with(["click", "click"]), use_case)
    assert "Watch" in err.value.message and "click" in err.value.message and err.value.column == C.EVENT_TYPE
    with pytest.raises(InputError, match="domain"):
        check_use_case(group_with(["x", "y"]), {**use_case, "domain": "GAMES"})
    more_like_x = {**use_case, "name": "more-like-x", "required_datasets": ["Items"]}
    with pytest.raises(InputError, match="needs the Items dataset") as err:
        check_use_case(group_with(["watch", "click"]), more_like_x)
    assert err.value.column == "data.items"


# ---- The ten use cases end to end: demo data shaped like the domain (the synthetic generator's events
# renamed to the domain's event types, imported with the domain's preset schemas) plus planted patterns,
# trained through train.py's path, the solution version loaded into the HTTP app, and asked the way
# Personalize's recommender is asked (userId for user-based use cases, itemId for related-items ones).

ARN = "arn:aws:personalize:us-east-1:123456789012:recommender/{}"


def planted(users, items, event_type: str, start: int, step: int = 60) -> pd.DataFrame:
    """Each of `users` interacts with each of `items`, in that order, `step` seconds apart from `start`."""
    users, items = np.asarray(users, dtype=object), np.asarray(items, dtype=object)
    k = np.tile(np.arange(len(items)), len(users))
    return pd.DataFrame({C.USER_ID: np.repeat(users, len(items)), C.ITEM_ID: np.tile(items, len(users)),
                         C.TIMESTAMP: start + k * step + np.repeat(np.arange(len(users)), len(items)),
                         C.EVENT_TYPE: event_type})


@dataclass
class DomainData:
    overrides: list[str]          # the data.* settings of train.py
    interactions: pd.DataFrame    # what was imported
    users: list[str]              # demo users, shuffled: the planted groups are slices of it


@pytest.fixture(scope="module")
def demo():
    return generate_demo_data(n_users=300, n_items=120)


def write_domain(tmp: Path, domain: str, interactions: pd.DataFrame, items: pd.DataFrame | None = None) -> list[str]:
    """CSVs with the domain's preset schemas (as `python -m personalize_torch.data.domains` writes them)."""
    write_schemas(["--domain", domain, "--out", str(tmp)])
    fields = [f["name"] for f in DOMAIN_SCHEMAS[domain][C.INTERACTIONS]["fields"]]
    interactions[fields].to_csv(tmp / "interactions.csv", index=False)
    out = [f"data.interactions={tmp / 'interactions.csv'}",
           f"data.interactions_schema={tmp / 'interactions.schema.json'}"]
    if items is not None:
        items[[f["name"] for f in DOMAIN_SCHEMAS[domain][C.ITEMS]["fields"] if f["name"] in items]].to_csv(
            tmp / "items.csv", index=False)
        out += [f"data.items={tmp / 'items.csv'}", f"data.items_schema={tmp / 'items.schema.json'}"]
    return out


@pytest.fixture(scope="module")
def shop(demo, tmp_path_factory) -> DomainData:
    """ECOMMERCE: the demo's clicks are View events, its purchases Purchase events, and
    - co-view-a / co-view-b are viewed together by 40 users,
    - bundle-a / bundle-b are bought together by 15 users (never viewed), while 40 other users view
      bundle-a together with co-view-c (never bought),
    - most-viewed is viewed by 260 users and never bought; best-seller is bought by 150 and never viewed,
    - one user bought co-view-b without viewing it."""
    inter = demo.interactions[[C.USER_ID, C.ITEM_ID, C.TIMESTAMP, C.EVENT_TYPE, C.EVENT_VALUE]].copy()
    inter[C.EVENT_TYPE] = inter[C.EVENT_TYPE].map({"click": "View", "purchase": "Purchase"})
    users = list(np.random.default_rng(1).permutation(sorted(demo.users[C.USER_ID])))
    mid = int(inter[C.TIMESTAMP].median())
    inter = pd.concat([inter, planted(users[0:40], ["co-view-a", "co-view-b"], "View", mid),
                       planted(users[40:55], ["bundle-a", "bundle-b"], "Purchase", mid),
                       planted(users[55:95], ["bundle-a", "co-view-c"], "View", mid),
                       planted(users[0:260], ["most-viewed"], "View", mid + 3600),
                       planted(users[100:250], ["best-seller"], "Purchase", mid + 7200),
                       planted(users[290:291], ["co-view-b"], "Purchase", mid)], ignore_index=True)
    inter = inter.sort_values(C.TIMESTAMP, kind="stable")
    return DomainData(write_domain(tmp_path_factory.mktemp("shop"), "ECOMMERCE", inter), inter, users)


@pytest.fixture(scope="module")
def vod(demo, tmp_path_factory) -> DomainData:
    """VIDEO_ON_DEMAND: the demo's clicks are Click events, its purchases (a few seconds after a click)
    Watch events; its items have GENRES and DESCRIPTION, and new-comedy (no interactions) is in the Items
    data only. Planted:
    - v-watch-a / v-watch-b are watched together by 15 users; 40 other users click v-watch-a together
      with v-click-c (never watched); one user clicked v-watch-b without watching it,
    - v-most-watched is watched by 150 users; v-most-clicked is clicked by 280 users, never watched, at
      times spread over the data's first 75 days,
    - v-surging: clicked by 40 users in the last 12 hours, never before."""
    inter = demo.interactions[[C.USER_ID, C.ITEM_ID, C.TIMESTAMP, C.EVENT_TYPE]].copy()
    inter[C.EVENT_TYPE] = inter[C.EVENT_TYPE].map({"click": "Click", "purchase": "Watch"})
    users = list(np.random.default_rng(2).permutation(sorted(demo.users[C.USER_ID])))
    t0, t1 = int(inter[C.TIMESTAMP].min()), int(inter[C.TIMESTAMP].max())
    mid = int(inter[C.TIMESTAMP].median())
    steady = planted(users[0:280], ["v-most-clicked"], "Click", 0)
    steady[C.TIMESTAMP] = np.random.default_rng(3).integers(t0, t1 - 3 * 86400, len(steady))
    inter = pd.concat([inter, planted(users[0:15], ["v-watch-a", "v-watch-b"], "Watch", mid),
                       planted(users[15:55], ["v-watch-a", "v-click-c"], "Click", mid),
                       planted(users[60:61], ["v-watch-b"], "Click", mid),
                       planted(users[100:250], ["v-most-watched"], "Watch", mid + 3600), steady,
                       planted(users[200:240], ["v-surging"], "Click", t1 - 12 * 3600, step=600)],
                      ignore_index=True).sort_values(C.TIMESTAMP, kind="stable")
    items = demo.items.copy()
    extra = sorted(set(inter[C.ITEM_ID]) - set(items[C.ITEM_ID])) + ["new-comedy"]
    items = pd.concat([items, pd.DataFrame({
        C.ITEM_ID: extra, "GENRES": ["Documentary"] * (len(extra) - 1) + ["Comedy"],
        C.CREATION_TIMESTAMP: t0, "DESCRIPTION": ["A planted documentary."] * (len(extra) - 1)
        + ["A witty comedy story about a band on the road."]})], ignore_index=True)
    return DomainData(write_domain(tmp_path_factory.mktemp("vod"), "VIDEO_ON_DEMAND", inter, items), inter, users)


@pytest.fixture(scope="module")
def trained(shop, vod, tmp_path_factory):
    """use case -> its solution version loaded in a Predictor, trained on first use (one per module)."""
    cache: dict[str, Predictor] = {}
    epochs = {"ecommerce/recommended_for_you": 1, "video_on_demand/top_picks": 1,
              "video_on_demand/more_like_x": 3}

    def get(use_case: str) -> Predictor:
        if use_case not in cache:
            data = shop if use_case.startswith("ecommerce/") else vod
            overrides = [*data.overrides, f"use_case={use_case}", "logger=none",
                         f"trainer.max_epochs={epochs.get(use_case, 1)}"]
            result = train(compose_train_config(overrides, tmp_path_factory.mktemp(use_case.replace("/", "-"))))
            cache[use_case] = Predictor.from_dir(result["solution"])
            assert cache[use_case].solution.info["use_case"]["name"] == use_case.split("/")[1].replace("_", "-")
        return cache[use_case]

    return get


def ask(client: TestClient, **request) -> list[str]:
    """GetRecommendations through the HTTP app: the recommended item ids."""
    r = client.post("/recommendations", json={"recommenderArn": ARN.format("uc"), "numResults": 25, **request})
    assert r.status_code == 200, r.text
    return [x["itemId"] for x in r.json()["itemList"]]


def app_for(predictor: Predictor) -> TestClient:
    return TestClient(create_app({"uc": predictor}))


def events_of(data: DomainData, user: str, event_type: str | None = None) -> set[str]:
    inter = data.interactions
    rows = inter[C.USER_ID] == user
    if event_type is not None:
        rows &= inter[C.EVENT_TYPE] == event_type
    return set(inter.loc[rows, C.ITEM_ID])


def distinct_users(data: DomainData, event_type: str) -> pd.Series:
    inter = data.interactions
    return inter[inter[C.EVENT_TYPE] == event_type].groupby(C.ITEM_ID)[C.USER_ID].nunique()


@pytest.mark.parametrize("use_case, data, excluded, kept", [
    ("ecommerce/recommended_for_you", "shop", "Purchase", "View"),
    ("video_on_demand/top_picks", "vod", "Watch", "Click"),
])
def test_user_based_use_cases_never_recommend_what_the_user_bought_or_watched(use_case, data, excluded, kept,
                                                                             trained, request):
    """recommended-for-you (User-Personalization on every event) never returns a purchased item, top-picks
    never a watched video: through the server, and in the model's own ranking with the user's items allowed
    back in, where viewed / clicked items do come back and purchased / watched ones never."""
    data = request.getfixturevalue(data)
    predictor = trained(use_case)
    assert predictor.solution.info["data"]["event_type"] is None            # trained on every event type
    client = app_for(predictor)
    users = [u for u in data.users if events_of(data, u, excluded)][:30]
    kept_back = 0
    for user, own in zip(users, predictor.recommend(users, 60, exclude_seen=False)):
        served = ask(client, userId=user)
        assert len(served) == 25 and not set(served) & events_of(data, user, excluded)
        got = {r.item_id for r in own}
        assert not got & events_of(data, user, excluded)
        kept_back += bool(got & (events_of(data, user, kept) - events_of(data, user, excluded)))
    assert kept_back > 0


def test_customers_who_viewed_x_also_viewed(trained, shop):
    """SIMS on View events: co-view-a's first related item is co-view-b; bundle-a is related to what it
    was viewed with (co-view-c), not to what it was bought with; and for a user who bought co-view-b
    (without viewing it), co-view-b is left out, also when the purchase arrives through PutEvents."""
    predictor = trained("ecommerce/customers_who_viewed_x_also_viewed")
    assert predictor.solution.info["data"]["n_interactions"] == (shop.interactions[C.EVENT_TYPE] == "View").sum()
    client = app_for(predictor)
    assert ask(client, itemId="co-view-a")[0] == "co-view-b"
    related = ask(client, itemId="bundle-a")
    assert related[0] == "co-view-c" and "bundle-b" not in related
    buyer, other = shop.users[290], shop.users[291]
    assert "co-view-b" in events_of(shop, buyer, "Purchase") and "co-view-b" not in events_of(shop, buyer, "View")
    assert ask(client, itemId="co-view-a", userId=other)[0] == "co-view-b"
    assert "co-view-b" not in ask(client, itemId="co-view-a", userId=buyer)
    event = {"eventType": "Purchase", "itemId": "co-view-b", "sentAt": 1_800_000_000}
    assert client.post("/events", json={"trackingId": "t", "userId": other, "sessionId": "s",
                                        "eventList": [event]}).status_code == 200
    assert "co-view-b" not in ask(client, itemId="co-view-a", userId=other)


def test_frequently_bought_together(trained, shop):
    """SIMS on Purchase events only: bundle-a's first related item is bundle-b, bought with it, and not
    co-view-c, only viewed with it."""
    predictor = trained("ecommerce/frequently_bought_together")
    assert predictor.solution.info["data"]["event_type"] == "Purchase"
    assert predictor.solution.info["data"]["n_interactions"] == (shop.interactions[C.EVENT_TYPE] == "Purchase").sum()
    related = ask(app_for(predictor), itemId="bundle-a")
    assert related[0] == "bundle-b" and "co-view-c" not in related


@pytest.mark.parametrize("use_case, event_type, first, absent", [
    ("ecommerce/popular_items_by_views", "View", "most-viewed", "best-seller"),
    ("ecommerce/popular_items_by_purchases", "Purchase", "best-seller", "most-viewed"),
])
def test_popular_items_rank_by_their_own_event_type(use_case, event_type, first, absent, trained, shop):
    """Most viewed and Best sellers differ on data where views and purchases differ: each puts its own
    planted item first and never lists the other's (viewed but never bought, or bought but never viewed);
    its list is the items with the most distinct users by that event type."""
    served = ask(app_for(trained(use_case)), userId="a-new-customer")
    assert served[0] == first and absent not in served
    by_users = distinct_users(shop, event_type).sort_values(ascending=False)
    assert served[:2] == list(by_users.index[:2]) and set(served[:10]) <= set(by_users.index[:20])


def test_because_you_watched_x(trained, vod):
    """SIMS on Watch events: v-watch-a's first related video is v-watch-b (watched with it), never
    v-click-c (only clicked with it); a user who watched v-watch-b does not get it, a user who only
    clicked it does."""
    predictor = trained("video_on_demand/because_you_watched_x")
    assert predictor.solution.info["data"]["event_type"] == "Watch"
    client = app_for(predictor)
    related = ask(client, itemId="v-watch-a")
    assert related[0] == "v-watch-b" and "v-click-c" not in related
    watcher, clicker = vod.users[0], vod.users[60]
    assert "v-watch-b" in events_of(vod, watcher, "Watch")
    assert "v-watch-b" in events_of(vod, clicker, "Click") and "v-watch-b" not in events_of(vod, clicker, "Watch")
    assert "v-watch-b" not in ask(client, itemId="v-watch-a", userId=watcher)
    assert ask(client, itemId="v-watch-a", userId=clicker)[0] == "v-watch-b"


def test_more_like_x_returns_videos_that_share_its_genres(trained, vod, demo):
    """Similar-Items over interactions and Items metadata: related videos share a genre with the video
    far more often than two random videos do, also for new-comedy, which has no interactions at all; a
    user's watched videos are left out even when the model's own ranking would keep them."""
    predictor = trained("video_on_demand/more_like_x")
    genres = {i: set(g.split("|")) for i, g in zip(demo.items[C.ITEM_ID], demo.items["GENRES"])}
    genres["new-comedy"] = {"Comedy"}
    client = app_for(predictor)
    ids = list(demo.items[C.ITEM_ID])
    chance = np.mean([bool(genres[a] & genres[b]) for a in ids for b in ids if a != b])
    shared = np.mean([bool(genres[x] & genres[r]) for x in ids[:20] for r in ask(client, itemId=x, numResults=10)
                      if r in genres])
    assert shared > 2 * chance, (shared, chance)
    cold = [r for r in ask(client, itemId="new-comedy", numResults=10)]
    assert np.mean(["Comedy" in genres.get(r, ()) for r in cold]) > 2 * chance, cold
    user = next(u for u in vod.users if events_of(vod, u, "Watch") & set(ids))
    watched = events_of(vod, user, "Watch")
    for x in list(watched)[:3]:
        (own,) = predictor.recommend_related([x], 100, [user], exclude_seen=False)
        assert not {r.item_id for r in own} & watched


def test_most_popular_counts_watch_events_only(trained, vod):
    """Popularity-Count on Watch events: v-most-watched first; v-most-clicked, the item with the most
    users of all but never watched, is not listed."""
    served = ask(app_for(trained("video_on_demand/most_popular")), userId="a-new-viewer")
    assert served[0] == "v-most-watched" and "v-most-clicked" not in served
    by_users = distinct_users(vod, "Watch").sort_values(ascending=False)
    assert set(served[:10]) <= set(by_users.index[:20])


def test_trending_now_puts_the_surging_video_first(trained, vod):
    """Trending-Now on every event type: v-surging (clicked by 40 users in the last 12 hours, never
    before) comes first, ahead of v-most-clicked, the most popular item, whose clicks are steady."""
    served = ask(app_for(trained("video_on_demand/trending_now")), userId="a-new-viewer")
    assert served[0] == "v-surging" and "v-most-clicked" in served[1:]


def test_every_use_case_answers_an_unmodified_boto3_client(trained, shop, vod):
    """One server, ten recommenders, each asked through boto3 as Personalize's recommender is asked
    (userId, or itemId for related items), answering what the app's own client gets."""
    requests = {
        "ecommerce/recommended_for_you": {"userId": shop.users[0]},
        "ecommerce/customers_who_viewed_x_also_viewed": {"itemId": "co-view-a", "userId": shop.users[291]},
        "ecommerce/frequently_bought_together": {"itemId": "bundle-a"},
        "ecommerce/popular_items_by_views": {"userId": shop.users[0]},
        "ecommerce/popular_items_by_purchases": {"userId": shop.users[0]},
        "video_on_demand/top_picks": {"userId": vod.users[0]},
        "video_on_demand/because_you_watched_x": {"itemId": "v-watch-a", "userId": vod.users[60]},
        "video_on_demand/more_like_x": {"itemId": "new-comedy", "userId": vod.users[0]},
        "video_on_demand/most_popular": {"userId": vod.users[0]},
        "video_on_demand/trending_now": {"userId": vod.users[0]},
    }
    assert sorted(requests) == USE_CASES
    campaigns = {u.replace("/", "-"): trained(u) for u in USE_CASES}
    app = create_app(campaigns)
    with serving(app) as url:
        runtime = boto3.client("personalize-runtime", endpoint_url=url, region_name="us-east-1",
                               aws_access_key_id="local", aws_secret_access_key="local")
        for use_case, request in requests.items():
            name = use_case.replace("/", "-")
            response = runtime.get_recommendations(recommenderArn=ARN.format(name), numResults=10, **request)
            got = [x["itemId"] for x in response["itemList"]]
            assert len(got) == 10
            expected = TestClient(app).post("/recommendations", json={"recommenderArn": ARN.format(name),
                                                                      "numResults": 10, **request}).json()
            assert got == [x["itemId"] for x in expected["itemList"]], use_case


@pytest.mark.real_data
def test_video_on_demand_use_cases_on_personalizes_sample_data(tmp_path):
    folder = shared_data("amazon_personalize", "movielens_poc")
    # (its item-meta.csv has an empty YEAR in a required field, which import rejects: interactions only)
    data = [f"data.interactions={folder / 'interactions.csv'}",
            f"data.interactions_schema={folder / 'schemas' / 'interactions.schema.json'}"]
    for use_case in ("video_on_demand/most_popular", "video_on_demand/because_you_watched_x"):
        result = train(compose_train_config([*data, f"use_case={use_case}", "logger=none"], tmp_path / use_case))
        assert result["data"]["event_type"] == "watch"              # the sample spells it in lower case
        predictor = Predictor.from_dir(result["solution"])
        user = predictor.solution.user_vocab.ids[0]
        assert len(predictor.recommend([user], 10)[0]) == 10
