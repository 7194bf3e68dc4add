"""Reading the reference data analytics needs as frames: users, stages, accounts, rates, activities."""

from __future__ import annotations

from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from closewise.db import tables


def _frame(connection: Connection, query: sa.Select[Any], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    rows = [tuple(row) for row in connection.execute(query)]
    return pl.DataFrame(rows, schema=schema, orient="row")


def load_users(connection: Connection) -> pl.DataFrame:
    u = tables.users
    return _frame(connection, sa.select(u.c.id, u.c.name, u.c.email, u.c.role, u.c.manager_id, u.c.team_id,
                                        u.c.hire_date, u.c.active).order_by(u.c.id),
                  {"id": pl.Int64(), "name": pl.String(), "email": pl.String(), "role": pl.String(),
                   "manager_id": pl.Int64(), "team_id": pl.Int64(), "hire_date": pl.Date(), "active": pl.Boolean()})


def load_teams(connection: Connection) -> pl.DataFrame:
    t = tables.teams
    return _frame(connection, sa.select(t.c.id, t.c.name), {"id": pl.Int64(), "name": pl.String()})


def load_stages(connection: Connection, *, pipeline: str = "default") -> pl.DataFrame:
    s = tables.stages
    query = sa.select(s.c.key, s.c.name, s.c.order, s.c.default_probability, s.c.forecast_category,
                      s.c.days_to_rot, s.c.requalify_days).where(s.c.pipeline == pipeline).order_by(s.c.order)
    return _frame(connection, query, {"key": pl.String(), "name": pl.String(), "order": pl.Int64(),
                                      "default_probability": pl.Float64(), "forecast_category": pl.String(),
                                      "days_to_rot": pl.Int64(), "requalify_days": pl.Int64()})


def load_accounts(connection: Connection) -> pl.DataFrame:
    a = tables.accounts
    return _frame(connection, sa.select(a.c.id, a.c.name, a.c.industry, a.c.employees, a.c.country, a.c.segment),
                  {"id": pl.Int64(), "name": pl.String(), "industry": pl.String(), "employees": pl.Int64(),
                   "country": pl.String(), "segment": pl.String()})


def load_rates(connection: Connection) -> pl.DataFrame:
    r = tables.currency_rates
    return _frame(connection, sa.select(r.c.currency, r.c.rate, r.c.start_date),
                  {"currency": pl.String(), "rate": pl.Float64(), "start_date": pl.Date()})
