"""recall_notice: the clinician of each patient a recall reached, told (who, how, when, recorded by whom)

A late OOS or a recall that reached patients listed them "to notify", but nothing recorded that their clinician
was told, and a recall could be completed with nobody notified (EU GMP Part IV 11). One row per patient on a
recall's notify list: recorded by QA, or by the clinician acknowledging it in the app. Empty for the recalls that
exist: their patients show "Not yet notified" until a notice is recorded.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-11 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import mscbatch.database
from mscbatch.audit.ddl import protect_append_only, unprotect_append_only


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('recall_notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recall_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('clinician_name', sa.String(length=200), nullable=False),
    sa.Column('clinician_id', sa.Integer(), nullable=True),
    sa.Column('how', sa.String(length=20), nullable=False),
    sa.Column('told_at', mscbatch.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=False),
    sa.Column('recorded_at', mscbatch.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['clinician_id'], ['user_account.id'], name=op.f('fk_recall_notice_clinician_id_user_account')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_recall_notice_patient_id_patient')),
    sa.ForeignKeyConstraint(['recall_id'], ['recall.id'], name=op.f('fk_recall_notice_recall_id_recall')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['user_account.id'], name=op.f('fk_recall_notice_recorded_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recall_notice')),
    sa.UniqueConstraint('recall_id', 'patient_id', name=op.f('uq_recall_notice_recall_id_patient_id')),
    )
    op.create_index(op.f('ix_recall_notice_patient_id'), 'recall_notice', ['patient_id'], unique=False)
    op.create_index(op.f('ix_recall_notice_recall_id'), 'recall_notice', ['recall_id'], unique=False)
    protect_append_only('recall_notice')  # a notice is evidence (the gate of a recall's completion): never changed


def downgrade() -> None:
    unprotect_append_only('recall_notice')
    op.drop_index(op.f('ix_recall_notice_recall_id'), table_name='recall_notice')
    op.drop_index(op.f('ix_recall_notice_patient_id'), table_name='recall_notice')
    op.drop_table('recall_notice')
