"""`create_app(settings)`: the FastAPI app with its pages, REST API, static files and error handling;
`app_from_environment()`: the same for `uvicorn --factory` in each worker of `closewise serve --workers N`.

Errors: a domain error becomes one message with the status it deserves (400/422 bad input, 401 no or expired
credentials, 403 not allowed, 404 missing or out of scope, 409 conflict) — JSON `{"detail", "where"}` under
`/api`, a page elsewhere. A page request without a live session is sent to the sign-in form.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from closewise.errors import AuthError, CloseWiseError, Conflict, DatabaseError, Forbidden, InvalidInput, NotFound
from closewise.services.auth import LoginThrottle, PrincipalCache
from closewise.services.database import open_database
from closewise.services.forecast_view import ForecastViews
from closewise.services.jobs import JobRunner
from closewise.settings import Settings, load_settings
from closewise.web import routes
from closewise.web.deps import LoginRequired, Unauthenticated
from closewise.web.render import make_templates, page

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("closewise.web")

# Scripts only from this server; Plotly sets inline styles on its SVG, hence style-src 'unsafe-inline'.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
# `closewise serve --workers N` hands its settings to each worker process through this variable (JSON).
SETTINGS_VARIABLE: Final = "CLOSEWISE_SERVE_SETTINGS"


def create_app(settings: Settings, *, engine: Engine | None = None) -> FastAPI:
    """The app on `engine` (default: the settings' database, which must be initialised)."""
    owned = engine is None
    database = engine if engine is not None else open_database(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.jobs.shutdown()
        if owned:
            database.dispose()

    app = FastAPI(
        title="Closewise",
        version="0.1.0",
        description="Revenue forecasting, pipeline hygiene and coaching. Every `/api` route except "
                    "`POST /api/auth/token` needs `Authorization: Bearer <token>`; records outside the caller's "
                    "visibility answer 404.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = database
    app.state.templates = make_templates()
    app.state.jobs = JobRunner()
    app.state.throttle = LoginThrottle()
    app.state.principals = PrincipalCache()
    app.state.forecast_views = ForecastViews(app.state.jobs)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/static-vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(_plotly_file(), media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    app.add_middleware(SecurityHeaders)
    _handlers(app)
    routes.include_all(app)
    _document_errors(app)
    return app


def app_from_environment() -> FastAPI:
    """The app of one `closewise serve --workers N` worker: the settings the command was given (JSON in
    `CLOSEWISE_SERVE_SETTINGS`), or else those of the environment (`CLOSEWISE_DATABASE_URL`)."""
    raw = os.environ.get(SETTINGS_VARIABLE)
    if not raw:
        return create_app(load_settings())
    given = json.loads(raw)
    known = {field.name for field in fields(Settings)}
    return create_app(Settings(**{key: value for key, value in given.items() if key in known}))


def settings_environment(settings: Settings) -> dict[str, str]:
    """The environment that makes `app_from_environment` build the app of `settings`."""
    return {SETTINGS_VARIABLE: json.dumps(asdict(settings))}


class SecurityHeaders:
    """Adds the security headers to every response (and `Cache-Control: no-store` under `/api`) unless the
    response set them itself. A plain ASGI middleware: Starlette's `BaseHTTPMiddleware` runs each request through
    extra tasks and memory streams, which cost more than the rest of a small API answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._common = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in _HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._common
        if str(scope.get("path", "")).startswith("/api"):
            extra = [*extra, (b"cache-control", b"no-store")]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in extra if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


_ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "What is wrong, in one line."},
        "where": {"anyOf": [{"type": "string"}, {"type": "null"}],
                  "description": "The field, parameter or place at fault, when there is one."},
        "errors": {"type": "array", "items": {"type": "object"},
                   "description": "For a request that does not fit the schema: each problem found."},
    },
}


def _document_errors(app: FastAPI) -> None:
    """The OpenAPI document tells the truth about errors: every error body is `{"detail", "where"}` (FastAPI's
    default 422 schema is replaced), and an operation with a body also answers 400 when the body cannot be
    parsed at all."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(title=app.title, version=app.version, description=app.description,
                               routes=app.routes)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["HTTPValidationError"] = _ERROR_SCHEMA
        schemas["Error"] = _ERROR_SCHEMA
        reference = {"$ref": "#/components/schemas/Error"}
        for path in document.get("paths", {}).values():
            for operation in path.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                if "requestBody" in operation:
                    responses.setdefault("400", {"description": "the body could not be parsed"})
                for code, response in responses.items():
                    if code.startswith(("4", "5")) and "content" not in response:
                        response["content"] = {"application/json": {"schema": reference}}
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _plotly_file() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _status(exc: CloseWiseError) -> int:
    if isinstance(exc, Unauthenticated):
        return 401
    if isinstance(exc, Forbidden | AuthError):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, InvalidInput):
        return 422
    if isinstance(exc, DatabaseError):
        return 503
    return 400


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api")


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(CloseWiseError)
    async def domain_error(request: Request, exc: CloseWiseError) -> Response:
        status = _status(exc)
        if _is_api(request):
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            body: dict[str, Any] = {"detail": exc.message, "where": exc.where}
            extra = getattr(exc, "payload", None)
            if isinstance(extra, dict):
                body.update(extra)
            return JSONResponse(body, status_code=status, headers=headers)
        if request.headers.get("HX-Request"):
            return page(request, "partials/error.html", None, title="Error", status_code=status,
                        message=str(exc))
        return page(request, "error.html", None, title="Something is wrong", status_code=status, message=str(exc))

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        target = "/login" if exc.next_path in ("/", "") else f"/login?next={_quote(exc.next_path)}"
        if request.headers.get("HX-Request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
        message = str(first.get("msg", "invalid request"))
        if _is_api(request):
            return JSONResponse({"detail": message, "where": where or None, "errors": _plain(exc.errors())},
                                status_code=422)
        return page(request, "error.html", None, title="Something is wrong", status_code=422,
                    message=f"{where}: {message}" if where else message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request) or exc.status_code < 400:
            return JSONResponse({"detail": exc.detail, "where": None}, status_code=exc.status_code,
                                headers=getattr(exc, "headers", None))
        message = "there is no such page" if exc.status_code == 404 else str(exc.detail)
        return page(request, "error.html", None, title="Something is wrong", status_code=exc.status_code,
                    message=message)


def _plain(errors: Any) -> list[dict[str, Any]]:
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in errors]


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")
