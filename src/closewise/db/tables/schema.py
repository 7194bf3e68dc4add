"""What every table shares: the one `metadata` (with its naming convention), the id, money and timestamp
column types, and the primary and foreign key columns."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import BigInteger, ForeignKey, Integer

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger primary keys that are still SQLite rowids (INTEGER PRIMARY KEY) there.
Id = BigInteger().with_variant(Integer(), "sqlite")
Money = sa.Numeric(18, 2, asdecimal=False)
Timestamp = sa.DateTime(timezone=True)


def pk() -> sa.Column[int]:
    return sa.Column("id", Id, primary_key=True, autoincrement=True)


def fk(name: str, target: str, *, nullable: bool = True, ondelete: str | None = None) -> sa.Column[int]:
    return sa.Column(name, Id, ForeignKey(target, ondelete=ondelete), nullable=nullable)
