// The API reference pages (/docs: Swagger UI, /redoc: ReDoc), both drawn from the server's /openapi.json.
// With an API key set on the server, the document and "Try it out" calls carry the key the console keeps
// for this browser tab (sessionStorage), or the one typed into the form this page shows on a 403.
"use strict";

const KEY_STORAGE = "personalize-torch-api-key";

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

function showError(message) {
  const box = document.getElementById("api-docs-error");
  box.textContent = message;
  box.hidden = false;
}

async function loadDocument() {
  const key = apiKey();
  const answer = await fetch("/openapi.json", {headers: key ? {"x-api-key": key} : {}});
  if (answer.status === 403) {
    const form = document.getElementById("key-form");
    form.hidden = false;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY_STORAGE, document.getElementById("key-input").value);
      location.reload();
    });
    return null;
  }
  if (!answer.ok) {
    throw new Error(`GET /openapi.json answered ${answer.status}`);
  }
  return answer.json();
}

function render(spec) {
  if (document.body.dataset.viewer === "redoc") {
    Redoc.init(spec, {hideDownloadButton: false}, document.getElementById("redoc"));
    return;
  }
  SwaggerUIBundle({
    spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    requestInterceptor: (request) => {
      const key = apiKey();
      if (key) request.headers["x-api-key"] = key;
      return request;
    },
  });
}

loadDocument().then((spec) => spec && render(spec)).catch((err) => showError(String(err)));
