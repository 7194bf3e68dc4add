"""indexes for the deal list: close date, status + close date, amount

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 21:15:00.000000
"""
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('opportunities', schema=None) as batch_op:
        batch_op.create_index('ix_opportunities_close_date', ['close_date'], unique=False)
        batch_op.create_index('ix_opportunities_status_close_date', ['status', 'close_date'], unique=False)
        batch_op.create_index('ix_opportunities_amount', ['amount'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('opportunities', schema=None) as batch_op:
        batch_op.drop_index('ix_opportunities_amount')
        batch_op.drop_index('ix_opportunities_status_close_date')
        batch_op.drop_index('ix_opportunities_close_date')
