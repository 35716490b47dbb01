"""The console and the API reference in a real headless Chromium (Debian's package, driven by Playwright), against a
server with a small User-Personalization campaign: what a person sees matches what the API answers.

The browser is /usr/bin/chromium, or the one PERSONALIZE_TEST_BROWSER names; when that variable is set (CI), a
missing browser or driver fails these tests instead of skipping them. One browser and one server for the module;
screenshots of each page go to the module's temporary folder (`screenshots` fixture)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from personalize_torch.filters import Filter
from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.inference.predictor import Predictor
from tests.conftest import serving, tiny_user_personalization

BROWSER = os.environ.get("PERSONALIZE_TEST_BROWSER", "")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARN = "arn:aws:personalize:us-east-1:000000000000:"
FILTERS = {"no_genre": "EXCLUDE ItemID WHERE Items.GENRES IN ($GENRES)",
           "cheaper_than": "INCLUDE ItemID WHERE Items.PRICE < $PRICE"}


def _browser_path() -> str:
    path = BROWSER or "/usr/bin/chromium"
    if not Path(path).exists():
        if BROWSER:
            pytest.fail(f"PERSONALIZE_TEST_BROWSER={BROWSER} does not exist")
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def browser():
    path = _browser_path()
    if BROWSER:
        from playwright.sync_api import sync_playwright
    else:
        sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_solution):
    up = tiny_user_personalization(tmp_path_factory.mktemp("console_up"), bptt=8, limit_train_batches=3)
    popular = Predictor.from_dir(trained_solution["solution"])
    app = create_app({"up": up, "popular": popular}, {name: Filter.parse(f) for name, f in FILTERS.items()})
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("console_screenshots")


@pytest.fixture
def page(browser, server):
    """A fresh page that may load nothing but this server: any other request is recorded and aborted."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.outside_requests = []

    def route(r):
        if r.request.url.startswith(server):
            r.continue_()
        else:
            page.outside_requests.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.errors = []
    page.on("pageerror", lambda err: page.errors.append(str(err)))
    yield page
    context.close()


def api(server: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server}{path}", json=body, timeout=30)


def shown_items(page, index: int = 0) -> list[str]:
    page.wait_for_selector(f"#result-{index} [data-testid=result-table], #result-{index} .api-error")
    return page.locator(f"#result-{index} td.item-id").all_inner_texts()


def shown_column(page, name: str, index: int = 0) -> list[str]:
    headers = page.locator(f"#result-{index} th").all_inner_texts()
    column = headers.index(name) + 1
    return [page.locator(f"#result-{index} tbody tr").nth(r).locator(f"td:nth-child({column})").get_attribute("title")
            for r in range(page.locator(f"#result-{index} tbody tr").count())]


def submit(page) -> None:
    """Submit the test form and wait until its answers (and the history) are shown."""
    answered = int(page.locator("#results").get_attribute("data-answered") or 0)
    page.click("#test-submit")
    page.wait_for_selector(f"#results[data-answered='{answered + 1}']", state="attached")


def open_test_form(page, server: str, campaign: str = "up") -> None:
    page.goto(f"{server}/console/#test")
    page.wait_for_selector(f"#test-campaign option[value='{campaign}']", state="attached")
    page.select_option("#test-campaign", campaign)


def test_api_reference_works_offline(page, server, screenshots):
    page.goto(f"{server}/docs")
    page.wait_for_selector(".opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert {"/recommendations", "/personalize-ranking", "/events", "/console/api/user"} <= set(paths)
    page.screenshot(path=screenshots / "docs.png")
    page.goto(f"{server}/redoc")
    page.wait_for_selector("text=GetRecommendations")
    page.screenshot(path=screenshots / "redoc.png")
    assert page.outside_requests == [] and page.errors == []


def test_overview_shows_campaigns_data_and_solution_versions(page, server, screenshots):
    page.goto(f"{server}/console/")
    page.wait_for_selector("#campaigns-table tbody tr")
    assert page.locator("#campaigns-table tbody tr td:first-child").all_inner_texts() == ["popular", "up"]
    page.wait_for_selector("#metrics-chart svg rect.served")
    # both served solution versions are listed; the tiny User-Personalization one was saved without metrics
    assert page.locator("#versions-table tbody tr.served").count() == 2
    assert page.locator("#metrics-chart rect.served").count() == 1
    assert "Interactions" in page.locator("#dataset-groups").inner_text()
    assert page.locator("#filters-table tbody tr").count() == len(FILTERS)
    page.screenshot(path=screenshots / "overview.png", full_page=True)
    assert page.outside_requests == [] and page.errors == []


def test_the_list_is_what_the_api_answers_and_a_filter_excludes_its_items(page, server, screenshots):
    body = {"campaignArn": f"{ARN}campaign/up", "userId": "u3", "numResults": 10,
            "metadataColumns": {"ITEMS": ["GENRES"]}}
    unfiltered = api(server, "/recommendations", body).json()["itemList"]
    open_test_form(page, server)
    page.fill("#test-user", "u3")
    page.fill("#test-num", "10")
    submit(page)
    assert shown_items(page) == [i["itemId"] for i in unfiltered]
    scores = page.locator("#result-0 td.score").all_inner_texts()
    assert scores == [f"{i['score']:.4f}" for i in unfiltered]

    genre = unfiltered[0]["metadata"]["GENRES"].split("|")[0]
    page.select_option("#test-filter", "no_genre")
    page.fill("[data-parameter=GENRES]", f'"{genre}"')
    submit(page)
    filtered = api(server, "/recommendations", {**body, "filterArn": f"{ARN}filter/no_genre",
                                                "filterValues": {"GENRES": f'"{genre}"'}}).json()["itemList"]
    assert shown_items(page) == [i["itemId"] for i in filtered] and len(filtered) == 10
    assert not [g for g in shown_column(page, "GENRES") if genre in g.split("|")]
    page.screenshot(path=screenshots / "test_campaign.png", full_page=True)
    assert page.outside_requests == [] and page.errors == []


def test_history_shows_events_just_sent_and_two_campaigns_side_by_side(page, server, screenshots):
    user = "u5"
    now = time.time()
    sent = ["i2", "i8"]
    events = [{"eventType": "click", "itemId": item, "sentAt": now + k} for k, item in enumerate(sent)]
    answer = httpx.post(f"{server}/events", json={"trackingId": "t", "userId": user, "sessionId": "s-console",
                                                  "eventList": events}, timeout=30)
    assert answer.status_code == 200
    open_test_form(page, server)
    page.select_option("#test-compare", "popular")
    page.fill("#test-user", user)
    submit(page)
    page.wait_for_selector("[data-testid=history-table]")
    rows = page.locator("[data-testid=history-table] tbody tr")
    newest = [(rows.nth(r).locator("td.item-id").inner_text(), rows.nth(r).locator("td.source").inner_text())
              for r in range(2)]
    assert newest == [("i8", "streamed"), ("i2", "streamed")]
    for index, campaign in enumerate(["up", "popular"]):
        expected = api(server, "/recommendations", {"campaignArn": f"{ARN}campaign/{campaign}", "userId": user,
                                                    "numResults": 10}).json()["itemList"]
        assert shown_items(page, index) == [i["itemId"] for i in expected]
    assert not set(sent) & set(shown_items(page, 0))   # what the user just clicked is not recommended
    # genres of the list that the user's shown history has too are highlighted, the others not
    history_genres = {g for r in range(rows.count()) for g in (rows.nth(r).locator("td.meta").first.inner_text()
                                                               .split("|"))}
    cells = page.locator("#result-0 td.meta[data-column=GENRES]")
    marked = [(set(cells.nth(r).get_attribute("title").split("|")), "in-history" in cells.nth(r).get_attribute("class"))
              for r in range(cells.count())]
    assert marked and all(bool(genres & history_genres) == highlighted for genres, highlighted in marked)
    page.screenshot(path=screenshots / "test_campaign_compare.png", full_page=True)

    page.goto(f"{server}/console/#events")
    page.wait_for_selector("#events-table tbody tr")
    assert page.locator("#events-table tbody tr").first.locator("td.item-id").inner_text() == "i8"
    page.screenshot(path=screenshots / "events.png", full_page=True)
    assert page.outside_requests == [] and page.errors == []


def test_personalized_ranking_is_shown_in_the_apis_order(page, server):
    items = ["i1", "i4", "i9", "i16", "i25"]
    expected = api(server, "/personalize-ranking", {"campaignArn": f"{ARN}campaign/up", "userId": "u3",
                                                    "inputList": items}).json()["personalizedRanking"]
    open_test_form(page, server)
    page.check("input[name=mode][value=ranking]")
    page.fill("#test-user", "u3")
    page.fill("#test-input-list", ", ".join(items))
    submit(page)
    assert shown_items(page) == [i["itemId"] for i in expected] and sorted(shown_items(page)) == sorted(items)
    assert page.outside_requests == [] and page.errors == []


def test_a_bad_filter_value_shows_the_apis_message(page, server, screenshots):
    expected = api(server, "/recommendations", {"campaignArn": f"{ARN}campaign/up", "userId": "u3", "numResults": 10,
                                                "filterArn": f"{ARN}filter/cheaper_than",
                                                "filterValues": {"PRICE": '"cheap"'}})
    assert expected.status_code == 400
    open_test_form(page, server)
    page.fill("#test-user", "u3")
    page.select_option("#test-filter", "cheaper_than")
    page.fill("[data-parameter=PRICE]", '"cheap"')
    submit(page)
    page.wait_for_selector("#result-0 .api-error")
    shown = page.locator("#result-0 .api-error").inner_text()
    assert shown == f"InvalidInputException: {expected.json()['message']}"
    page.screenshot(path=screenshots / "bad_filter.png")


def test_with_an_api_key_the_pages_ask_for_it_once(browser, trained_solution):
    app = create_app({"popular": Predictor.from_dir(trained_solution["solution"])}, api_key="sesame")
    with serving(app) as url:
        context = browser.new_context()
        page = context.new_page()
        try:
            page.goto(f"{url}/console/")
            page.wait_for_selector("#key-form:not([hidden])")
            page.fill("#key-input", "sesame")
            page.click("#key-form button")
            page.wait_for_selector("#campaigns-table tbody tr")
            assert page.locator("#campaigns-table tbody td").first.inner_text() == "popular"
            page.goto(f"{url}/docs")   # the same tab's key reads the OpenAPI document
            page.wait_for_selector(".opblock-summary-path")
        finally:
            context.close()


def test_users_and_items_on_a_phone_sized_window(browser, server, screenshots):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    page = context.new_page()
    try:
        page.goto(f"{server}/console/#lookup")
        page.wait_for_selector("#lookup-campaign option[value='up']", state="attached")
        page.select_option("#lookup-campaign", "up")
        page.select_option("#lookup-kind", "items")
        page.fill("#lookup-id", "i3")
        page.click("#lookup-form button")
        page.wait_for_selector("#lookup-result table")
        assert "users have it" in page.locator("#lookup-result").inner_text()
        page.screenshot(path=screenshots / "item_phone.png", full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1   # nothing wider than the screen: wide tables scroll inside their box
    finally:
        context.close()
