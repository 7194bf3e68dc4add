"""`POST /api/auth/token` (OAuth2 password form) and `GET /api/me`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from closewise.domain.scope import allowed_actions
from closewise.errors import AuthError
from closewise.services import auth
from closewise.web.deps import ApiUser, EngineDep, SettingsDep, ThrottleDep, Unauthenticated

router = APIRouter(tags=["auth"])


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: str


class Me(BaseModel):
    id: int
    email: str | None
    name: str
    role: str
    sees_everything: bool
    visible_user_ids: list[int] | None
    may: list[str]


@router.post("/auth/token", response_model=Token, responses={401: {"description": "wrong email or password"}})
def token(form: Annotated[OAuth2PasswordRequestForm, Depends()], engine: EngineDep, settings: SettingsDep,
          throttle: ThrottleDep) -> Token:
    """Exchange an email (`username`) and password for a bearer token that expires."""
    try:
        user_id = throttle.authenticate(engine, email=form.username, password=form.password)
    except AuthError as exc:
        raise Unauthenticated(exc.message) from exc
    issued = auth.issue_token(engine, user_id=user_id, minutes=settings.token_minutes)
    return Token(access_token=issued.secret, expires_at=issued.expires_at.isoformat())


@router.get("/me", response_model=Me, responses={401: {"description": "no or expired token"}})
def me(user: ApiUser) -> Me:
    """Who the token belongs to, their role, whose records they see and what they may change."""
    owners = user.scope.owner_ids
    return Me(id=user.user_id, email=user.email, name=user.name, role=user.scope.role.value,
              sees_everything=owners is None, visible_user_ids=None if owners is None else sorted(owners),
              may=sorted(action.value for action in allowed_actions(user.scope.role)))
