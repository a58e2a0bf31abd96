"""both people sign the bedside check: the check is Lockable

The confirmation of a bedside check is signed by the person who scanned and by the second person (DOMAIN.md 8:
"Both people sign"); their signatures lock the check, which needs the Lockable mixin's locked_at.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 05:00:00
"""
from alembic import op
import sqlalchemy as sa
import mscbatch.database


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('two_person_check', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locked_at', mscbatch.database.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('two_person_check', schema=None) as batch_op:
        batch_op.drop_column('locked_at')
