"""Request dependencies: the engine, the signed-in user (bearer token for `/api`, session cookie for pages),
and the CSRF check every page form and htmx request passes.

They are `async`: FastAPI runs a plain `def` dependency in the thread pool, a hop that costs more than these
lookups. The signed-in user comes from the app's `PrincipalCache` when it holds the credential (no database
work); otherwise the database lookup runs in the thread pool like any blocking call.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from closewise.domain.scope import Action
from closewise.errors import AuthError, Forbidden
from closewise.services import auth
from closewise.services.auth import Principal, PrincipalCache
from closewise.services.jobs import JobRunner
from closewise.settings import Settings

SESSION_COOKIE = "closewise_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

_bearer = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


class Unauthenticated(AuthError):
    """No valid credentials: the API answers 401, a page sends the browser to the sign-in form."""


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path
        super().__init__(next_path)


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_jobs(request: Request) -> JobRunner:
    jobs: JobRunner = request.app.state.jobs
    return jobs


async def get_throttle(request: Request) -> auth.LoginThrottle:
    throttle: auth.LoginThrottle = request.app.state.throttle
    return throttle


def _principals(request: Request) -> PrincipalCache:
    cache: PrincipalCache = request.app.state.principals
    return cache


EngineDep = Annotated[Engine, Depends(get_engine)]
ThrottleDep = Annotated[auth.LoginThrottle, Depends(get_throttle)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
JobsDep = Annotated[JobRunner, Depends(get_jobs)]


async def api_principal(request: Request, engine: EngineDep,
                        token: Annotated[str | None, Depends(_bearer)]) -> Principal:
    if not token:
        raise Unauthenticated("sign in first: send Authorization: Bearer <token> from POST /api/auth/token")
    cache = _principals(request)
    cached = cache.get("token", token)
    if cached is not None:
        return cached
    try:
        return await run_in_threadpool(auth.token_principal, engine, secret=token, cache=cache)
    except AuthError as exc:
        raise Unauthenticated(exc.message) from exc


async def page_principal(request: Request, engine: EngineDep) -> Principal:
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise LoginRequired(_next(request))
    cache = _principals(request)
    cached = cache.get("session", secret)
    if cached is not None:
        return cached
    try:
        return await run_in_threadpool(auth.session_principal, engine, secret=secret, cache=cache)
    except AuthError:
        raise LoginRequired(_next(request)) from None


ApiUser = Annotated[Principal, Depends(api_principal)]
PageUser = Annotated[Principal, Depends(page_principal)]


async def csrf_checked(request: Request, user: PageUser) -> Principal:
    """A page user whose request carries their session's CSRF token (form field or htmx header)."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not user.csrf_token or not hmac.compare_digest(sent, user.csrf_token):
        raise Forbidden("the form has expired or did not come from Closewise; reload the page and try again")
    return user


PageWriter = Annotated[Principal, Depends(csrf_checked)]


def require(user: Principal, action: Action) -> None:
    """Writes are authorised apart from reads: raise Forbidden unless the user's role allows `action`."""
    if not user.scope.may(action):
        raise Forbidden(f"a {user.scope.role.value} cannot {action.value.replace('_', ' ')}")


def _next(request: Request) -> str:
    path = request.url.path
    return path + (f"?{request.url.query}" if request.url.query else "")
