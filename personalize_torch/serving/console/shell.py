"""The console's static shell: its pages and their files, /docs and /redoc, answered before the access controls.

These files hold no data (the pages fetch everything from the API and `/console/api`, with the API key when
the server has one), so a browser can open them without a key: `ConsoleShell` is a plain ASGI middleware,
added outermost, that answers GET and HEAD of exactly these paths from memory and passes every other request
on. A Content-Security-Policy keeps the pages to this server: nothing is loaded from anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

HERE = resources.files("personalize_torch.serving.console")
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".png": "image/png", ".txt": "text/plain; charset=utf-8",
                 "": "text/plain; charset=utf-8", ".md": "text/plain; charset=utf-8"}
PAGES = {"/console/": "static/index.html", "/docs": "static/docs.html", "/redoc": "static/redoc.html"}
STATIC = ["console.js", "console.css", "api_docs.js"]
VENDOR = {"swagger-ui": ["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE", "NOTICE",
                         "swagger-ui-bundle.js.LICENSE.txt"],
          "redoc": ["redoc.standalone.js", "LICENSE", "redoc.standalone.js.LICENSE.txt"]}
REDIRECTS = {"/": "/console/", "/console": "/console/"}
CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
       "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'self'; base-uri 'self'; form-action 'self'")


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    cache: str   # Cache-Control


def _asset(relative: str, cache: str) -> Asset:
    suffix = "." + relative.rsplit(".", 1)[1] if "." in relative.rsplit("/", 1)[-1] else ""
    return Asset(HERE.joinpath(relative).read_bytes(), CONTENT_TYPES[suffix], cache)


def load_shell() -> dict[str, Asset]:
    """Every file the shell serves, by URL path (FileNotFoundError when the package lacks one)."""
    assets = {path: _asset(file, "no-cache") for path, file in PAGES.items()}
    assets.update({f"/console/static/{name}": _asset(f"static/{name}", "no-cache") for name in STATIC})
    assets.update({f"/console/vendor/{folder}/{name}": _asset(f"vendor/{folder}/{name}", "max-age=86400")
                   for folder, names in VENDOR.items() for name in names})
    return assets


class ConsoleShell:
    """Answers GET / HEAD of the shell's paths (`assets`, and redirects to /console/); passes on the rest."""

    def __init__(self, app, assets: dict[str, Asset]):
        self.app, self.assets = app, assets

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        asset = self.assets.get(path)
        if asset is not None:
            headers = [(b"content-type", asset.content_type.encode()),
                       (b"content-length", str(len(asset.body)).encode()), (b"cache-control", asset.cache.encode()),
                       (b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": asset.body if scope["method"] == "GET" else b""})
            return
        target = REDIRECTS.get(path)
        if target is not None:
            await send({"type": "http.response.start", "status": 307,
                        "headers": [(b"location", target.encode()), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)
