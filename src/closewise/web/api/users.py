"""`/api/users`: the users the caller sees (a manager their subtree, a rep themselves) and, for an admin,
adding users and changing roles, managers, names, active flags and passwords. No route ever returns a password
or its hash."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, Field

from closewise.domain.scope import Action
from closewise.services import users as user_service
from closewise.web.deps import ApiUser, EngineDep, require

router = APIRouter(tags=["users"])

MAX_ID = 2**63 - 1
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="The user's id.")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or expired token"},
    403: {"description": "the role may not manage users"},
    422: {"description": "a value that cannot be used (`where` names it)"},
}
_BODY: dict[int | str, dict[str, Any]] = {400: {"description": "the body is not JSON"}}


class UserOut(BaseModel):
    id: int
    email: str | None
    name: str
    role: str
    manager_id: int | None
    team_id: int | None
    team: str | None
    active: bool
    hire_date: date | None

    @classmethod
    def of(cls, user: user_service.UserDetail) -> UserOut:
        return cls(id=user.id, email=user.email, name=user.name, role=user.role, manager_id=user.manager_id,
                   team_id=user.team_id, team=user.team, active=user.active, hire_date=user.hire_date)


class UserCreate(BaseModel):
    email: str = Field(max_length=320)
    role: str = Field(description="admin, leader, manager, rep or viewer")
    name: str | None = Field(default=None, max_length=200)
    manager_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    password: str | None = Field(default=None, max_length=1024,
                                 description="at least 8 characters; without one the user cannot sign in yet")


class UserPatch(BaseModel):
    role: str | None = None
    manager_id: int | None = Field(default=None, ge=1, le=MAX_ID, description="null removes the manager")
    active: bool | None = None
    name: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=1024, description="a new password (ends their sessions)")


@router.get("/users", response_model=list[UserOut], responses={401: _ERRORS[401], 422: _ERRORS[422]})
def list_users(user: ApiUser, engine: EngineDep) -> list[UserOut]:
    """The users the caller sees: everyone for an admin or leader, a manager's reports (direct or not) and
    themselves, a rep or viewer only themselves."""
    return [UserOut.of(found) for found in user_service.visible_users(engine, user.scope)]


@router.get("/users/{user_id}", response_model=UserOut,
            responses={401: _ERRORS[401], 422: _ERRORS[422],
                       404: {"description": "no such user, or outside the caller's scope"}})
def get_user(user_id: UserId, user: ApiUser, engine: EngineDep) -> UserOut:
    return UserOut.of(user_service.get_user(engine, user.scope, user_id))


@router.post("/users", response_model=UserOut, status_code=201,
             responses={**_ERRORS, **_BODY, 409: {"description": "the email is taken"}})
def create_user(body: UserCreate, user: ApiUser, engine: EngineDep) -> UserOut:
    """Add a user with a role, a manager and (optionally) a password. Admins only."""
    require(user, Action.MANAGE_USERS)
    created = user_service.create_user(engine, user.scope, email=body.email, role=body.role, name=body.name,
                                       manager_id=body.manager_id, password=body.password)
    return UserOut.of(created)


@router.patch("/users/{user_id}", response_model=UserOut,
              responses={**_ERRORS, **_BODY, 404: {"description": "no such user"},
                         409: {"description": "a manager cycle, or the last active admin would be lost"}})
def change_user(user_id: UserId, body: Annotated[UserPatch, Body()], user: ApiUser, engine: EngineDep) -> UserOut:
    """Change a user's role, manager, name or active flag, or reset their password. Admins only. Refused: a
    manager who reports to the user (a cycle), demoting or deactivating the last active admin, deactivating
    yourself."""
    require(user, Action.MANAGE_USERS)
    given = body.model_fields_set
    changes = user_service.UserChanges(
        role=body.role, manager_id=body.manager_id,
        clear_manager="manager_id" in given and body.manager_id is None,
        active=body.active, name=body.name,
    )
    if body.password is not None:
        user_service.validate_password(body.password)
    changed = user_service.change_user(engine, user.scope, user_id, changes)
    if body.password is not None:
        user_service.reset_password(engine, user.scope, user_id, password=body.password)
    return UserOut.of(changed)
