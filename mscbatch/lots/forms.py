"""Lot, step, reagent, bag and storage forms (Flask-WTF, CSRF). They parse input only: cell counts are typed
in millions (x10^6, as in the lab record) and turned into whole cells by the view; every rule is checked by the
services, whose refusals are shown next to the field they name (field names = service field names)."""
from __future__ import annotations

from wtforms import (
    DateField,
    DateTimeLocalField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from mscbatch.donors.forms import choices
from mscbatch.lots.models import DEVIATION_SEVERITIES, REAGENT_TYPES, STORAGE_KINDS, TISSUE_UNITS
from mscbatch.web.forms import FiniteDecimalField, FlaskForm

DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
MILLIONS = "(x10^6 cells)"


def _millions(label: str) -> FiniteDecimalField:
    return FiniteDecimalField(f"{label} {MILLIONS}", places=None, validators=[
        InputRequired(f"Give the {label.lower()}."), NumberRange(min=0, message="Must be positive.")])


class LotForm(FlaskForm):
    donor_id = SelectField("Donor", coerce=int, validators=[DataRequired("Choose the donor.")])
    product_id = SelectField("Product", validators=[DataRequired("Choose the product.")])
    collection_at = DateTimeLocalField("Collection date and time (site time)", format=DATETIME_FORMATS,
                                       validators=[InputRequired("Give the collection date and time.")])
    collection_site = StringField("Collection site", validators=[DataRequired("Give the collection site."),
                                                                 Length(max=120)])
    tissue_amount = FiniteDecimalField("Tissue amount", places=None, validators=[InputRequired("Give the tissue amount.")])
    tissue_unit = SelectField("Unit", choices=choices(TISSUE_UNITS.items()), default="g")


class IsolationForm(FlaskForm):
    performed_on = DateField("Isolation date", validators=[InputRequired("Give the date.")])
    notes = TextAreaField("Method and notes", validators=[Length(max=2000)])


class PassageForm(FlaskForm):
    passage_number = IntegerField("Passage number (P)", validators=[InputRequired("Give the passage number.")])
    performed_on = DateField("Harvest date of the passage", validators=[InputRequired("Give the date.")])
    seeded_cells = _millions("Cells seeded")
    harvested_cells = _millions("Cells harvested")
    viability_percent = FiniteDecimalField("Viability (%)", places=None, validators=[InputRequired("Give the viability.")])
    days_in_culture = FiniteDecimalField("Days in culture", places=None, validators=[Optional()])
    notes = TextAreaField("Notes", validators=[Length(max=2000)])


class DeviationForm(FlaskForm):
    step_id = SelectField("Step", coerce=int, validators=[DataRequired("Choose the step.")])
    severity = SelectField("Severity", choices=choices(DEVIATION_SEVERITIES.items()), default="minor")
    description = TextAreaField("What happened", validators=[DataRequired("Describe the deviation."),
                                                             Length(max=2000)])


class ReagentUseForm(FlaskForm):
    reagent_lot_id = SelectField("Reagent lot", coerce=int, validators=[DataRequired("Choose the reagent lot.")])
    step_id = SelectField("Used at", coerce=int, default=0)
    used_on = DateField("Date of use", validators=[InputRequired("Give the date of use.")])


class HarvestForm(FlaskForm):
    harvested_at = DateTimeLocalField("Harvest date and time (site time)", format=DATETIME_FORMATS,
                                      validators=[InputRequired("Give the harvest date and time.")])
    total_cells = _millions("Total cells")
    viability_percent = FiniteDecimalField("Viability (%)", places=None, validators=[InputRequired("Give the viability.")])


class CryoForm(FlaskForm):
    frozen_at = DateTimeLocalField("Freezing date and time (site time)", format=DATETIME_FORMATS,
                                   validators=[InputRequired("Give the freezing date and time.")])
    bag_count = IntegerField("Number of bags", validators=[InputRequired("Give the number of bags."),
                                                          NumberRange(min=1, max=26, message="1 to 26 bags.")])
    volume_ml = FiniteDecimalField("Volume per bag (mL)", places=None, validators=[InputRequired("Give the volume.")])
    cells_per_ml = FiniteDecimalField(f"Viable cells per mL {MILLIONS}", places=None,
                                validators=[InputRequired("Give the cells per mL.")])
    dmso_percent = FiniteDecimalField("DMSO (%)", places=None, validators=[InputRequired("Give the DMSO percentage.")])


class TransitionForm(FlaskForm):
    target = SelectField("New state", validators=[DataRequired("Choose the new state.")])
    reason = TextAreaField("Reason", validators=[DataRequired("Give a reason: it goes into the audit trail."),
                                                 Length(max=500)])


class ReagentLotForm(FlaskForm):
    reagent_type = SelectField("Type", choices=choices(REAGENT_TYPES.items()), default="medium")
    name = StringField("Reagent name", validators=[DataRequired("Give the reagent name."), Length(max=120)])
    supplier = StringField("Supplier", validators=[DataRequired("Give the supplier."), Length(max=120)])
    lot_number = StringField("Supplier's lot number", validators=[DataRequired("Give the lot number."),
                                                                  Length(max=60)])
    expiry_date = DateField("Expiry date", validators=[InputRequired("Give the expiry date.")])


class LocationForm(FlaskForm):
    kind = SelectField("Kind", choices=choices(STORAGE_KINDS.items()), default="box")
    name = StringField("Name", validators=[DataRequired("Give a name."), Length(max=80)])
    parent_id = SelectField("Inside", coerce=int, default=0)
    temperature_max_c = FiniteDecimalField("Storage temperature, freezers and tanks (°C, at most)", places=None,
                                     validators=[Optional()])
    rows = IntegerField("Rows (boxes)", validators=[Optional()])
    columns = IntegerField("Columns (boxes)", validators=[Optional()])


class StoreBagForm(FlaskForm):
    bag_id = SelectField("Bag", coerce=int, validators=[DataRequired("Choose the bag.")])
    box_id = SelectField("Box", coerce=int, validators=[DataRequired("Choose the box.")])
    position = StringField("Position (e.g. A1)", validators=[DataRequired("Give the position."), Length(max=4)])
    reason = StringField("Reason (required for a move)", validators=[Length(max=500)])


class IdentifierForm(FlaskForm):
    class Meta:
        csrf = False  # a read-only check, submitted by GET so a scanner can be pointed at the URL

    text = StringField("Typed or scanned identifier (DIN with K, or product code)",
                       validators=[DataRequired("Type or scan an identifier."), Length(max=40)])
