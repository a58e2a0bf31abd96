"""donors: donor, screening results, questionnaire answers, eligibility decisions, lookbacks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 23:20:28.218084
"""
from alembic import op
import sqlalchemy as sa
import mscbatch.database


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('donor',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('tissue_source', sa.String(length=20), nullable=False),
    sa.Column('rule_set_id', sa.String(length=60), nullable=False),
    sa.Column('protocol', sa.String(length=40), nullable=False),
    sa.Column('donor_type', sa.String(length=20), nullable=False),
    sa.Column('relationship', sa.String(length=20), nullable=True),
    sa.Column('recipient_code', sa.String(length=40), nullable=True),
    sa.Column('initials', sa.String(length=10), nullable=True),
    sa.Column('date_of_birth', sa.Date(), nullable=True),
    sa.Column('sex', sa.String(length=10), nullable=True),
    sa.Column('weight_kg', sa.Numeric(precision=5, scale=1), nullable=True),
    sa.Column('consent_signed', sa.Boolean(), nullable=True),
    sa.Column('consent_date', sa.Date(), nullable=True),
    sa.Column('social_security', sa.Boolean(), nullable=True),
    sa.Column('childbearing_potential', sa.Boolean(), nullable=True),
    sa.Column('contraception', sa.Boolean(), nullable=True),
    sa.Column('retest_180_days_negative', sa.Boolean(), nullable=True),
    sa.Column('planned_collection_date', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('registered_by_id', sa.Integer(), nullable=False),
    sa.Column('registered_at', mscbatch.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['registered_by_id'], ['user_account.id'], name=op.f('fk_donor_registered_by_id_user_account')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['user_account.id'], name=op.f('fk_donor_updated_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_donor')),
    sa.UniqueConstraint('code', name=op.f('uq_donor_code'))
    )
    with op.batch_alter_table('donor', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_donor_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_donor_tissue_source'), ['tissue_source'], unique=False)

    op.create_table('donor_eligibility_decision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('donor_id', sa.Integer(), nullable=False),
    sa.Column('engine_status', sa.String(length=20), nullable=False),
    sa.Column('meaning', sa.String(length=60), nullable=False),
    sa.Column('reasons_json', sa.Text(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('ruleset_id', sa.String(length=60), nullable=False),
    sa.Column('ruleset_version', sa.String(length=20), nullable=False),
    sa.Column('ruleset_sha256', sa.String(length=64), nullable=False),
    sa.Column('judged_at', mscbatch.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=False),
    sa.Column('superseded_at', mscbatch.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('superseded_reason', sa.Text(), nullable=True),
    sa.Column('locked_at', mscbatch.database.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['decided_by_id'], ['user_account.id'], name=op.f('fk_donor_eligibility_decision_decided_by_id_user_account')),
    sa.ForeignKeyConstraint(['donor_id'], ['donor.id'], name=op.f('fk_donor_eligibility_decision_donor_id_donor')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_donor_eligibility_decision'))
    )
    with op.batch_alter_table('donor_eligibility_decision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_donor_eligibility_decision_donor_id'), ['donor_id'], unique=False)

    op.create_table('donor_questionnaire_answer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('donor_id', sa.Integer(), nullable=False),
    sa.Column('question_id', sa.String(length=80), nullable=False),
    sa.Column('answer', sa.String(length=10), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('answered_by_id', sa.Integer(), nullable=False),
    sa.Column('answered_at', mscbatch.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['answered_by_id'], ['user_account.id'], name=op.f('fk_donor_questionnaire_answer_answered_by_id_user_account')),
    sa.ForeignKeyConstraint(['donor_id'], ['donor.id'], name=op.f('fk_donor_questionnaire_answer_donor_id_donor')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_donor_questionnaire_answer')),
    sa.UniqueConstraint('donor_id', 'question_id', name=op.f('uq_donor_questionnaire_answer_donor_id_question_id'))
    )
    op.create_table('donor_screening_result',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('donor_id', sa.Integer(), nullable=False),
    sa.Column('marker', sa.String(length=40), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('result', sa.String(length=20), nullable=False),
    sa.Column('sample_date', sa.Date(), nullable=False),
    sa.Column('lab_reference', sa.String(length=60), nullable=False),
    sa.Column('entered_by_id', sa.Integer(), nullable=False),
    sa.Column('entered_at', mscbatch.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('corrected_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['corrected_by_id'], ['user_account.id'], name=op.f('fk_donor_screening_result_corrected_by_id_user_account')),
    sa.ForeignKeyConstraint(['donor_id'], ['donor.id'], name=op.f('fk_donor_screening_result_donor_id_donor')),
    sa.ForeignKeyConstraint(['entered_by_id'], ['user_account.id'], name=op.f('fk_donor_screening_result_entered_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_donor_screening_result'))
    )
    with op.batch_alter_table('donor_screening_result', schema=None) as batch_op:
        batch_op.create_index('ix_donor_screening_result_donor', ['donor_id', 'marker'], unique=False)

    op.create_table('donor_lookback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('donor_id', sa.Integer(), nullable=False),
    sa.Column('opened_at', mscbatch.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('opened_by_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('triggering_result_id', sa.Integer(), nullable=True),
    sa.Column('superseded_decision_id', sa.Integer(), nullable=False),
    sa.Column('closed_at', mscbatch.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_by_id', sa.Integer(), nullable=True),
    sa.Column('closure_note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['closed_by_id'], ['user_account.id'], name=op.f('fk_donor_lookback_closed_by_id_user_account')),
    sa.ForeignKeyConstraint(['donor_id'], ['donor.id'], name=op.f('fk_donor_lookback_donor_id_donor')),
    sa.ForeignKeyConstraint(['opened_by_id'], ['user_account.id'], name=op.f('fk_donor_lookback_opened_by_id_user_account')),
    sa.ForeignKeyConstraint(['superseded_decision_id'], ['donor_eligibility_decision.id'], name=op.f('fk_donor_lookback_superseded_decision_id_donor_eligibility_decision')),
    sa.ForeignKeyConstraint(['triggering_result_id'], ['donor_screening_result.id'], name=op.f('fk_donor_lookback_triggering_result_id_donor_screening_result')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_donor_lookback'))
    )
    with op.batch_alter_table('donor_lookback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_donor_lookback_donor_id'), ['donor_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('donor_lookback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_donor_lookback_donor_id'))

    op.drop_table('donor_lookback')
    with op.batch_alter_table('donor_screening_result', schema=None) as batch_op:
        batch_op.drop_index('ix_donor_screening_result_donor')

    op.drop_table('donor_screening_result')
    op.drop_table('donor_questionnaire_answer')
    with op.batch_alter_table('donor_eligibility_decision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_donor_eligibility_decision_donor_id'))

    op.drop_table('donor_eligibility_decision')
    with op.batch_alter_table('donor', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_donor_tissue_source'))
        batch_op.drop_index(batch_op.f('ix_donor_status'))

    op.drop_table('donor')
