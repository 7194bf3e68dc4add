"""Sign in and out of the web app: `/login` (email + password), `POST /logout`, and `/` sending each user to
their start page.

The session cookie is HttpOnly, SameSite=Lax, Secure when served over HTTPS, and lives as long as the server
side session (`Settings.session_hours`). The sign-in form itself is protected by a double-submit token (a
cookie and a form field that must agree), since there is no session yet to hold one.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from closewise.errors import AuthError
from closewise.services import auth
from closewise.web.deps import SESSION_COOKIE, EngineDep, PageWriter, SettingsDep, ThrottleDep
from closewise.web.render import page

router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "closewise_login"


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never `//host` or `https://…`, so the form cannot redirect elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/forecast"
    return target


def _login_form(request: Request, *, next_path: str, error: str | None = None, email: str = "",
                status_code: int = 200) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = page(request, "login.html", None, title="Sign in", status_code=status_code, csrf_token=token,
                    next_path=next_path, error=error, email=email)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", max_age=3600,
                        secure=request.url.scheme == "https", path="/login")
    return response


@router.get("/", response_model=None)
def home(request: Request) -> Response:
    target = "/forecast" if request.cookies.get(SESSION_COOKIE) else "/login"
    return RedirectResponse(target, status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return _login_form(request, next_path=_safe_next(next))


@router.post("/login", response_model=None)
def login(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    throttle: ThrottleDep,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/forecast",
) -> Response:
    target = _safe_next(next)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, csrf_token):
        return _login_form(request, next_path=target, email=email, status_code=403,
                           error="The sign-in form expired. Please try again.")
    try:
        user_id = throttle.authenticate(engine, email=email, password=password)
    except AuthError as exc:
        return _login_form(request, next_path=target, email=email, status_code=401,
                           error=exc.message[:1].upper() + exc.message[1:] + ".")
    issued = auth.open_session(engine, user_id=user_id, hours=settings.session_hours)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, issued.secret, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", max_age=settings.session_hours * 3600, path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout", response_model=None)
def logout(request: Request, engine: EngineDep, user: PageWriter) -> Response:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        auth.close_session(engine, secret=secret)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
