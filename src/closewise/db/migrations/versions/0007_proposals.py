"""proposals: the org's talking points per competitor and persona, prospecting cadences

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 12:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('talking_points',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('competitor', sa.String(length=120), nullable=False),
    sa.Column('persona', sa.String(length=40), nullable=False),
    sa.Column('headline', sa.String(length=255), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('proof', sa.Text(), nullable=True),
    sa.Column('created_by', _ID, nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_talking_points_created_by_users'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_talking_points'))
    )
    op.create_table('prospecting_cadences',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('steps', sa.JSON(), nullable=False),
    sa.Column('accounts_per_rep', sa.Integer(), nullable=False),
    sa.Column('weeks', sa.Integer(), nullable=False),
    sa.Column('created_by', _ID, nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_prospecting_cadences_created_by_users'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prospecting_cadences')),
    sa.UniqueConstraint('name', name=op.f('uq_prospecting_cadences_name'))
    )


def downgrade() -> None:
    op.drop_table('prospecting_cadences')
    op.drop_table('talking_points')
