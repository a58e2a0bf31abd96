"""append-only triggers on storage moves and label prints

The models declared them append-only (__append_only__) but migrations 0003 and 0006 created the tables without
the triggers that refuse UPDATE, DELETE (and on PostgreSQL TRUNCATE) in the database itself.
tests/integration/test_append_only_triggers.py checks every append-only table, so a new one cannot be missed.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 10:00:00
"""
from mscbatch.audit.ddl import protect_append_only, unprotect_append_only


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

# Listed here, not read from append_only_tables(): a migration must do the same thing whatever the models say later.
TABLES = ('storage_move', 'label_print', 'label_print_item')


def upgrade() -> None:
    for table in TABLES:
        protect_append_only(table)


def downgrade() -> None:
    for table in reversed(TABLES):
        unprotect_append_only(table)
