"""The console's pages and assets, and the offline ``/docs`` and ``/redoc``.

Everything is served from files inside installed packages: the console's own HTML, CSS
and ES modules from ``control_plane/console/static`` (package data, no build step), and
Swagger UI and ReDoc from the ``fastapi-offline`` distribution's static directory. No
page loads anything from another origin, so the console and the API docs work on a
machine without internet access.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSETS_PATH = "/console/assets"
VENDOR_PATH = "/console/vendor"
PAGES = {"/console": "index.html", "/console/chat": "chat.html"}
_NO_STORE = {"Cache-Control": "no-cache"}
REDOC_JS = "redoc.standalone.js"
REDOC_LOGO_URL = "https://cdn.redoc.ly/redoc/logo-mini.svg"
EMPTY_SVG = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"


def vendor_dir() -> Path:
    """The directory holding Swagger UI's and ReDoc's files (``fastapi-offline``)."""
    return Path(str(resources.files("fastapi_offline") / "static"))


def mount_pages(app: FastAPI) -> None:
    """Serve the console's pages and assets, and ``/docs`` / ``/redoc`` from local files.

    The app must have been created with ``docs_url=None, redoc_url=None``.
    """
    app.mount(ASSETS_PATH, StaticFiles(directory=STATIC_DIR), name="console-assets")
    _add_offline_redoc(app)  # before the vendor mount, which would serve the original
    app.mount(VENDOR_PATH, StaticFiles(directory=vendor_dir()), name="console-vendor")
    for path, filename in PAGES.items():
        _add_page(app, path, STATIC_DIR / filename)
    _add_docs(app)


def _add_page(app: FastAPI, path: str, file: Path) -> None:
    async def page() -> FileResponse:
        return FileResponse(file, media_type="text/html", headers=_NO_STORE)

    app.add_api_route(path, page, methods=["GET"], include_in_schema=False)


def offline_redoc() -> bytes:
    """ReDoc's bundle with its one online resource (the "API docs by Redocly" logo from
    a CDN) replaced by an empty inline image, so ``/redoc`` makes no outside request."""
    source = (vendor_dir() / REDOC_JS).read_bytes()
    return source.replace(REDOC_LOGO_URL.encode(), EMPTY_SVG.encode())


def _add_offline_redoc(app: FastAPI) -> None:
    bundle = offline_redoc()

    async def redoc_js() -> Response:
        return Response(bundle, media_type="text/javascript")

    app.add_api_route(
        f"{VENDOR_PATH}/{REDOC_JS}", redoc_js, methods=["GET"], include_in_schema=False
    )


def _add_docs(app: FastAPI) -> None:
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect = "/docs/oauth2-redirect"
    favicon = f"{VENDOR_PATH}/favicon.png"

    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=oauth2_redirect,
            swagger_js_url=f"{VENDOR_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR_PATH}/swagger-ui.css",
            swagger_favicon_url=favicon,
            # Swagger UI would otherwise ask an online validator about the document.
            swagger_ui_parameters={"validatorUrl": None},
        )

    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{VENDOR_PATH}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )

    app.add_api_route("/docs", swagger, methods=["GET"], include_in_schema=False)
    app.add_api_route(oauth2_redirect, swagger_redirect, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
