"""Labels: the PDF of a 100-bag lot vs the bare QR encoding of the same 100 tokens (the floor, ratio <= 2.0).

The QR encoding is work the PDF cannot avoid (pure-Python qrcode); everything above it (text fitting, drawing,
Code 128, the PDF file) is what this ratio watches. The labels are real: 100 bags of the generated database
mapped by the service (mscbatch.labelling.services.label_data), rendered by the renderer print_labels uses.
"""
from __future__ import annotations

import qrcode
from qrcode.constants import ERROR_CORRECT_H, ERROR_CORRECT_Q
from sqlalchemy import select

from bench.common import Row, opened, paired_medians, sizes
from mscbatch.labelling.services import BAG_LAYOUT, label_data
from mscbatch.labels.layout import load_layout
from mscbatch.labels.render import render_labels
from mscbatch.lots.models import Bag, Lot

LABELS = 100
ROUNDS = 7


def _floor(tokens: list[str], level: int) -> None:
    for token in tokens:
        code = qrcode.QRCode(version=None, error_correction=level, border=0, box_size=1)
        code.add_data(token)
        code.make(fit=True)
        code.get_matrix()


def run(kind: str) -> list[Row]:
    if kind != "sqlite":
        return []  # rendering does not touch the database: measured once
    with opened(kind, sizes()[1]) as app, app.app_context():
        session = app.extensions["mscbatch.db"].new_session()
        rows = session.execute(select(Bag, Lot).join(Lot, Lot.id == Bag.lot_id)
                               .where(Lot.status == "released").order_by(Bag.id).limit(LABELS)).all()
        labels = [label_data(session, bag, lot, base_url="https://mscbatch.example/b", key=app.config["LABEL_KEY"])
                  for bag, lot in rows]
        session.close()
    if len(labels) < LABELS:
        raise RuntimeError(f"the generated database has only {len(labels)} released bags, {LABELS} needed")
    layout = load_layout(BAG_LAYOUT)
    qr = next(s for s in layout.symbols if s.kind == "qr")
    level = {"Q": ERROR_CORRECT_Q, "H": ERROR_CORRECT_H}[qr.error_correction]
    tokens = [label.token_url for label in labels]
    pdf, floor = paired_medians([lambda: render_labels(layout, labels)] * ROUNDS,
                                [lambda: _floor(tokens, level)] * ROUNDS, warmup=1)
    return [Row("-", "labels: 100-bag lot PDF", "qrcode floor", pdf, floor, 2.0)]
