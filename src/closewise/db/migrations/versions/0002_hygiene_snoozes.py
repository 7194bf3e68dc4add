"""hygiene snoozes: findings hidden until a resume date

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 17:50:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('hygiene_snoozes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('opportunity_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('until', sa.Date(), nullable=False),
    sa.Column('created_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_hygiene_snoozes_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunities.id'], name=op.f('fk_hygiene_snoozes_opportunity_id_opportunities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hygiene_snoozes'))
    )
    with op.batch_alter_table('hygiene_snoozes', schema=None) as batch_op:
        batch_op.create_index('ix_hygiene_snoozes_opportunity_id', ['opportunity_id', 'code'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('hygiene_snoozes', schema=None) as batch_op:
        batch_op.drop_index('ix_hygiene_snoozes_opportunity_id')

    op.drop_table('hygiene_snoozes')
