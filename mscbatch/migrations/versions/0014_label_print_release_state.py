"""label prints record the lot's release state: a bag leaves the unit only with its released label

label_print_item.lot_status: the lot's status when the label was printed (quarantine, released,
conditional_release); label_print_item.released: true when that label is the released one (the lot released,
conditionally or exceptionally, and the label carrying that state). Custody dispatch refuses a bag whose latest
label is not (labelling.services.dispatch_label_problem): a bag must not leave with only its QUARANTINE label.

Items printed before this migration keep lot_status NULL and released false: what their labels said was not
recorded, so none counts as the released label and such a bag is relabelled (a reprint, with its reason) before
dispatch. No row is rewritten: the table is append-only (migration 0011), and a plain ADD COLUMN with a default
updates none.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('label_print_item', sa.Column('lot_status', sa.String(length=30), nullable=True))
    op.add_column('label_print_item', sa.Column('released', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    # plain DROP COLUMN (SQLite 3.35 and later, PostgreSQL), not a batch "recreate" that would lose the append-only
    # triggers of migration 0011 with the old table
    op.drop_column('label_print_item', 'released')
    op.drop_column('label_print_item', 'lot_status')
