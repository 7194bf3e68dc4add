"""stages: requires_passing_proposal (leaving the stage needs a proposal that passes its quality checks)

Revision ID: 0011
Revises: 0009 (0010 was reserved for work that needed no migration; the number is kept because databases
already carry it)
Create Date: 2026-11-22 23:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('stages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requires_passing_proposal', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('stages', schema=None) as batch_op:
        batch_op.drop_column('requires_passing_proposal')
