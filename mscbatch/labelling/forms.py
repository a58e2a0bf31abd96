"""Label printing form: what to print (one bag, the whole lot, an A4 sheet) and, for a reprint, why."""
from __future__ import annotations

from wtforms import IntegerField, SelectField, TextAreaField
from wtforms.validators import NumberRange, Optional

from mscbatch.core.bounds import MAX_ROW_ID
from mscbatch.donors.forms import choices
from mscbatch.labelling.models import PRINT_FORMATS
from mscbatch.web.forms import FlaskForm


class PrintForm(FlaskForm):
    print_format = SelectField("Print", choices=choices(list(PRINT_FORMATS.items())), default="lot")
    bag_id = IntegerField("Bag (for one bag)", validators=[  # a row id: beyond INTEGER it overflowed the driver
        Optional(), NumberRange(min=1, max=MAX_ROW_ID, message="Choose a bag of this lot.")])
    reason = TextAreaField("Reason for a reprint (required when a label was printed before)")
