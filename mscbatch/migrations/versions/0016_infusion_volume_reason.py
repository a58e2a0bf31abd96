"""infusion.volume_reason: why the volume given, or the course, is outside the prescription

Ending an infusion with more than prescribed from its bag, less by more than the protocol's dose tolerance, or a
course below its band asks why (mscbatch.custody.services.end_infusion). The reason was kept only on the
"infusion_ended" custody event and in the audit trail, so the infusion, patient and lot pages flagged the record
without saying why. It is now kept on the infusion. Infusions ended before this migration get the reason their
"infusion_ended" event recorded when that event flagged the volume or the course (its details say "why").

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 09:00:00
"""
import json

from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

# Written here, not imported: a migration must do the same thing whatever the code says later.
FLAGS = ("over_prescription", "under_prescription", "course_below_band")


def upgrade() -> None:
    # a plain ADD COLUMN (nullable), not batch mode: infusions are referred to by other records
    op.add_column('infusion', sa.Column('volume_reason', sa.Text(), nullable=True))
    bind = op.get_bind()
    infusion = sa.table('infusion', sa.column('id', sa.Integer()), sa.column('bag_id', sa.Integer()),
                        sa.column('volume_reason', sa.Text()))
    event = sa.table('custody_event', sa.column('id', sa.Integer()), sa.column('bag_id', sa.Integer()),
                     sa.column('kind', sa.String()), sa.column('details_json', sa.Text()),
                     sa.column('reason', sa.Text()))
    ended = bind.execute(sa.select(event.c.bag_id, event.c.details_json, event.c.reason)
                         .where(event.c.kind == 'infusion_ended').order_by(event.c.id)).all()
    for bag_id, details_json, reason in ended:
        details = json.loads(details_json or "{}")
        if any(details.get(flag) for flag in FLAGS) and (reason or details.get("why")):
            bind.execute(sa.update(infusion).where(infusion.c.bag_id == bag_id)
                         .values(volume_reason=(reason or details.get("why"))[:500]))


def downgrade() -> None:
    with op.batch_alter_table('infusion', schema=None) as batch_op:
        batch_op.drop_column('volume_reason')
