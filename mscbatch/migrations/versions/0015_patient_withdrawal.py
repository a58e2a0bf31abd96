"""patient_withdrawal: the signed withdrawal of a patient from the trial

A clinician withdraws a patient (consent withdrawn, investigator's decision) with the reason and an e-signature;
the patient's status becomes "withdrawn" (already one of its values). One row per patient at most.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import mscbatch.database


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('patient_withdrawal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('withdrawn_on', sa.Date(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status_before', sa.String(length=20), nullable=False),
    sa.Column('withdrawn_by_id', sa.Integer(), nullable=False),
    sa.Column('withdrawn_at', mscbatch.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('locked_at', mscbatch.database.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_patient_withdrawal_patient_id_patient')),
    sa.ForeignKeyConstraint(['withdrawn_by_id'], ['user_account.id'], name=op.f('fk_patient_withdrawal_withdrawn_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_withdrawal')),
    sa.UniqueConstraint('patient_id', name=op.f('uq_patient_withdrawal_patient_id'))
    )


def downgrade() -> None:
    op.drop_table('patient_withdrawal')
