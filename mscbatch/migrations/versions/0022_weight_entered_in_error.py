"""patient_weight_error: a weight marked entered in error, by a clinician, with why, signed

A weight typed wrong (85 for 58 kg, another patient's) could only be outweighed by a newer one: it stayed among the
weights the checks of a new weight compare with, and a wrong weight recorded after a prescription kept the bedside's
"weight changed" STOP until a right one was typed again. One row per weight so marked; the weight itself is kept
(it was recorded) and read no more. The mark is signed (its locked_at set by the signature, as a withdrawal's).
Empty for the weights that exist.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 23:00:00
"""
from alembic import op
import sqlalchemy as sa
import mscbatch.database


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('patient_weight_error',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('weight_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('marked_by_id', sa.Integer(), nullable=False),
    sa.Column('marked_at', mscbatch.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('locked_at', mscbatch.database.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_patient_weight_error_patient_id_patient')),
    sa.ForeignKeyConstraint(['marked_by_id'], ['user_account.id'], name=op.f('fk_patient_weight_error_marked_by_id_user_account')),
    sa.ForeignKeyConstraint(['weight_id'], ['patient_weight.id'], name=op.f('fk_patient_weight_error_weight_id_patient_weight')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_weight_error')),
    sa.UniqueConstraint('weight_id', name=op.f('uq_patient_weight_error_weight_id')),
    )


def downgrade() -> None:
    op.drop_table('patient_weight_error')
