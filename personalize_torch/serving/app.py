"""The HTTP app: Personalize Runtime's GetRecommendations and GetPersonalizedRanking
(`POST /personalize-ranking`, see serving/ranking.py) and Personalize Events' PutEvents / PutItems /
PutUsers, wire-compatible with boto3.

`userId` asks for a user's recommendations, `itemId` for items related to an item (SIMS's input; every
recipe answers it, see `Predictor.recommend_related`); the response has the same shape either way.

`boto3.client("personalize-runtime", endpoint_url="http://host:port")` works unchanged: it POSTs JSON
to /recommendations (with SigV4 headers, which are accepted and not checked) and reads errors in the
AWS JSON shape (`x-amzn-ErrorType` header + {"message": ...}), raising ResourceNotFoundException or
InvalidInputException. `boto3.client("personalize-events", endpoint_url=...)` works the same way:
PutEvents (`POST /events`), PutItems (`POST /items`) and PutUsers (`POST /users`) are committed to the
event store (`personalize_torch.serving.event_store`) before the response is sent, and the next
GetRecommendations for that user (or that sessionId, asked for as a userId) reads them: they follow the
user's stored history as model input and are left out of the recommendations, without retraining.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError

from personalize_torch.errors import InputError
from personalize_torch.filters import Filter
from personalize_torch.serving.access import install_access_controls
from personalize_torch.serving.auto_update import update_campaign
from personalize_torch.serving.api_models import (DeployRequest, GetPersonalizedRankingRequest,
                                                  GetPersonalizedRankingResponse, GetRecommendationsRequest,
                                                  GetRecommendationsResponse, PutEventsRequest,
                                                  PutItemsRequest, PutUsersRequest)
from personalize_torch.serving.deployments import DeploymentLog
from personalize_torch.serving.event_store import Event, EventStore, UserEventColumns, property_fields
from personalize_torch.serving.exploration import check_exploration_settings
from personalize_torch.serving.fast_routes import (FastRoute, FastRoutes, ServiceError, invalid_input,
                                                   validation_message)
from personalize_torch.serving.micro_batching import MicroBatcher
from personalize_torch.serving.predictor import Predictor, RecentEvents, RecommendedItem, RequestOptions
from personalize_torch.serving.promotions import Promotion


def not_found(message: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", message, 404)


def arn_name(arn: str) -> str:
    """The last path segment of an ARN (`arn:aws:personalize:...:campaign/my-campaign` -> `my-campaign`)."""
    return arn.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


@dataclass
class CampaignSettings:
    """A campaign's campaignConfig: itemExplorationConfig's explorationWeight and explorationItemAgeCutOff;
    and whether lists that a filter leaves short are back-filled with popular items ("Popular item")."""

    exploration_weight: float = 0.0
    exploration_item_age_cut_off: float = 30.0
    backfill_popular: bool = False
    auto_update_minutes: float | None = None  # UPDATE with new PutItems items this often (Personalize: ~120)

    def __post_init__(self) -> None:
        check_exploration_settings(self.exploration_weight, self.exploration_item_age_cut_off)


def recent_events(stored: UserEventColumns, predictor: Predictor) -> RecentEvents | None:
    """A user's stored events as the predictor's input. Contexts (event `properties` whose names match
    the solution's contextual fields) are read only when the solution has contextual fields, and only for
    the events the model reads."""
    if not len(stored):
        return None
    contexts = None
    if predictor.solution.context_vocabs:
        n = min(predictor.recipe.input_length or len(stored), len(stored))
        contexts = [None] * (len(stored) - n) + [property_fields(p) for p in stored.properties[len(stored) - n:]]
    return RecentEvents(item_ids=stored.item_ids, timestamps=stored.sent_at, event_types=stored.event_types,
                        event_values=stored.event_values, contexts=contexts)


def create_app(campaigns: dict[str, Predictor], filters: dict[str, Filter] | None = None,
               settings: dict[str, CampaignSettings] | None = None, events: EventStore | None = None,
               api_key: str | None = None, max_request_bytes: int = 1_000_000,
               deploy_root: str | Path | None = None, update_root: str | Path = "outputs/serve/updates",
               max_batch: int = 32, deployments: DeploymentLog | None = None, deployed_version: int = 0,
               worker: int = 0, deploy_poll_seconds: float = 1.0, cache_user_states: bool = False) -> FastAPI:
    """`campaigns` maps campaign names to predictors (with exactly one, every campaignArn reaches it);
    `filters` maps filter names (the last segment of a filterArn) to parsed filters; `settings` holds
    each campaign's exploration settings; `events` is the event store (PutEvents / PutItems / PutUsers)
    that every campaign reads users' recent events from (None: a new in-memory store, closed with the app,
    so nothing survives a restart); `api_key` and `max_request_bytes`: see `access`; `deploy_root`: when
    set, `PUT /campaigns/{name}` deploys solution versions found under that directory (see `deploy`);
    `update_root`: where campaigns with `auto_update_minutes` write their UPDATEd solution versions
    (see `auto_update`); `max_batch`: at most this many concurrent GetRecommendations requests share
    one model call (see `micro_batching`; 1 = each request alone).

    Several worker processes (serve.py `workers=N`) each build this app: `deployments` is the log they
    share (see `deployments`): deploys and auto-updates made by one are recorded there, and every worker
    applies the ones after `deployed_version` (the version of the startup campaigns) that it has not
    applied yet, polling every `deploy_poll_seconds`. Only `worker` 0 runs the auto-update loop.
    `cache_user_states`: solution versions deployed later keep their users' model states between requests
    (see `Predictor`); the startup `campaigns` come as they were built."""
    own_store = events is None
    store = EventStore(":memory:") if own_store else events

    async def auto_update_loop() -> None:
        """Every campaign with auto_update_minutes: UPDATE it with new PutItems items when it is due."""
        due: dict[str, float] = {}
        while True:
            await asyncio.sleep(min([1.0] + [60 * s.auto_update_minutes / 4 for s in settings.values()
                                             if s.auto_update_minutes]))
            for name, config in list(settings.items()):
                if not config.auto_update_minutes or name not in campaigns:
                    continue
                now = time.monotonic()
                if now < due.setdefault(name, now + 60 * config.auto_update_minutes):
                    continue
                due[name] = now + 60 * config.auto_update_minutes
                try:
                    updated = await asyncio.to_thread(update_campaign, campaigns[name], store, update_root)
                except Exception:  # a failed update leaves the campaign serving what it served
                    logging.getLogger(__name__).exception("auto-update of campaign %s failed", name)
                    continue
                if updated is not None:
                    campaigns[name] = updated
                    if deployments is not None:
                        versions[name] = deployments.record(name, updated.solution.path.resolve(),
                                                            settings[name])

    # campaign -> the deployment-log version it serves (the startup campaigns: deployed_version)
    versions: dict[str, int] = {name: deployed_version for name in campaigns}

    def load_warm(path: str | Path) -> Predictor:
        return Predictor.load_warm(path, next(iter(campaigns.values())).device.type if campaigns else "cpu",
                                   cache_user_states)

    async def follow_deployments() -> None:
        """Apply deploys that other worker processes recorded (see `deployments`)."""
        seen = deployed_version
        while True:
            await asyncio.sleep(deploy_poll_seconds)
            try:
                pending = await asyncio.to_thread(deployments.after, seen)
            except Exception:  # a locked or busy database: try again at the next poll
                logging.getLogger(__name__).exception("reading the deployment log failed")
                continue
            for d in pending:
                seen = max(seen, d.version)
                if versions.get(d.campaign, -1) >= d.version:
                    continue       # this worker made it
                try:
                    campaign_settings = CampaignSettings(**d.settings)
                    predictor = await asyncio.to_thread(load_warm, d.solution)
                except Exception:  # keep serving what it served
                    logging.getLogger(__name__).exception("loading %s for campaign %s failed", d.solution,
                                                          d.campaign)
                    continue
                settings[d.campaign] = campaign_settings
                campaigns[d.campaign] = predictor
                versions[d.campaign] = d.version

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        tasks = []
        if worker == 0 and any(s.auto_update_minutes for s in settings.values()):
            tasks.append(asyncio.create_task(auto_update_loop()))
        if deployments is not None:
            tasks.append(asyncio.create_task(follow_deployments()))
        # The models, catalogues and data frames loaded so far live as long as the server: moved out of
        # the garbage collector's generations, they are not traversed again by every full collection
        # (bench/serving_latency.py, 64 clients: p99 64-69 ms with this, 71-88 ms without).
        gc.collect()
        gc.freeze()
        yield
        for task in tasks:
            task.cancel()
        batcher.close()
        if own_store:
            store.close()

    batcher = MicroBatcher(max_batch)
    app = FastAPI(title="personalize-torch runtime", lifespan=lifespan)
    app.state.batcher = batcher
    app.state.events = store
    # Middleware added last runs first: access controls (key, size, log), then the fast routes, so the fast
    # routes must be added first. (`recommendations` is defined further down: hence the lambda.)
    app.add_middleware(FastRoutes, routes={"/recommendations": FastRoute(GetRecommendationsRequest,
                                                                         lambda req: recommendations(req))})
    install_access_controls(app, api_key, max_request_bytes)
    filters = dict(filters or {})
    settings = dict(settings or {})

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, err: ServiceError) -> Response:
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> Response:
        return await service_error(request, invalid_input(validation_message(err.errors())))

    def campaign_name(arn: str | None) -> str:
        if arn is None:
            raise invalid_input("campaignArn is required")
        name = arn_name(arn)
        if name in campaigns:
            return name
        if len(campaigns) == 1:
            return next(iter(campaigns))
        raise not_found(f"campaign {name!r} does not exist; campaigns: {', '.join(sorted(campaigns))}")

    def named_filter(arn: str, field: str = "filterArn") -> Filter:
        name = arn_name(arn)
        if name not in filters:
            raise not_found(f"{field}: filter {name!r} does not exist; filters: {', '.join(sorted(filters)) or 'none'}")
        return filters[name]

    def promotion(req: GetRecommendationsRequest) -> Promotion | None:
        """The request's one promotion (the request model allows at most one)."""
        if not req.promotions:
            return None
        (p,) = req.promotions
        if p.filterArn is None:
            raise invalid_input("promotions[0].filterArn is required: the filter that selects promoted items")
        return Promotion(p.name, p.percentPromotedItems, named_filter(p.filterArn, "promotions[0].filterArn"),
                         p.filterValues)

    def request_options(req: GetRecommendationsRequest, campaign: str, predictor: Predictor) -> RequestOptions:
        chosen = None
        if req.filterArn is not None:
            chosen = named_filter(req.filterArn)
        elif req.filterValues:
            raise invalid_input("filterValues were given without a filterArn")
        config = settings.get(campaign, CampaignSettings())
        streamed = None
        if req.userId is not None:
            streamed = recent_events(store.user_event_columns(req.userId), predictor)
        return RequestOptions(filter=chosen, filter_values=req.filterValues, context=req.context,
                              exploration_weight=config.exploration_weight,
                              exploration_item_age_cut_off=config.exploration_item_age_cut_off, events=streamed,
                              promotion=promotion(req), backfill_popular=config.backfill_popular)

    def predicted_items(predictor: Predictor, items: list[RecommendedItem], columns: list[str]) -> list[dict]:
        """Response items (PredictedItem's fields, those without a value left out as botocore expects):
        itemId, score (none for popular back-fill), promotionName, reason, metadata (metadataColumns).
        Plain dicts, not pydantic objects: building and re-validating 25 models per request was ~7% of a
        GetRecommendations call's CPU under load."""
        metadata = ([None] * len(items) if not columns else predictor.item_metadata.lookup(
            predictor.solution.item_vocab.to_idx([r.item_id for r in items]), columns))
        out = []
        for r, m in zip(items, metadata):
            item = {"itemId": r.item_id}
            if r.score is not None:
                item["score"] = round(r.score, 8)
            if r.promotion_name is not None:
                item["promotionName"] = r.promotion_name
            if m is not None:
                item["metadata"] = m
            if r.reason:
                item["reason"] = list(r.reason)
            out.append(item)
        return out

    @app.get("/ping")
    def ping() -> dict:
        return {"status": "ok", "campaigns": sorted(campaigns), "worker": worker}

    @app.put("/campaigns/{name}")
    def deploy(name: str, req: DeployRequest) -> dict:
        """Deploy a solution version to a campaign (Personalize's CreateCampaign / UpdateCampaign) with no
        failed requests: the new predictor is loaded and warmed up (catalogue, one scoring pass) while the
        old one keeps serving, then swapped in with one dict assignment; requests already running finish
        on the old one. Only solution versions under the server's `deploy_root` can be deployed."""
        if deploy_root is None:
            raise ServiceError("AccessDeniedException", "deploying is disabled; start the server with deploy_root=<dir>",
                               403)
        root = Path(deploy_root).resolve()
        path = (root / req.solution).resolve()
        if not path.is_relative_to(root) or not (path / "solution.json").is_file():
            raise invalid_input("solution: not a solution version directory under the server's deploy_root")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,63}", name):
            raise invalid_input("campaign names are 1-63 letters, digits, '.', '_' or '-'")
        try:
            predictor = load_warm(path)                   # catalogue built now, not by the first request
        except (InputError, OSError, ValueError, KeyError) as err:
            raise invalid_input(f"solution: cannot load it: {err}") from None
        settings[name] = CampaignSettings(**{**settings.get(name, CampaignSettings()).__dict__,
                                             **req.settings()})
        campaigns[name] = predictor
        if deployments is not None:   # the other worker processes load it too
            versions[name] = deployments.record(name, path, settings[name])
        return {"campaign": name, "recipe": predictor.solution.recipe_name}

    async def batched_recommendations(predictor: Predictor, req: GetRecommendationsRequest,
                                      options: RequestOptions) -> list[RecommendedItem]:
        """The request's items, computed on the batcher's thread in one model call with other requests
        arriving meanwhile that share its campaign, kind (user / related items), numResults, filter and
        campaign settings (see micro_batching); each row keeps its own user, item, filterValues, context
        and streamed events. A request with a promotion (its own filter values) is computed alone."""
        related = req.itemId is not None
        key = (id(predictor), related, req.numResults, id(options.filter), options.exploration_weight,
               options.exploration_item_age_cut_off, options.backfill_popular) if options.promotion is None \
            else object()
        row = (req.userId, req.itemId, options.filter_values, options.context, options.events)
        future = batcher.submit_future(key, row, lambda rows: run_rows(predictor, related, req.numResults,
                                                                       options, rows))
        return await asyncio.wrap_future(future)

    def run_rows(predictor: Predictor, related: bool, num_results: int, options: RequestOptions,
                 rows: list[tuple]) -> list[list[RecommendedItem]]:
        users, items, values, contexts, events = (list(c) for c in zip(*rows))
        batch_options = replace(options, filter_values=values, context=contexts, events=events)
        if related:   # related items; a userId as well leaves out that user's items
            return predictor.recommend_related(items, num_results, users, options=batch_options)
        return predictor.recommend(users, num_results, options=batch_options)

    async def recommendations(req: GetRecommendationsRequest) -> bytes:
        """GetRecommendations' response body. `async`: no thread-pool hop per request; the blocking work runs
        on the batcher's thread, and the user's streamed events are one indexed SQLite read (WAL readers do
        not wait for writers)."""
        campaign = campaign_name(req.campaignArn or req.recommenderArn)
        predictor = campaigns[campaign]
        options = request_options(req, campaign, predictor)
        try:
            columns = predictor.item_metadata.check(req.metadataColumns)
            if req.itemId is None and req.userId is None:
                raise invalid_input("userId or itemId is required")
            items = await batched_recommendations(predictor, req, options)
        except InputError as err:
            raise invalid_input(err.describe()) from None
        # Serialized here: FastAPI would validate the response against GetRecommendationsResponse again
        # (the model still documents it in the OpenAPI schema; tests check the shape through boto3).
        return json.dumps({"itemList": predicted_items(predictor, items, columns),
                           "recommendationId": f"RID-{uuid.uuid4()}"}, separators=(",", ":")).encode()

    # Answered by FastRoutes (added above, inside the access controls) before FastAPI's router; registered
    # here for the OpenAPI schema.
    @app.post("/recommendations", response_model=GetRecommendationsResponse, response_model_exclude_none=True)
    async def get_recommendations(req: GetRecommendationsRequest) -> Response:
        return Response(await recommendations(req), media_type="application/json")

    @app.post("/personalize-ranking", response_model=GetPersonalizedRankingResponse,
              response_model_exclude_none=True)
    def get_personalized_ranking(req: GetPersonalizedRankingRequest) -> GetPersonalizedRankingResponse:
        """GetPersonalizedRanking: `inputList` re-ordered for `userId` (see serving/ranking.py): scored items
        first (scores sum to 1), then items the solution does not know, without a score or metadata."""
        campaign = campaign_name(req.campaignArn)
        predictor = campaigns[campaign]
        if req.filterArn is None and req.filterValues:
            raise invalid_input("filterValues were given without a filterArn")
        options = RequestOptions(filter=named_filter(req.filterArn) if req.filterArn is not None else None,
                                 filter_values=req.filterValues, context=req.context,
                                 events=recent_events(store.user_event_columns(req.userId), predictor))
        try:
            columns = predictor.item_metadata.check(req.metadataColumns)
            (items,) = predictor.rank([req.userId], [req.inputList], options)
        except InputError as err:
            raise invalid_input(err.describe()) from None
        ranked = predicted_items(predictor, items, columns)
        for item in ranked:
            if "score" not in item:  # not in the solution: nothing to report about it
                item.pop("metadata", None)
        return GetPersonalizedRankingResponse(personalizedRanking=ranked, recommendationId=f"RID-{uuid.uuid4()}")

    # --- Personalize Events: each call is one committed transaction before the (empty) 200 response ---
    @app.post("/events")
    def put_events(req: PutEventsRequest) -> Response:
        store.put_events(req.trackingId, req.sessionId, req.userId, [
            Event(event_type=e.eventType, sent_at=e.sentAt, item_id=e.itemId, event_id=e.eventId,
                  event_value=e.eventValue, properties=e.properties,
                  impression=tuple(e.impression) if e.impression is not None else None,
                  recommendation_id=e.recommendationId,
                  metric_attribution=e.metricAttribution.eventAttributionSource if e.metricAttribution else None)
            for e in req.eventList])
        return Response(status_code=200)

    @app.post("/items")
    def put_items(req: PutItemsRequest) -> Response:
        store.put_items(req.datasetArn, [(i.itemId, i.properties) for i in req.items])
        return Response(status_code=200)

    @app.post("/users")
    def put_users(req: PutUsersRequest) -> Response:
        store.put_users(req.datasetArn, [(u.userId, u.properties) for u in req.users])
        return Response(status_code=200)

    return app
