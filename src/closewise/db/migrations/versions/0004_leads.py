"""leads: app lead events (routed, accepted, rejected, recycled, returned) and lead routing rules

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('lead_events',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('lead_id', _ID, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_id', _ID, nullable=True),
    sa.Column('owner_id', _ID, nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('re_engage_at', sa.Date(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_lead_events_lead_id_leads'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_lead_events_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_lead_events_owner_id_users'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_events'))
    )
    with op.batch_alter_table('lead_events', schema=None) as batch_op:
        batch_op.create_index('ix_lead_events_lead_id', ['lead_id', 'occurred_at'], unique=False)
    op.create_table('lead_routing_rules',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('countries', sa.JSON(), nullable=True),
    sa.Column('sources', sa.JSON(), nullable=True),
    sa.Column('members', sa.JSON(), nullable=False),
    sa.Column('max_open', sa.Integer(), nullable=True),
    sa.Column('last_member_id', _ID, nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_routing_rules')),
    sa.UniqueConstraint('name', name=op.f('uq_lead_routing_rules_name'))
    )


def downgrade() -> None:
    op.drop_table('lead_routing_rules')
    op.drop_table('lead_events')
