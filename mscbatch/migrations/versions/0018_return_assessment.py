"""custody_return_assessment: QA's signed assessment of a bag returned to the unit

A bag returned from the ward stayed "returned" for good: the state machine let QA put it back into stock or discard
it, but nothing recorded why. QA now signs an assessment of each return (the temperature logger's warmest reading,
the bag seen intact, the time out of the unit, the rationale) and the bag goes back into stock or is discarded in
the same transaction. One row per return.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-09 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import mscbatch.database


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('custody_return_assessment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bag_id', sa.Integer(), nullable=False),
    sa.Column('return_event_id', sa.Integer(), nullable=False),
    sa.Column('decision', sa.String(length=10), nullable=False),
    sa.Column('logger_max_c', sa.Numeric(precision=5, scale=1), nullable=True),
    sa.Column('intact', sa.Boolean(), nullable=False),
    sa.Column('minutes_out', sa.Integer(), nullable=True),
    sa.Column('rationale', sa.Text(), nullable=False),
    sa.Column('assessed_by_id', sa.Integer(), nullable=False),
    sa.Column('assessed_at', mscbatch.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('locked_at', mscbatch.database.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['assessed_by_id'], ['user_account.id'], name=op.f('fk_custody_return_assessment_assessed_by_id_user_account')),
    sa.ForeignKeyConstraint(['bag_id'], ['bag.id'], name=op.f('fk_custody_return_assessment_bag_id_bag')),
    sa.ForeignKeyConstraint(['return_event_id'], ['custody_event.id'], name=op.f('fk_custody_return_assessment_return_event_id_custody_event')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_custody_return_assessment')),
    sa.UniqueConstraint('return_event_id', name=op.f('uq_custody_return_assessment_return_event_id'))
    )
    op.create_index(op.f('ix_custody_return_assessment_bag_id'), 'custody_return_assessment', ['bag_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_custody_return_assessment_bag_id'), table_name='custody_return_assessment')
    op.drop_table('custody_return_assessment')
