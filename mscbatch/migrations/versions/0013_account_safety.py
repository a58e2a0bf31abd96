"""accounts: API tokens expire, an admin-chosen password must be changed, printed names are unique

- api_token.expires_at: a token lives at most API_TOKEN_LIFETIME (90 days, mscbatch/auth/services.py) from its
  creation; tokens made before this migration get the same rule (created_at + 90 days), so those older than
  that stop working at once: their owners make new ones on My account.
- user_account.must_change_password: set when an administrator creates an account (the administrator knows its
  password); false for the accounts that exist already.
- a unique index on lower(full_name) (on SQLite: full_name COLLATE NOCASE, the same ASCII case folding as its
  lower()): the printed name on a signature names one person. The upgrade stops, naming them, if two existing
  accounts share a printed name: rename one (it is audited) and upgrade again.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 09:00:00
"""
from datetime import timedelta

from alembic import op
import sqlalchemy as sa
import mscbatch.database


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

# Written here, not imported: a migration must do the same thing whatever the code says later.
TOKEN_LIFETIME = timedelta(days=90)


def upgrade() -> None:
    bind = op.get_bind()
    instant = mscbatch.database.UTCDateTime(timezone=True)

    # first, before anything changes (SQLite's DDL is not transactional): can printed names be made unique?
    users = sa.table('user_account', sa.column('username', sa.String()), sa.column('full_name', sa.String()))
    lowered = sa.func.lower(users.c.full_name)
    shared = bind.execute(sa.select(lowered).group_by(lowered).having(sa.func.count() > 1)).scalars().all()
    if shared:
        clashes = "; ".join(
            ", ".join(bind.execute(sa.select(users.c.username).where(lowered == name)
                                   .order_by(users.c.username)).scalars().all()) + f" print '{name}'"
            for name in shared)
        raise RuntimeError("Two accounts share a printed name (full name), which signatures must not: "
                           f"{clashes}. Rename one of each (the change is audited) and upgrade again.")

    op.add_column('api_token', sa.Column('expires_at', instant, nullable=True))
    tokens = sa.table('api_token', sa.column('id', sa.Integer()), sa.column('created_at', instant),
                      sa.column('expires_at', instant))
    for token_id, created_at in bind.execute(sa.select(tokens.c.id, tokens.c.created_at)).all():
        bind.execute(sa.update(tokens).where(tokens.c.id == token_id).values(expires_at=created_at + TOKEN_LIFETIME))
    with op.batch_alter_table('api_token', schema=None) as batch_op:  # no table refers to api_token: safe to copy
        batch_op.alter_column('expires_at', existing_type=instant, nullable=False)

    # a plain ADD COLUMN with a default, not batch mode: a batch "recreate" of user_account, which every signature
    # and record refers to, is not something to do on a live database
    op.add_column('user_account', sa.Column('must_change_password', sa.Boolean(), nullable=False,
                                            server_default=sa.false()))

    if bind.dialect.name == 'sqlite':
        # the same comparison as SQLite's lower() (ASCII letters), written as a collation: SQLAlchemy cannot reflect an
        # expression index on SQLite (a warning at every inspection, and the schema test could not compare it)
        op.execute('CREATE UNIQUE INDEX uq_user_account_full_name_lower ON user_account (full_name COLLATE NOCASE)')
    else:
        op.create_index('uq_user_account_full_name_lower', 'user_account', [sa.text('lower(full_name)')],
                        unique=True)


def downgrade() -> None:
    op.drop_index('uq_user_account_full_name_lower', table_name='user_account')
    op.drop_column('user_account', 'must_change_password')  # no batch "recreate" of user_account (see upgrade)
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
