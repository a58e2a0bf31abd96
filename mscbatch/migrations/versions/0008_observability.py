"""observability (issue 9): index the audit trail by action and time for the monitoring counters

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 02:30:00
"""
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # counting login_failed / signature_refused events in the last 24 hours must not scan the whole trail.
    # A plain CREATE INDEX, not batch mode: a batch "recreate" of audit_event would drop its append-only triggers.
    op.create_index('ix_audit_event_action', 'audit_event', ['action', 'occurred_at'], unique=False)
    # and the bedside checks answered STOP, one of every check ever made
    op.create_index('ix_two_person_check_result', 'two_person_check', ['result', 'checked_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_two_person_check_result', table_name='two_person_check')
    op.drop_index('ix_audit_event_action', table_name='audit_event')
