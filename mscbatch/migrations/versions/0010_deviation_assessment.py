"""QA's signed assessment of a deviation recorded after its lot's release

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 21:00:00
"""
from alembic import op
import sqlalchemy as sa
import mscbatch.database


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('release_deviation_assessment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deviation_id', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('severity', sa.String(length=20), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('rationale', sa.Text(), nullable=False),
    sa.Column('assessed_by_id', sa.Integer(), nullable=False),
    sa.Column('assessed_at', mscbatch.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('locked_at', mscbatch.database.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['assessed_by_id'], ['user_account.id'], name=op.f('fk_release_deviation_assessment_assessed_by_id_user_account')),
    sa.ForeignKeyConstraint(['deviation_id'], ['lot_deviation.id'], name=op.f('fk_release_deviation_assessment_deviation_id_lot_deviation')),
    sa.ForeignKeyConstraint(['lot_id'], ['lot.id'], name=op.f('fk_release_deviation_assessment_lot_id_lot')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_release_deviation_assessment')),
    sa.UniqueConstraint('deviation_id', name=op.f('uq_release_deviation_assessment_deviation_id'))
    )
    with op.batch_alter_table('release_deviation_assessment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_release_deviation_assessment_lot_id'), ['lot_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('release_deviation_assessment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_release_deviation_assessment_lot_id'))
    op.drop_table('release_deviation_assessment')
