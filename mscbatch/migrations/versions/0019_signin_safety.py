"""password_history and signin_failure: no reuse of recent passwords, a sign-in throttle per client address

- password_history: the Argon2 hashes of each account's earlier passwords (21 CFR 11.300(b)); a new password may
  not be one of the account's last 5. Empty for the accounts that exist: their history starts with their next
  change.
- signin_failure: failed sign-ins per client address over the last minutes, in the database so that every worker
  counts the same; after too many from one address its further attempts are refused without a password check.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-10 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import mscbatch.database


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('password_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('replaced_at', mscbatch.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_password_history_user_id_user_account'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_password_history'))
    )
    op.create_index(op.f('ix_password_history_user_id'), 'password_history', ['user_id'], unique=False)
    op.create_table('signin_failure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('failed_at', mscbatch.database.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signin_failure'))
    )
    op.create_index('ix_signin_failure_address_failed_at', 'signin_failure', ['address', 'failed_at'], unique=False)
    op.create_index(op.f('ix_signin_failure_failed_at'), 'signin_failure', ['failed_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_signin_failure_failed_at'), table_name='signin_failure')
    op.drop_index('ix_signin_failure_address_failed_at', table_name='signin_failure')
    op.drop_table('signin_failure')
    op.drop_index(op.f('ix_password_history_user_id'), table_name='password_history')
    op.drop_table('password_history')
