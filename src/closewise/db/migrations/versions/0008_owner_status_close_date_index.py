"""indexes for scoped and sorted deal lists: (owner_id, status, close_date), name, (stage, status)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 09:00:00.000000

A manager's or rep's deal list filters `owner_id IN (their part of the hierarchy)`, usually a status, and sorts by
close date. With only the single-column indexes SQLite walked the status index over the whole org: the count of a
manager's open deals on the 100,000-opportunity demo org took 308 ms; with (owner_id, status, close_date) it takes
0.1 ms. Sorting the whole org by name and filtering or counting it by stage read every row (12-15 ms each).
"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('opportunities', schema=None) as batch_op:
        batch_op.create_index('ix_opportunities_owner_status_close_date', ['owner_id', 'status', 'close_date'],
                              unique=False)
        batch_op.create_index('ix_opportunities_name', ['name'], unique=False)
        batch_op.create_index('ix_opportunities_stage_status', ['stage', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('opportunities', schema=None) as batch_op:
        batch_op.drop_index('ix_opportunities_stage_status')
        batch_op.drop_index('ix_opportunities_name')
        batch_op.drop_index('ix_opportunities_owner_status_close_date')
