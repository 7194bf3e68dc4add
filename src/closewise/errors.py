"""Domain exceptions.

Every error a user can cause names what is wrong and where (file, line, column, field). The CLI and the
web layer turn these into one clear message; nothing below them prints.
"""

from __future__ import annotations


class CloseWiseError(Exception):
    """Base of every error that is the user's to fix (bad input, unknown name, wrong password)."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class InvalidInput(CloseWiseError):
    """A value the user gave cannot be understood (a period, a date, an amount, an option)."""


class NotFound(CloseWiseError):
    """A named record does not exist, or lies outside the caller's visibility."""


class Conflict(CloseWiseError):
    """The request contradicts what is stored (a duplicate email, a refused stage advance)."""


class AuthError(CloseWiseError):
    """Wrong credentials, an expired session, a missing permission."""


class DatabaseError(CloseWiseError):
    """The database cannot be reached or is not initialised."""


class Forbidden(AuthError):
    """The caller is signed in and may see the record, but not do this to it."""
