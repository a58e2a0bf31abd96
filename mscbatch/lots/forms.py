"""Lot, step, reagent, bag and storage forms (Flask-WTF, CSRF). They parse input only: cell counts are typed
in millions (x10^6, as in the lab record) and turned into whole cells by the view; every rule is checked by the
services, whose refusals are shown next to the field they name (field names = service field names)."""
from __future__ import annotations

from typing import Any

from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, StopValidation

from mscbatch.api.plain_numbers import ASCII_SPACES, rule_words
from mscbatch.core.identifiers import MAX_DIVISIONS
from mscbatch.donors.forms import choices
from mscbatch.lots.models import DEVIATION_SEVERITIES, REAGENT_TYPES, STORAGE_KINDS, TISSUE_UNITS
from mscbatch.lots.storage import MAX_COLUMNS, MAX_ROWS, grid_rule
from mscbatch.web.date_fields import DateTimeSiteField, TypedDateField
from mscbatch.web.forms import FiniteDecimalField, FlaskForm

DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
MILLIONS = "(x10^6 cells)"


class NumberField(FiniteDecimalField):
    """A decimal typed by a person: one message naming the field and the rule when it is not a plainly written
    number (a decimal comma, "9,5", used to give "Not a valid decimal value." and "Must be positive." together;
    "1_0", "١٢" or "1e2" were read as 10, 12 and 100)."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError:
            typed = str(valuelist[0]).strip(ASCII_SPACES) if valuelist else ""  # a no-break space is shown
            if "," in typed:
                rule = "type it with a point, not a comma, such as 12.5"
            else:  # "1_0", "١٢", "1e2": Decimal() read them as numbers, FiniteDecimalField does not
                rule = rule_words(signed=True)
            raise ValueError(f"{self.short_label}: {typed[:40]!r} is not a number; {rule}.") from None

    @property
    def short_label(self) -> str:
        return self.label.text.split(" (")[0]


def _not_negative(_form: Any, field: Any) -> None:
    """Only a number that was read (a text already has its message)."""
    if field.data is not None and field.data < 0:
        raise StopValidation(f"{field.short_label}: a number of cells cannot be negative.")


def _millions(label: str) -> NumberField:
    return NumberField(f"{label} {MILLIONS}", places=None, validators=[
        InputRequired(f"Give the {label.lower()}."), _not_negative])


class LotForm(FlaskForm):
    donor_id = SelectField("Donor", coerce=int, validators=[DataRequired("Choose the donor.")])
    product_id = SelectField("Product", validators=[DataRequired("Choose the product.")])
    collection_at = DateTimeSiteField("Collection date and time (site time)", format=DATETIME_FORMATS,
                                       validators=[InputRequired("Give the collection date and time.")])
    collection_site = StringField("Collection site", validators=[DataRequired("Give the collection site."),
                                                                 Length(max=120)])
    tissue_amount = NumberField("Tissue amount", places=None, validators=[InputRequired("Give the tissue amount.")])
    tissue_unit = SelectField("Unit", choices=choices(TISSUE_UNITS.items()), default="g")
    # shown once a lot of the same collection was found (the view names that lot in the label)
    same_collection_as_existing = BooleanField("Another lot from the same collection")


class IsolationForm(FlaskForm):
    performed_on = TypedDateField("Isolation date", validators=[InputRequired("Give the date.")])
    notes = TextAreaField("Method and notes", validators=[Length(max=2000)])


class PassageForm(FlaskForm):
    passage_number = IntegerField("Passage number (P)", validators=[InputRequired("Give the passage number.")])
    performed_on = TypedDateField("Harvest date of the passage", validators=[InputRequired("Give the date.")])
    seeded_cells = _millions("Cells seeded")
    harvested_cells = _millions("Cells harvested")
    viability_percent = NumberField("Viability (%)", places=None, validators=[InputRequired("Give the viability.")])
    days_in_culture = NumberField("Days in culture", places=None, validators=[Optional()])
    notes = TextAreaField("Notes", validators=[Length(max=2000)])


class DeviationForm(FlaskForm):
    step_id = SelectField("Step", coerce=int, validators=[DataRequired("Choose the step.")])
    severity = SelectField("Severity", choices=choices(DEVIATION_SEVERITIES.items()), default="minor")
    description = TextAreaField("What happened", validators=[DataRequired("Describe the deviation."),
                                                             Length(max=2000)])


class ReagentUseForm(FlaskForm):
    reagent_lot_id = SelectField("Reagent lot", coerce=int, validators=[DataRequired("Choose the reagent lot.")])
    step_id = SelectField("Used at", coerce=int, default=0)
    used_on = TypedDateField("Date of use", validators=[InputRequired("Give the date of use.")])


class HarvestForm(FlaskForm):
    harvested_at = DateTimeSiteField("Harvest date and time (site time)", format=DATETIME_FORMATS,
                                      validators=[InputRequired("Give the harvest date and time.")])
    total_cells = _millions("Total cells")
    viability_percent = NumberField("Viability (%)", places=None, validators=[InputRequired("Give the viability.")])


def _reason_field() -> TextAreaField:
    return TextAreaField("Reason for the correction", validators=[
        DataRequired("Give the reason for the correction: it goes into the audit trail."), Length(max=500)])


# A correction's labels differ from the recording forms' (a label names one field of the page)
class HarvestCorrectionForm(FlaskForm):
    harvested_at = DateTimeSiteField("Harvest time, corrected (site time)", format=DATETIME_FORMATS,
                                      validators=[InputRequired("Give the harvest date and time.")])
    total_cells = NumberField(f"Total, corrected {MILLIONS}", places=None, validators=[
        InputRequired("Give the total cells."), _not_negative])
    viability_percent = NumberField("Viability, corrected (%)", places=None,
                                    validators=[InputRequired("Give the viability.")])
    reason = _reason_field()


class PassageCorrectionForm(FlaskForm):
    performed_on = TypedDateField("Date, corrected", validators=[InputRequired("Give the date.")])
    seeded_cells = NumberField(f"Seeded, corrected {MILLIONS}", places=None, validators=[
        InputRequired("Give the cells seeded."), _not_negative])
    harvested_cells = NumberField(f"Harvested, corrected {MILLIONS}", places=None, validators=[
        InputRequired("Give the cells harvested."), _not_negative])
    viability_percent = NumberField("Viability, corrected (%)", places=None,
                                    validators=[InputRequired("Give the viability.")])
    days_in_culture = NumberField("Days, corrected", places=None, validators=[Optional()])
    reason = _reason_field()


class ReagentUseCorrectionForm(FlaskForm):
    reagent_lot_id = SelectField("Reagent lot, corrected", coerce=int,
                                 validators=[DataRequired("Choose the reagent lot.")])
    used_on = TypedDateField("Date of use, corrected", validators=[InputRequired("Give the date of use.")])
    reason = _reason_field()


class BagContentCorrectionForm(FlaskForm):
    """A value left blank is kept as recorded (lots.corrections.correct_bag_content): the form opened from the
    section's summary, the bag then chosen in the select, opens empty, and a technician correcting the volume only
    was refused "Give the cells per mL" and "Give the DMSO percentage"."""

    bag_id = SelectField("Bag to correct", coerce=int, validators=[DataRequired("Choose the bag to correct.")])
    volume_ml = NumberField("Volume, corrected (mL)", places=None, validators=[Optional()])
    cells_per_ml = NumberField(f"Viable cells per mL, corrected {MILLIONS}", places=None,
                               validators=[Optional(), _not_negative])
    # the percentage, never the fraction: 0.1 typed for 10 % under-counted a dose's DMSO per kg 100-fold
    dmso_percent = NumberField("DMSO, corrected (%: 10 for 10 %)", places=None, validators=[Optional()])
    reason = _reason_field()


class GridField(IntegerField):
    """A box's rows or columns, or a lot's number of bags: text that is not a whole number in plain digits ("2.5")
    is refused naming the field and its rule, as the services say a number outside it (WTForms said "Not a valid
    integer value.")."""

    def __init__(self, label: str, most: int, **kwargs: Any) -> None:
        super().__init__(label, **kwargs)
        self.most = most

    def process_formdata(self, valuelist: list[Any]) -> None:
        rule = grid_rule(self.label.text.split(" (")[0], self.most)
        typed = str(valuelist[0]).strip(ASCII_SPACES) if valuelist else ""
        if typed and not (typed.isascii() and typed.removeprefix("-").isdigit()):  # int() reads "٥" as 5
            self.data = None
            raise ValueError(rule)
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError(rule) from None


class CryoForm(FlaskForm):
    frozen_at = DateTimeSiteField("Freezing date and time (site time)", format=DATETIME_FORMATS,
                                   validators=[InputRequired("Give the freezing date and time.")])
    # "2.5" said WTForms' "Not a valid integer value.": the rule in words, as a box's rows and columns say it
    bag_count = GridField("Number of bags", most=MAX_DIVISIONS, validators=[
        InputRequired("Give the number of bags."),
        NumberRange(min=1, max=MAX_DIVISIONS, message=grid_rule("Number of bags", MAX_DIVISIONS))])
    volume_ml = NumberField("Volume per bag (mL)", places=None, validators=[InputRequired("Give the volume.")])
    cells_per_ml = NumberField(f"Viable cells per mL {MILLIONS}", places=None,
                                validators=[InputRequired("Give the cells per mL.")])
    # the percentage, never the fraction: 0.1 typed for 10 % under-counted a dose's DMSO per kg 100-fold
    dmso_percent = NumberField("DMSO (%: 10 for 10 %)", places=None,
                               validators=[InputRequired("Give the DMSO percentage.")])


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
    expiry_date = TypedDateField("Expiry date", validators=[InputRequired("Give the expiry date.")])


class ReagentLotCorrectionForm(FlaskForm):
    """The reagent lot page's correction, prefilled with what is registered (the type is not corrected)."""

    name = StringField("Reagent name, corrected", validators=[DataRequired("Give the reagent name."),
                                                             Length(max=120)])
    supplier = StringField("Supplier, corrected", validators=[DataRequired("Give the supplier."), Length(max=120)])
    lot_number = StringField("Supplier's lot number, corrected", validators=[DataRequired("Give the lot number."),
                                                                             Length(max=60)])
    expiry_date = TypedDateField("Expiry date, corrected", validators=[InputRequired("Give the expiry date.")])
    reason = _reason_field()
    # what the page showed (reagent_lot_corrections.shown_fingerprint): a page opened before another correction
    # is refused rather than sending the old values back
    shown = HiddenField()


class LocationForm(FlaskForm):
    kind = SelectField("Kind", choices=choices(STORAGE_KINDS.items()), default="box")
    name = StringField("Name", validators=[DataRequired("Give a name."), Length(max=80)])
    parent_id = SelectField("Inside", coerce=int, default=0)
    # "Storage temperature: 'cold' is not a number; ..." (NumberField); the services judge the range and a blank
    temperature_max_c = NumberField("Storage temperature (°C, at most; freezers and tanks)", places=None,
                                    validators=[Optional()])
    rows = GridField("Rows (boxes)", most=MAX_ROWS, validators=[Optional()])
    columns = GridField("Columns (boxes)", most=MAX_COLUMNS, validators=[Optional()])


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
