"""`register_console`: the console's pages, its JSON routes and the API reference, added to the HTTP app."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI

from personalize_torch.filters import Filter
from personalize_torch.serving.console.api_routes import ConsoleApi, register_api_routes
from personalize_torch.serving.console.shell import ConsoleShell, load_shell


def register_console(app: FastAPI, filters: Mapping[str, Filter] | None = None,
                     roots: list[str | Path | None] | None = None) -> None:
    """Add the console to `app` (whose `app.state.campaigns` and `app.state.events` it reads): its JSON routes
    under /console/api (behind the API key, like the API), and its static pages, /docs and /redoc as the
    outermost middleware (`shell`), so a browser opens them without a key. Call it after the other middleware
    is added. `filters`: the server's named filters (listed for the test form); `roots`: directories searched
    for solution versions besides the served ones' (the deploy and update roots). Raises FileNotFoundError
    when a file of the pages is missing from the installed package."""
    assets = load_shell()   # read now: a broken install fails at start, not in a browser
    api = ConsoleApi(app.state.campaigns, app.state.events, dict(filters or {}),
                     [Path(r) for r in (roots or []) if r is not None])
    register_api_routes(app, api)
    app.add_middleware(ConsoleShell, assets=assets)
