"""The web console: pages served by serve.py on the API's port, for a person checking what a campaign
recommends to whom and why.

- `GET /console/` (and `GET /`): the pages (static HTML, JS and CSS from `static/`, no build step, nothing
  fetched from outside the machine): the dataset group and campaigns, testing a campaign, users and items,
  the latest events. Answers to "test a campaign" come from the public API the boto3 clients call
  (`POST /recommendations`, `POST /personalize-ranking`), called by the page itself.
- `GET /console/api/...`: the read-only JSON the pages need beyond the public API (the overview, the solution
  versions found under the server's roots, item and user look-ups, the latest events); behind the API key
  like every API call (`api_routes`).
- `GET /docs` and `GET /redoc`: the API reference, with Swagger UI's and ReDoc's files served from `vendor/`.

`register_console(app, ...)` adds all of it to the HTTP app (`serving.http.app.create_app`).
"""

from personalize_torch.serving.console.register import register_console

__all__ = ["register_console"]
