"""late OOS at the bedside: index the open investigations of a lot

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 06:30:00
"""
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the bedside check asks "has this lot an open late OOS?" at every scan: by (lot, status), not by status
    # alone (SQLite would otherwise walk every open investigation of the unit)
    op.create_index('ix_release_oos_lot_status', 'release_oos', ['lot_id', 'status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_release_oos_lot_status', table_name='release_oos')
