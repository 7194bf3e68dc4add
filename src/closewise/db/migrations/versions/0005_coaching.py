"""coaching: 1:1 plans, commitments (plan and review next steps), adopted checklist items

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 12:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('coaching_plans',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('rep_id', _ID, nullable=False),
    sa.Column('author_id', _ID, nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('skills', sa.JSON(), nullable=False),
    sa.Column('baseline', sa.JSON(), nullable=True),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('review_on', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['rep_id'], ['users.id'], name=op.f('fk_coaching_plans_rep_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'],
        name=op.f('fk_coaching_plans_author_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coaching_plans'))
    )
    with op.batch_alter_table('coaching_plans', schema=None) as batch_op:
        batch_op.create_index('ix_coaching_plans_rep_id', ['rep_id'], unique=False)
    op.create_table('coaching_commitments',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('plan_id', _ID, nullable=True),
    sa.Column('rep_id', _ID, nullable=False),
    sa.Column('opportunity_id', _ID, nullable=True),
    sa.Column('author_id', _ID, nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('skill', sa.String(length=64), nullable=True),
    sa.Column('due_on', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('follow_up', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['plan_id'], ['coaching_plans.id'],
        name=op.f('fk_coaching_commitments_plan_id_coaching_plans'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rep_id'], ['users.id'],
        name=op.f('fk_coaching_commitments_rep_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunities.id'],
        name=op.f('fk_coaching_commitments_opportunity_id_opportunities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'],
        name=op.f('fk_coaching_commitments_author_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coaching_commitments'))
    )
    with op.batch_alter_table('coaching_commitments', schema=None) as batch_op:
        batch_op.create_index('ix_coaching_commitments_rep_id', ['rep_id'], unique=False)
    op.create_table('coaching_adoptions',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('item_key', sa.String(length=64), nullable=False),
    sa.Column('stage', sa.String(length=64), nullable=False),
    sa.Column('criterion_key', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=255), nullable=False),
    sa.Column('metric', sa.String(length=64), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('evidence', sa.JSON(), nullable=True),
    sa.Column('adopted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('adopted_by', _ID, nullable=True),
    sa.ForeignKeyConstraint(['adopted_by'], ['users.id'],
        name=op.f('fk_coaching_adoptions_adopted_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coaching_adoptions'))
    )


def downgrade() -> None:
    op.drop_table('coaching_adoptions')
    op.drop_table('coaching_commitments')
    op.drop_table('coaching_plans')
