"""release_oos.assignable_cause: the laboratory cause an OOS invalidation is founded on

An OOS was invalidated with a passing retest and any ten characters of text, under the fixed signature meaning
"OOS invalidated (laboratory error, valid retest)" (FDA OOS guidance 2006; MHRA OOS guidance). Invalidation now
needs a documented assignable laboratory cause, chosen from a fixed list (mscbatch.core.oos_causes) and signed with
the investigation; without one the OOS can only be confirmed. Investigations closed before this migration have
none (NULL): their signatures were made on a content without it, and still verify.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-11 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ADD COLUMN (nullable), not batch mode: investigations are referred to by signatures and the audit trail
    op.add_column('release_oos', sa.Column('assignable_cause', sa.String(length=30), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('release_oos', schema=None) as batch_op:
        batch_op.drop_column('assignable_cause')
