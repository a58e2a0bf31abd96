"""patient wristband: one identity whatever its case and spacing

Two patients could be registered with wristbands differing only in capitals or spaces ("WB-SLE-UC-050" and
"wb-sle-uc-050"), and at the bedside the band of one, typed in the other case, named the other patient's bag. The
services now store a wristband as one spelling (no spaces, capitals: mscbatch.patients.queries.wristband_identity)
and a unique index holds the rule: upper(replace(wristband_id, ' ', '')) on PostgreSQL; on SQLite, where
SQLAlchemy cannot reflect an expression index (a warning at every inspection, and the schema test could not compare
it), wristband_id COLLATE NOCASE, the same ASCII case folding as its upper() (the spacing is held by the services).

Existing wristbands keep their spelling (rewriting them here would leave the rows unlike their audit trail); the
bedside finds them under any spelling. The upgrade stops, naming the patients, if two existing wristbands are the same
under this rule: give one of them another wristband and upgrade again.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-09 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

INDEX = 'uq_patient_wristband_identity'


def upgrade() -> None:
    bind = op.get_bind()
    patient = sa.table('patient', sa.column('code', sa.String()), sa.column('wristband_id', sa.String()))
    # Written here, not imported: a migration must do the same thing whatever the code says later.
    identity = sa.func.upper(sa.func.replace(patient.c.wristband_id, ' ', ''))
    shared = bind.execute(sa.select(identity).group_by(identity).having(sa.func.count() > 1)).scalars().all()
    if shared:
        clashes = "; ".join(
            " and ".join(f"{code} ({band})" for code, band in bind.execute(
                sa.select(patient.c.code, patient.c.wristband_id).where(identity == same)
                .order_by(patient.c.code)).all()) for same in shared)
        raise RuntimeError("Patients wear wristbands that differ only in capitals or spaces, which the bedside "
                           f"cannot tell apart: {clashes}. Give one of each another wristband and upgrade again.")
    if bind.dialect.name == 'sqlite':
        op.execute(f'CREATE UNIQUE INDEX {INDEX} ON patient (wristband_id COLLATE NOCASE)')
    else:
        op.create_index(INDEX, 'patient', [sa.text("upper(replace(wristband_id, ' ', ''))")], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name='patient')
