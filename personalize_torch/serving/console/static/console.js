// The console's pages. Everything shown comes from this server: recommendations and rankings from the public
// API (POST /recommendations, POST /personalize-ranking, as boto3 calls them), the rest from GET /console/api/...
// No framework, no build step: DOM nodes are built with el() (text is never parsed as HTML).
"use strict";

const KEY_STORAGE = "personalize-torch-api-key";
const ARN = "arn:aws:personalize:us-east-1:000000000000:";
const MAX_METADATA_COLUMNS = 10;   // GetRecommendations' metadataColumns limit
const state = {overview: null, versions: null, campaigns: {}};

// ---- helpers ---------------------------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);

function time(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19);
}

function number(value, digits = 4) {
  if (value === null || value === undefined) return "";
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? value.toLocaleString("en-US") : value.toFixed(digits);
}

function table(columns, rows, attrs) {
  return el("div", {class: "scroll"}, el("table", {class: "grid", ...(attrs || {})},
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c)))),
    el("tbody", {}, rows)));
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function keyValues(map) {
  const entries = Object.entries(map || {});
  if (!entries.length) return el("span", {class: "hint"}, "none");
  return el("dl", {class: "kv"}, entries.map(([k, v]) => [el("dt", {}, k),
    el("dd", {}, typeof v === "object" && v !== null ? JSON.stringify(v) : number(v))]));
}

function metadataCells(columns, metadata) {
  return columns.map((c) => el("td", {class: "meta", "data-column": c, title: (metadata || {})[c] || ""},
    (metadata || {})[c] || ""));
}

function lastSegment(name) {
  return name.replace(/\/+$/, "").split("/").pop();
}

// ---- the API ---------------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(type, message, status) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

async function call(method, path, body) {
  const headers = {};
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) headers["x-api-key"] = key;
  if (body !== undefined) headers["content-type"] = "application/json";
  const answer = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  const text = await answer.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (err) {
    data = null;
  }
  if (!answer.ok) {
    const type = (data && data.__type) || answer.headers.get("x-amzn-ErrorType") || `HTTP ${answer.status}`;
    const message = (data && data.message) || text || answer.statusText;
    if (type === "UnrecognizedClientException") askForKey();
    throw new ApiError(type, message, answer.status);
  }
  return data;
}

const get = (path, params) => call("GET", params ? `${path}?${new URLSearchParams(params)}` : path);

function askForKey() {
  $("key-form").hidden = false;
  $("key-input").focus();
}

function errorBox(err) {
  return el("div", {class: "error api-error", role: "alert"},
    el("strong", {}, err.type || "Error"), ": ", err.message);
}

function showPageError(err) {
  const box = $("page-error");
  box.replaceChildren(errorBox(err));
  box.hidden = false;
}

// ---- tabs ------------------------------------------------------------------------------------------------
function showTab() {
  const name = (location.hash || "#overview").slice(1).split("?")[0];
  const known = document.querySelectorAll("section.tab");
  let shown = false;
  for (const section of known) {
    section.hidden = section.id !== name;
    shown = shown || !section.hidden;
  }
  if (!shown) $("overview").hidden = false;
  for (const link of document.querySelectorAll(".tabs a[data-tab]")) {
    link.classList.toggle("active", link.dataset.tab === (shown ? name : "overview"));
  }
  if (name === "events") loadEvents();
}

// ---- overview --------------------------------------------------------------------------------------------
function renderOverview(overview) {
  fill($("campaigns-table").tBodies[0], overview.campaigns.map((c) => el("tr", {},
    el("td", {}, el("a", {href: "#test", onclick: () => selectCampaign(c.name)}, c.name)),
    el("td", {}, c.recipe), el("td", {class: "path"}, c.solutionVersion), el("td", {}, c.created || ""),
    el("td", {}, keyValues(c.settings)))));
  $("campaign-details").replaceChildren(...overview.campaigns.map((c) => el("details", {class: "card"},
    el("summary", {}, `${c.name}: hyperparameters and offline metrics`),
    el("div", {class: "two-columns"},
      el("div", {}, el("h4", {}, "Personalize metrics"), keyValues(c.personalizeMetrics)),
      el("div", {}, el("h4", {}, "Hyperparameters"), keyValues(c.hyperparameters))))));

  const groups = new Map();
  for (const c of overview.campaigns) {
    const key = c.datasetGroup.fingerprint || c.name;
    if (!groups.has(key)) groups.set(key, {group: c.datasetGroup, campaigns: []});
    groups.get(key).campaigns.push(c.name);
  }
  $("dataset-groups").replaceChildren(...[...groups.values()].map(({group, campaigns}) => el("div", {class: "card"},
    el("p", {}, el("strong", {}, group.name || "data"), ` (fingerprint ${group.fingerprint || "?"}), trained on by `,
      campaigns.join(", ")),
    el("p", {}, `${number(group.users)} users with a history; events from ${time(group.firstEvent)} to `,
      `${time(group.lastEvent)} UTC; event types: ${group.eventTypes.join(", ") || "none"}`,
      Object.keys(group.contextFields).length ? `; context: ${Object.entries(group.contextFields)
        .map(([k, v]) => `${k} (${v.join(", ")})`).join("; ")}` : ""),
    table(["dataset", "rows", "fields"], group.datasets.map((d) => el("tr", {},
      el("td", {}, d.name), el("td", {class: "number"}, number(d.rows)),
      el("td", {}, d.fields.map((f) => el("span", {class: "field"}, f.name,
        el("small", {}, ` ${f.type}${f.flags.length ? ", " + f.flags.join(", ") : ""}`))))))))));

  fill($("filters-table").tBodies[0], overview.filters.length ? overview.filters.map((f) => el("tr", {},
    el("td", {}, f.name), el("td", {class: "code"}, f.expression),
    el("td", {}, f.parameters.map((p) => "$" + p).join(", ")))) :
    [el("tr", {}, el("td", {colspan: 3, class: "hint"}, "No filters (serve.py filters={name: expression})."))]);
}

function renderVersions() {
  const served = new Set(state.overview.campaigns.map((c) => c.datasetGroup.fingerprint));
  const versions = state.versions.solutionVersions.filter((v) => !$("same-data").checked
    || served.has(v.dataFingerprint));
  const names = [...new Set(versions.flatMap((v) => Object.keys(v.metrics)))].sort();
  const select = $("metric-select");
  const chosen = select.value || names.find((n) => n.startsWith("normalized_discounted_cumulative_gain_at_10"))
    || names[0] || "";
  select.replaceChildren(...names.map((n) => el("option", {value: n, selected: n === chosen}, n)));
  const values = versions.map((v) => v.metrics[chosen]);
  const max = Math.max(1e-9, ...values.filter((v) => typeof v === "number"));
  const rowHeight = 22;
  const width = 600;
  const labelWidth = 260;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${Math.max(1, versions.length) * rowHeight + 4}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${chosen} of each solution version`);
  versions.forEach((v, i) => {
    const y = i * rowHeight + 2;
    const value = values[i];
    const add = (tag, attrs, text) => {
      const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
      for (const [k, val] of Object.entries(attrs)) node.setAttribute(k, val);
      if (text !== undefined) node.textContent = text;
      svg.append(node);
      return node;
    };
    const label = `${v.path.split("/").slice(-2).join("/")} (${v.recipe || "?"})`;
    add("text", {x: labelWidth - 6, y: y + 15, "text-anchor": "end", class: "bar-label"},
      label.length > 42 ? "…" + label.slice(-41) : label).append(
      Object.assign(document.createElementNS("http://www.w3.org/2000/svg", "title"), {textContent: v.path}));
    if (typeof value === "number") {
      const w = Math.max(1, (width - labelWidth - 60) * value / max);
      add("rect", {x: labelWidth, y: y + 3, width: w, height: rowHeight - 6,
        class: v.campaigns.length ? "bar served" : "bar"});
      add("text", {x: labelWidth + w + 4, y: y + 15, class: "bar-value"}, value.toFixed(4));
    }
  });
  $("metrics-chart").replaceChildren(versions.length ? svg :
    el("p", {class: "hint"}, "No solution versions found."));
  fill($("versions-table").tBodies[0], versions.map((v) => el("tr", {class: v.campaigns.length ? "served" : ""},
    el("td", {class: "path"}, v.path), el("td", {}, v.recipe || ""), el("td", {}, v.created || ""),
    el("td", {}, v.dataFingerprint || ""), el("td", {}, v.campaigns.join(", ")),
    el("td", {class: "number"}, number(v.metrics[chosen])))));
}

async function loadOverview() {
  state.overview = await get("/console/api/overview");
  for (const c of state.overview.campaigns) state.campaigns[c.name] = c;
  renderOverview(state.overview);
  fillCampaignSelects();
  fillFilterSelects();
  get("/console/api/solution-versions").then((versions) => {
    state.versions = versions;
    renderVersions();
  }).catch(showPageError);
}

// ---- test a campaign -------------------------------------------------------------------------------------
function fillCampaignSelects() {
  const names = state.overview.campaigns.map((c) => c.name);
  for (const id of ["test-campaign", "lookup-campaign"]) {
    $(id).replaceChildren(...names.map((n) => el("option", {value: n}, n)));
  }
  $("test-compare").replaceChildren(el("option", {value: ""}, "(none)"),
    ...names.map((n) => el("option", {value: n}, n)));
  renderContextInputs();
}

function fillFilterSelects() {
  for (const id of ["test-filter", "promo-filter"]) {
    $(id).replaceChildren(el("option", {value: ""}, "(none)"),
      ...state.overview.filters.map((f) => el("option", {value: f.name}, f.name)));
  }
}

function selectCampaign(name) {
  $("test-campaign").value = name;
  renderContextInputs();
}

function renderFilterValues(selectId, boxId) {
  const filter = state.overview.filters.find((f) => f.name === $(selectId).value);
  $(boxId).replaceChildren(...(filter ? filter.parameters : []).map((p) => el("label", {},
    `$${p} `, el("input", {"data-parameter": p, name: `${boxId}-${p}`, placeholder: '"value" or "a","b"'}))));
}

function renderContextInputs() {
  const campaign = state.campaigns[$("test-campaign").value];
  const fields = campaign ? campaign.datasetGroup.contextFields : {};
  $("test-context").replaceChildren(...Object.entries(fields).map(([name, values]) => el("label", {},
    `Context ${name} `, el("select", {"data-context": name, name: `context-${name}`},
      el("option", {value: ""}, "(none)"), values.map((v) => el("option", {value: v}, v))))));
}

function mode() {
  return document.querySelector("input[name=mode]:checked").value;
}

function showModeFields() {
  const current = mode();
  for (const node of document.querySelectorAll("#test-form [data-mode]")) {
    node.hidden = !node.dataset.mode.split(" ").includes(current);
  }
  $("test-submit").textContent = current === "ranking" ? "Rank the items" : "Get recommendations";
}

function values(boxId, attribute) {
  const out = {};
  for (const input of $(boxId).querySelectorAll(`[${attribute}]`)) {
    if (input.value !== "") out[input.getAttribute(attribute)] = input.value;
  }
  return Object.keys(out).length ? out : undefined;
}

function buildRequest(campaignName) {
  const campaign = state.campaigns[campaignName];
  const columns = campaign.datasetGroup.itemColumns.slice(0, MAX_METADATA_COLUMNS);
  const body = {campaignArn: `${ARN}campaign/${campaignName}`};
  const userId = $("test-user").value.trim();
  const current = mode();
  if (userId) body.userId = userId;
  if (current === "related") body.itemId = $("test-item").value.trim();
  if (current === "ranking") body.inputList = $("test-input-list").value.split(/[\s,]+/).filter(Boolean);
  else body.numResults = Number($("test-num").value);
  const filter = $("test-filter").value;
  if (filter) {
    body.filterArn = `${ARN}filter/${filter}`;
    const filterValues = values("test-filter-values", "data-parameter");
    if (filterValues) body.filterValues = filterValues;
  }
  const context = values("test-context", "data-context");
  if (context) body.context = context;
  const promotion = $("promo-name").value.trim();
  if (promotion && current !== "ranking") {
    const p = {name: promotion, percentPromotedItems: Number($("promo-percent").value)};
    if ($("promo-filter").value) p.filterArn = `${ARN}filter/${$("promo-filter").value}`;
    const promoValues = values("promo-filter-values", "data-parameter");
    if (promoValues) p.filterValues = promoValues;
    body.promotions = [p];
  }
  if (columns.length) body.metadataColumns = {ITEMS: columns};
  return {path: current === "ranking" ? "/personalize-ranking" : "/recommendations", body, columns};
}

function resultPanel(campaignName, index, request, answer, error) {
  const panel = el("div", {class: "result card", id: `result-${index}`, "data-campaign": campaignName});
  const campaign = state.campaigns[campaignName];
  panel.append(el("h3", {}, `${campaignName} `, el("small", {}, `${campaign.recipe}, ${campaign.created || ""}`)));
  if (error) {
    panel.append(errorBox(error));
  } else {
    const list = answer.itemList || answer.personalizedRanking || [];
    panel.append(el("p", {class: "hint"}, `${list.length} items; recommendationId ${answer.recommendationId || ""}`));
    panel.append(table(["#", "item", "score", "reason", ...request.columns], list.map((item, i) => el("tr", {},
      el("td", {class: "number"}, i + 1),
      el("td", {class: "item-id"}, el("a", {href: "#lookup", onclick: () => lookUp("items", item.itemId, campaignName)},
        item.itemId)),
      el("td", {class: "number score"}, item.score === undefined || item.score === null ? "" : item.score.toFixed(4)),
      el("td", {}, [item.promotionName, ...(item.reason || [])].filter(Boolean).join("; ")),
      ...metadataCells(request.columns, item.metadata))), {"data-testid": "result-table"}));
  }
  panel.append(el("details", {}, el("summary", {}, `Request: POST ${request.path}`),
    el("pre", {class: "code"}, JSON.stringify(request.body, null, 2))));
  return panel;
}

async function runTest(event) {
  event.preventDefault();
  const names = [$("test-campaign").value, $("test-compare").value].filter(Boolean);
  const unique = [...new Set(names)];
  $("results").classList.toggle("compare", unique.length > 1);
  $("results").replaceChildren(el("p", {class: "hint"}, "Asking the API…"));
  const panels = await Promise.all(unique.map(async (name, index) => {
    const request = buildRequest(name);
    try {
      return resultPanel(name, index, request, await call("POST", request.path, request.body));
    } catch (err) {
      return resultPanel(name, index, request, null, err);
    }
  }));
  $("results").replaceChildren(...panels);
  markHistoryValues(await loadHistory(unique[0]));
  // how many requests have been answered and shown (a test or a person can tell a new answer from the last)
  $("results").dataset.answered = Number($("results").dataset.answered || 0) + 1;
}

async function loadHistory(campaignName) {
  const body = $("history-body");
  const userId = $("test-user").value.trim();
  const parts = [];
  if (mode() === "related" && $("test-item").value.trim()) {
    try {
      const item = await get("/console/api/item", {campaign: campaignName, itemId: $("test-item").value.trim(),
        limit: 5});
      parts.push(el("h4", {}, `Item ${item.itemId}`), item.known ? keyValues(item.metadata) :
        el("p", {class: "hint"}, "The solution version does not know this item."));
    } catch (err) {
      parts.push(errorBox(err));
    }
  }
  let user = null;
  if (userId) {
    try {
      user = await get("/console/api/user", {campaign: campaignName, userId, limit: 25});
      parts.push(historyTable(user));
    } catch (err) {
      parts.push(errorBox(err));
    }
  } else if (!parts.length) {
    parts.push(el("p", {class: "hint"}, "No user: no history."));
  }
  body.replaceChildren(...parts);
  return user;
}

// Categorical metadata values of the recommended items that also occur in the user's recent history (a genre, ...)
// are highlighted: a person sees at a glance how the list relates to what the user did.
function markHistoryValues(user) {
  if (!user) return;
  const categorical = new Set(state.overview.campaigns.flatMap((c) => c.datasetGroup.datasets)
    .filter((d) => d.name === "Items").flatMap((d) => d.fields)
    .filter((f) => f.flags.includes("categorical")).map((f) => f.name));
  const seen = new Set();
  for (const event of user.history) {
    for (const [column, value] of Object.entries(event.metadata)) {
      for (const part of value.split("|")) seen.add(`${column}\u0000${part}`);
    }
  }
  for (const cell of document.querySelectorAll("#results td.meta[data-column]")) {
    if (!categorical.has(cell.dataset.column)) continue;
    const parts = (cell.getAttribute("title") || "").split("|").filter(Boolean);
    cell.classList.toggle("in-history", parts.some((p) => seen.has(`${cell.dataset.column}\u0000${p}`)));
  }
}

function historyTable(user) {
  const columns = (state.campaigns[user.campaign] || {datasetGroup: {itemColumns: []}}).datasetGroup.itemColumns
    .slice(0, 4);
  return el("div", {},
    el("h4", {}, `User ${user.userId}`),
    el("p", {class: "hint"}, user.known ? `${user.storedEvents} stored events` : "No stored history (a new user)",
      `; ${user.streamedEvents} streamed`),
    keyValues(user.metadata),
    table(["time (UTC)", "source", "event", "item", ...columns], user.history.map((e) => el("tr",
      {class: e.source},
      el("td", {}, time(e.timestamp)), el("td", {class: "source"}, e.source), el("td", {}, e.eventType || ""),
      el("td", {class: "item-id"}, e.itemId || ""), ...metadataCells(columns, e.metadata))),
    {"data-testid": "history-table"}));
}

// ---- users and items -------------------------------------------------------------------------------------
let searchTimer = null;

function searchIds(input, list, kind, campaign) {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    try {
      const found = await get("/console/api/ids", {kind, prefix: input.value, campaign, limit: 20});
      $(list).replaceChildren(...found.ids.map((id) => el("option", {value: id})));
    } catch (err) {
      // suggestions only: an error here shows nothing
    }
  }, 200);
}

function lookUp(kind, id, campaign) {
  $("lookup-kind").value = kind;
  $("lookup-id").value = id;
  if (campaign) $("lookup-campaign").value = campaign;
  location.hash = "#lookup";
  runLookup();
}

async function runLookup(event) {
  if (event) event.preventDefault();
  const kind = $("lookup-kind").value;
  const id = $("lookup-id").value.trim();
  const campaign = $("lookup-campaign").value;
  const out = $("lookup-result");
  if (!id) {
    out.replaceChildren(el("p", {class: "hint"}, "Type an id."));
    return;
  }
  try {
    if (kind === "users") {
      const user = await get("/console/api/user", {campaign, userId: id, limit: 100});
      out.replaceChildren(el("p", {}, el("a", {href: "#test", onclick: () => testUser(user.userId, campaign)},
        `Test ${campaign} for this user`)), historyTable(user));
    } else {
      const item = await get("/console/api/item", {campaign, itemId: id, limit: 20});
      const columns = state.campaigns[campaign].datasetGroup.itemColumns.slice(0, 4);
      out.replaceChildren(
        el("h4", {}, `Item ${item.itemId}`),
        item.known ? el("div", {},
          keyValues(item.metadata),
          el("p", {}, `${number(item.users)} users have it in their stored history (${number(item.events)} events). `,
            el("a", {href: "#test", onclick: () => testRelated(item.itemId, campaign)}, "Related items")),
          el("h4", {}, "Most often in the same users' histories"),
          table(["item", "users with both", ...columns], item.coOccurring.map((c) => el("tr", {},
            el("td", {class: "item-id"}, el("a", {href: "#lookup", onclick: () => lookUp("items", c.itemId, campaign)},
              c.itemId)),
            el("td", {class: "number"}, number(c.users)), ...metadataCells(columns, c.metadata))))) :
          el("p", {class: "hint"}, "The solution version does not know this item."));
    }
  } catch (err) {
    out.replaceChildren(errorBox(err));
  }
}

function testUser(userId, campaign) {
  selectCampaign(campaign);
  document.querySelector("input[name=mode][value=user]").checked = true;
  $("test-user").value = userId;
  showModeFields();
}

function testRelated(itemId, campaign) {
  selectCampaign(campaign);
  document.querySelector("input[name=mode][value=related]").checked = true;
  $("test-item").value = itemId;
  showModeFields();
}

// ---- events ----------------------------------------------------------------------------------------------
async function loadEvents(event) {
  if (event) event.preventDefault();
  try {
    const page = await get("/console/api/events", {limit: $("events-limit").value});
    $("events-total").textContent = `${number(page.total)} events in the event store; the latest first.`;
    fill($("events-table").tBodies[0], page.events.map((e) => el("tr", {},
      el("td", {}, time(e.receivedAt)), el("td", {}, time(e.sentAt)), el("td", {class: "user-id"}, e.userId || ""),
      el("td", {}, e.sessionId), el("td", {}, e.eventType), el("td", {class: "item-id"}, e.itemId || ""),
      el("td", {class: "number"}, number(e.eventValue)), el("td", {}, e.recommendationId || ""),
      el("td", {class: "code"}, e.properties || ""))));
  } catch (err) {
    $("events-total").replaceChildren(errorBox(err));
  }
}

// ---- start -----------------------------------------------------------------------------------------------
function start() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $("key-input").value);
    $("key-form").hidden = true;
    $("page-error").hidden = true;
    loadOverview().catch(showPageError);
  });
  window.addEventListener("hashchange", showTab);
  $("test-form").addEventListener("submit", runTest);
  $("test-campaign").addEventListener("change", renderContextInputs);
  $("test-filter").addEventListener("change", () => renderFilterValues("test-filter", "test-filter-values"));
  $("promo-filter").addEventListener("change", () => renderFilterValues("promo-filter", "promo-filter-values"));
  for (const radio of document.querySelectorAll("input[name=mode]")) radio.addEventListener("change", showModeFields);
  $("test-user").addEventListener("input", (e) => searchIds(e.target, "user-ids", "users", $("test-campaign").value));
  $("test-item").addEventListener("input", (e) => searchIds(e.target, "item-ids", "items", $("test-campaign").value));
  $("lookup-id").addEventListener("input", (e) => searchIds(e.target, "lookup-ids", $("lookup-kind").value,
    $("lookup-campaign").value));
  $("lookup-form").addEventListener("submit", runLookup);
  $("events-form").addEventListener("submit", loadEvents);
  $("metric-select").addEventListener("change", renderVersions);
  $("same-data").addEventListener("change", renderVersions);
  showModeFields();
  showTab();
  loadOverview().catch(showPageError);
}

start();
