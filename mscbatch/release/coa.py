"""Certificate of analysis as a PDF (ReportLab platypus): lot, product, donor and eligibility, every test with
its specification, result, unit, method, date and verdict, the specification version, deviations and OOS,
and the signatures' manifestation (21 CFR 11.50: printed name, date-time, meaning). Every instant is written as the
pages write it: the site's local time with its zone, UTC beside it (site.local_and_utc). A value changed after
first entry is marked "*", and every correction of the manufacturing record after first entry is listed with its
count (EU GMP Annex 11 8.2). Conditional and exceptional releases are flagged at the top. It also gives the content of
each bag, the culture summary (passage at harvest, cumulative PD, harvest viability), QA's signed donor eligibility
decision in force, and "page x of y" on each page.
"""
from __future__ import annotations

from contextvars import ContextVar
from functools import partial
from io import BytesIO
from typing import Any

import reportlab.pdfbase.rl_codecs  # noqa: F401 - registers the codecs of the fonts below (winansi, symbol, ...)
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy.orm import object_session

from mscbatch.auth.models import User
from mscbatch.core.culture import format_cells
from mscbatch.core.identifiers import din_shown
from mscbatch.core.pdf_pages import NumberedCanvas
from mscbatch.core.release_spec import UNIT_SHOWN, shown_number
from mscbatch.core.site_config import effective_storage_limit_c
from mscbatch.database import utcnow
from mscbatch.donors.models import ScreeningResult
from mscbatch.donors.queries import current_decision, decisions_of, lookbacks_of, rule_set_of
from mscbatch.errors import NotFound
from mscbatch.lots.queries import product_of
from mscbatch.lots.services import gate_and_reasons
from mscbatch.recall.queries import recall_words
from mscbatch.signatures.services import signatures_of, verify
from mscbatch.site import local_and_utc, site_config

_styles = getSampleStyleSheet()
SMALL = ParagraphStyle("small", parent=_styles["BodyText"], fontSize=7.5, leading=9)
BODY = ParagraphStyle("body", parent=_styles["BodyText"], fontSize=9, leading=11)
BOLD = ParagraphStyle("bold", parent=BODY, fontName="Helvetica-Bold")
FLAG = ParagraphStyle("flag", parent=BODY, textColor=colors.HexColor("#9a1b1b"), fontName="Helvetica-Bold")
#: the top line of a certificate of a lot not in use: a signature on its record (an OOS closed, a clinician's request
#: for exceptional use) must not read as a release
NOT_IN_USE = {
    "in_process": "NOT RELEASED: the lot is in process; no signature on this certificate releases it for clinical use",
    "quarantine": "NOT RELEASED: the lot is in quarantine; no signature on this certificate releases it for clinical "
                  "use",
    "rejected": "REJECTED: not for clinical use",
    "recalled": "RECALLED: not for clinical use",
    "expired": "EXPIRED: not for clinical use",
}
#: the legend of the asterisk the results table puts beside a value changed after first entry, printed only when one does
CHANGED_LEGEND = ("* value changed after first entry (the original value and the reason are in the audit trail; "
                  "EU GMP Annex 11 8.2).")
VERDICT_COLOURS = {"pass": "#1d6b2e", "fail": "#9a1b1b", "pending": "#8a5a00", "informative": "#3b4a6b"}


#: the encodings of the certificate's fonts (Helvetica, then ReportLab's Symbol and ZapfDingbats fall-backs): a
#: character none of them holds is drawn as a black square, so it is written as its code point instead (_printable)
FONT_ENCODINGS = ("winansi", "symbol", "zapfdingbats")
#: the characters written as code points on the certificate being built (certificate_pdf says what they mean)
_unprintable: ContextVar[set[str] | None] = ContextVar("coa_unprintable", default=None)


def _drawable(char: str) -> bool:
    if char.isspace():  # a line break or a tab in a description: laid out as a space
        return True
    for encoding in FONT_ENCODINGS:
        try:
            char.encode(encoding)
        except UnicodeEncodeError:
            continue
        return True
    return False


def _printable(text: str) -> str:
    """The text as the certificate's fonts can draw it. A character they have no glyph for (the ł of a Polish
    analyst's or signer's name, Cyrillic, Chinese) was drawn as a black square, so the certificate showed something
    other than the record: it is written as its Unicode code point, "Pawe[U+0142]", and the certificate says so."""
    if all(_drawable(char) for char in text):
        return text
    out = []
    for char in text:
        if _drawable(char):
            out.append(char)
            continue
        code = f"[U+{ord(char):04X}]"
        found = _unprintable.get()
        if found is not None:
            found.add(code)
        out.append(code)
    return "".join(out)


def _p(text: Any, style: ParagraphStyle = SMALL) -> Paragraph:
    return Paragraph(_escaped(str(text if text is not None else "")), style)


#: the width a table may take: landscape A4 less the 12 mm margins and the frame's own 6 pt padding on each side
#: (tables summed to the margins by hand reached 4 to 12 pt past the right one)
FRAME_WIDTH = landscape(A4)[0] - 24 * mm - 12


def _fit(widths: list[float]) -> list[float]:
    """Column widths, in their proportions, no wider than the frame (FRAME_WIDTH)."""
    total = sum(widths)
    return widths if total <= FRAME_WIDTH else [width * FRAME_WIDTH / total for width in widths]


def _grid(rows: list[list[Any]], widths: list[float]) -> Table:
    # splitInRow: a row taller than a page (an OOS investigation or a justification of some thousands of characters,
    # which no field limits) goes on over the next page; without it ReportLab refused to lay the certificate out
    table = Table(rows, colWidths=_fit(widths), repeatRows=1, hAlign="LEFT", splitInRow=1)
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8), ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8ecf2")),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#9aa5b5")), ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]))
    return table


def _test_name(review: Any, test_id: str) -> str:
    """A test as the specification names it ("Viable cell count"), not its internal id."""
    try:
        return str(review.spec.test(test_id).name)
    except KeyError:
        return test_id


def _when(value: Any, seconds: bool = False) -> str:
    """An instant in the words of the lot's page (site.local_and_utc): the site's time with its zone, UTC beside it.
    Collected and Frozen are instants in the record (Lot.collection_at, Lot.frozen_at), so they are given with their
    time as well, never a bare day read in one zone or the other."""
    return local_and_utc(value, seconds)


def _oos_text(oos: Any) -> str:
    """The OOS description; a late OOS also says how many patients received the lot (to notify). A certificate
    names no patient, whoever prints it: it goes with the lot (to a clinical site, into an inspector's evidence
    bundle) and technicians and administrators may print it. The patients are named on the lot's release review
    page and in the recall report, for the readers of the patient pages."""
    if not getattr(oos, "late", False):
        return oos.description
    count = len(oos.patients)
    if not count:
        return oos.description + " Patients to notify: none recorded as having received the lot."
    return (oos.description + f" Patients to notify: {count} (named for QA and clinicians on the lot's release "
            "review page and in the recall report).")


def _tests(review: Any) -> Table:
    rows: list[list[Any]] = [[_p(h) for h in ("Test", "Specification", "Result", "Unit",
                                              "Method · analyst · instrument", "Date", "Verdict", "Blocking")]]
    for row in review.rows:
        v, current = row.verdict, row.current
        value = "—"
        if current is not None:
            # counts in millions with "x10^6 cells" in the Unit column, as the limits are written
            value = shown_number(row.unit, current.value) + (" *" if current.changed_after_entry else "")
        shown_unit = UNIT_SHOWN.get(row.unit, row.unit)
        verdict = _verdict_cell(v)
        limit = v.limit_text + (f" ({row.note})" if row.note else "")  # as the review page: "Site value to confirm"
        # a failing result an OOS invalidation replaced is said on its test's row, with its cause: the table alone
        # shows that the test failed once and why that result no longer counts (FDA OOS guidance 2006)
        shown_value: Any = [_p(value)] + [_p(f"({words})") for words in review.invalidations(row)]
        rows.append([_p(v.name), _p(limit), shown_value, _p(shown_unit),
                     _p(_how(current) if current else row.method), _p(current.tested_on if current else ""),
                     verdict, _p("yes" if v.blocking else "informative")])
    return _grid(rows, [44 * mm, 50 * mm, 38 * mm, 18 * mm, 48 * mm, 20 * mm, 24 * mm, 20 * mm])


def _verdict_cell(verdict: Any) -> Paragraph:
    """The verdict as printed: its status in its colour; an informative result that misses its informative limit
    says so, from the same judgement the review page words ("does not meet its informative limit":
    core.verdicts.judge_test's meets_limit), "INFORMATIVE – does not meet >= 20 %" (the miss in the failure's
    colour), so a blue INFORMATIVE alone never reads as a result within its limit."""
    colour = VERDICT_COLOURS.get(str(verdict.status), "#000000")
    markup = f'<font color="{colour}"><b>{_escaped(str(verdict.status).upper())}</b></font>'
    if str(verdict.status) == "informative" and verdict.meets_limit is False:
        markup += (f'<font color="{VERDICT_COLOURS["fail"]}"><b> – does not meet '
                   f'{_escaped(verdict.limit_text)}</b></font>')
    return Paragraph(markup, SMALL)


def _escaped(text: str) -> str:
    return _printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _how(result: Any) -> str:
    """How the result was obtained, as the review page says it (DOMAIN.md section 5: each result has its method,
    analyst and instrument or reagent lot)."""
    parts = [result.method, result.analyst, result.instrument, f"reagent {result.reagent_lot}" if result.reagent_lot
             else ""]
    return " · ".join(part for part in parts if part)


def _assessed(review: Any, deviation: Any) -> str:
    """QA's signed assessment of the deviation, if any, with its signatures' manifestation."""
    if deviation.id not in review.assessments:
        return ""
    assessment, signatures = review.assessments[deviation.id]
    signed = "; ".join(f"{s.printed_name}, {_when(s.signed_at)}, meaning: {s.meaning}" for s in signatures)
    return f". Assessed by QA ({signed}): {assessment.outcome_words}. {assessment.rationale}"


def _deviation_words(review: Any, deviation: Any) -> str:
    """A deviation and QA's signed assessment when there is one: a major or critical one is assessed before the
    release (EU GMP Annex 16 1.7.17); one recorded after the release was not weighed by the release signature
    (Annex 11 8.2: the printout shows what changed after the signature)."""
    if review.after_release(deviation):
        return f"AFTER RELEASE, not weighed by the release signature: {deviation.description}" + _assessed(
            review, deviation)
    if review.awaiting_assessment(deviation):
        return f"NOT YET ASSESSED by QA (needed before release): {deviation.description}"
    return deviation.description + _assessed(review, deviation)


def corrections_heading(corrections: list[Any]) -> str:
    """The count said on the printouts (EU GMP Annex 11 8.2), as the review page says it."""
    count = len(corrections)
    if not count:
        return "Manufacturing record corrected after first entry: none"
    return f"Manufacturing record corrected after first entry: {count} correction{'' if count == 1 else 's'}"


def corrections_section(corrections: list[Any]) -> Any:
    """Every correction of the manufacturing record after first entry (lots.record_corrections): what, each value
    old -> new, who, when (local, UTC) and why; the count alone when there is none. The trace PDF of a lot prints
    the same (recall.report.trace_pdf)."""
    heading = Paragraph(_printable(corrections_heading(corrections)), _styles["Heading3"])
    if not corrections:
        return KeepTogether([heading])
    rows = [[_p(h) for h in ("Corrected", "Old -> new", "By", "When (local, UTC)", "Reason")]] + [
        [_p(c.what), _p(c.change_words("->")), _p(c.by), _p(_when(c.at, seconds=True)), _p(c.reason)]
        for c in corrections]
    return KeepTogether([heading, _grid(rows, [40 * mm, 85 * mm, 35 * mm, 45 * mm, 68 * mm])])


def _signed(review: Any) -> list[tuple[Any, str]]:
    """Every signature on the lot's record with the meaning to print (21 CFR 11.50): the disposition and OOS
    signatures as signed; a deviation assessment's and a recall's also name what they were signed on, since
    their meaning alone does not say which deviation or recall."""
    rows = []
    for disposition, sigs in review.dispositions:
        replaced = review.superseded_by(disposition)  # a clinician's request another request withdrew
        note = (f" — request {disposition.id}, WITHDRAWN: superseded by request {replaced.id}, not countersigned"
                if replaced is not None else "")
        if disposition.justification and disposition.kind != "exceptional_release":
            note += (" — reason: " if disposition.kind == "rejection" else " — justification: ") + \
                disposition.justification
        if disposition.count_justification:
            note += " — viable cell count above the harvest justified: " + disposition.count_justification
        rows += [(s, s.meaning + note) for s in sigs]
    tests = {o.id: _test_name(review, o.test_id) for o in review.oos}
    rows += [(s, f"{s.meaning} (OOS investigation {oos_id}, {tests.get(oos_id, '?')})")
             for oos_id, sigs in sorted(review.oos_signatures.items()) for s in sigs]
    for deviation_id, (assessment, sigs) in sorted(review.assessments.items()):
        rows += [(s, f"{s.meaning} (deviation {deviation_id}, {assessment.severity})") for s in sigs]
    for recall, sigs in review.recalls:
        rows += [(s, f"{s.meaning} — {recall_words(recall)}") for s in sigs]
    return rows


def _signatures(review: Any) -> Any:
    signed = _signed(review)
    if not signed:
        return _p("Not signed: this lot is not released.", FLAG)
    return _grid([[_p("Printed name"), _p("Date-time (local, UTC)"), _p("Meaning")]] + [
        [_p(s.printed_name), _p(_when(s.signed_at, seconds=True)), _p(meaning)] for s, meaning in signed],
        [70 * mm, 50 * mm, 135 * mm])


#: the dispositions whose signatures release the lot for clinical use (a rejection releases nothing)
RELEASING_KINDS = ("release", "conditional_release", "completion", "exceptional_release")


def release_signature_problem(session: Any, review: Any) -> str | None:
    """Why a release signature of the lot does not verify (signatures.services.verify: its seal, its record, the
    record's content since), naming the signature; None when every one does. The certificate is refused and the
    release page says it in red: a release nobody can vouch for must not read as one."""
    for disposition, sigs in review.dispositions:
        if disposition.kind not in RELEASING_KINDS:
            continue
        for signature in sigs:
            check = verify(session, signature, disposition)
            if not check.valid:
                return f"signature {signature.id}, “{signature.meaning}”: {check.problem}"
    return None


def certificate_refusal(problem: str) -> str:
    """The words of a refused certificate (and of the release page's red banner)."""
    return (f"The certificate cannot be printed: the release signature does not verify ({problem}). This is a data "
            "integrity incident: tell QA.")


def donor_banner(review: Any) -> str | None:
    """The lot page's warning on its donor's eligibility now (templates/lots/detail.html, from the same judgement:
    lots.services.gate_and_reasons), with its reasons; None when the donor gate says "approved". Printed at the top
    of the certificate: a donor found ineligible after the release (a late positive result) must not leave a
    certificate that reads "released" as fit for use."""
    if review.gate == "approved":
        return None
    session = object_session(review.lot)
    gate, reasons = gate_and_reasons(session, review.lot) if session is not None else (review.gate, [])
    if gate == "approved":
        return None
    in_use = review.lot.status in ("released", "conditional_release")
    if gate == "ineligible":
        words = ("The donor is now ineligible: the bags of this released lot must not be given. QA starts the recall "
                 f"of donor {review.donor.code}'s lots." if in_use
                 else "The donor is now ineligible: this lot cannot be released.")
    else:
        words = ("Donor eligibility pending: the bags of this released lot must not be given until QA clears the "
                 "donor again." if in_use else "Donor eligibility pending: release impossible until approved.")
    return words + "".join(f" {reason.rstrip('.')}." for reason in reasons)


def certificate_pdf(review: Any) -> bytes:
    found: set[str] = set()
    token = _unprintable.set(found)
    try:
        return _certificate(review, found)
    finally:
        _unprintable.reset(token)


def _certificate(review: Any, unprintable: set[str]) -> bytes:
    lot, spec = review.lot, review.spec
    buffer = BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=landscape(A4), leftMargin=12 * mm, rightMargin=12 * mm,
                            topMargin=12 * mm, bottomMargin=12 * mm, title=f"Certificate of analysis {lot.lot_number}",
                            author="mscbatch")
    story: list[Any] = [_p(f"Certificate of analysis — lot {lot.lot_number}", _styles["Title"])]
    banner = donor_banner(review)
    if banner:  # above everything, the status included: nobody reads this certificate as fit for use
        story += [_banner(banner), Spacer(1, 2 * mm)]
    site = site_config()
    product = _product(lot)
    storage = (f"{effective_storage_limit_c(site, product):f} °C or colder" if product is not None
               else f"{site.storage_temperature_max_c:f} °C or colder (site SOP)")
    facts = [
        ["Lot", lot.lot_number, "Status", lot.status.replace("_", " ")],
        ["Product", f"{lot.product_name} {lot.product_class} ({lot.product_id})", "Manufacturing site",
         site.facility_name],
        ["Donor", review.donor.code, "Donor eligibility", review.gate],
        ["Collected", f"{_when(lot.collection_at)} at {lot.collection_site}", "Frozen",
         _when(lot.frozen_at) if lot.frozen_at else "not frozen yet"],
        ["Expiry", _when(lot.expires_at), "Storage", storage],
        ["Specification", f"{spec.id} version {spec.version} (sha256 {spec.sha256[:16]}…)", "Printed",
         _when(utcnow())],
    ]
    info = Table([[_p(a, BODY), _p(b, BODY), _p(c, BODY), _p(d, BODY)] for a, b, c, d in facts],
                 colWidths=_fit([30 * mm, 130 * mm, 35 * mm, 75 * mm]))
    info.setStyle(TableStyle([("FONT", (0, 0), (0, -1), "Helvetica-Bold"), ("FONT", (2, 0), (2, -1), "Helvetica-Bold"),
                              ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    dins = ", ".join(din_shown(b) for b in review.bags) or "none yet"
    story += [info, _p(f"Bags ({review.bag_count}), DIN and check character: {dins}", BODY),
              _p(_culture_words(review), BODY), _p(_decision_words(review), BODY)]
    if review.bags:
        story += [Spacer(1, 1.5 * mm), _p("Content of each bag", BOLD), _bag_table(review)]
    story.append(Spacer(1, 3 * mm))
    if product is not None and product.is_directed:  # as the lot page and the bag labels say it
        story.append(_p(f"For use by intended recipient only: {review.donor.recipient_code or 'NOT RECORDED'}", FLAG))
    if review.expired_words:  # still "released" on the record, but no bag of it may be given any more
        story.append(_p(review.expired_words, FLAG))
    if review.state.flag:
        story.append(_p(review.state.flag, FLAG))
    # said whatever the signatures below are (an OOS closed, a clinician's request), and beside a flag: a lot recalled
    # while its late OOS is still open is headed RECALLED, not with the late OOS alone
    if not review.state.released and (lot.status in NOT_IN_USE or not review.state.flag):
        story.append(_p(NOT_IN_USE.get(lot.status, f"NOT FOR CLINICAL USE: the lot is {lot.status}"), FLAG))
    for disposition, _sigs in review.dispositions:
        if disposition.kind == "rejection" and disposition.signed_at is not None:
            story.append(_p(f"Reason for the rejection: {disposition.justification}", FLAG))
    overall = {"ready": "all blocking tests pass", "pending": "blocking tests pending",
               "fail": "OUT OF SPECIFICATION"}[str(review.verdict.status)]
    story += [_p(f"Overall verdict: {overall}.", BODY), Spacer(1, 2 * mm), _tests(review)]
    if any(row.current is not None and row.current.changed_after_entry for row in review.rows):
        story.append(_p(CHANGED_LEGEND, SMALL))  # the legend only where a value carries its asterisk
    story.append(Spacer(1, 3 * mm))
    story.append(corrections_section(review.corrections))
    section = [Paragraph("Deviations", _styles["Heading3"])]
    if review.deviations:
        section.append(_grid([[_p("Severity"), _p("Description"), _p("Recorded")]] + [
            [_p(d.severity), _p(_deviation_words(review, d)), _p(_when(d.recorded_at))]
            for d in review.deviations],
            [25 * mm, 190 * mm, 40 * mm]))
    else:
        section.append(_p("None recorded.", BODY))
    story.append(KeepTogether(section))
    section = [Paragraph("Out-of-specification investigations", _styles["Heading3"])]
    if review.oos:
        section.append(_grid([[_p(h) for h in ("Test", "Description", "Status", "Conclusion", "Closed")]] + [
            [_p(_test_name(review, o.test_id)), _p(_oos_text(o)), _p(o.status), _p(_conclusion(o)),
             _p(_closed(review, o))] for o in review.oos],
            [30 * mm, 80 * mm, 20 * mm, 75 * mm, 50 * mm]))
    else:
        section.append(_p("None.", BODY))
    story.append(KeepTogether(section))
    story.append(KeepTogether([Paragraph("Electronic signatures", _styles["Heading3"]), _signatures(review)]))
    if unprintable:  # never a silent square in place of a recorded character
        story.append(_p(f"{', '.join(sorted(unprintable))}: a character this certificate's font cannot print, written "
                        "as its Unicode code point; the record keeps it as typed (the review page shows it).", BODY))
    doc.build(story, canvasmaker=partial(NumberedCanvas, footer=f"mscbatch — certificate of analysis, lot "
                                                                 f"{lot.lot_number}", margin=12 * mm))
    return buffer.getvalue()


BANNER = ParagraphStyle("banner", parent=BODY, fontName="Helvetica-Bold", fontSize=12, leading=15,
                        textColor=colors.white)


def _banner(text: str) -> Table:
    """A stop banner across the page: white bold words on the failure's red."""
    table = Table([[Paragraph(_escaped(text), BANNER)]], colWidths=[FRAME_WIDTH], hAlign="LEFT")
    table.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#9a1b1b")),
                               ("TOPPADDING", (0, 0), (-1, -1), 5), ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
                               ("LEFTPADDING", (0, 0), (-1, -1), 6)]))
    return table


def _bag_table(review: Any) -> Table:
    """The content of each bag as the lot page's bag table gives it: DIN with its check character, cells, volume,
    cells per mL and DMSO % (counts as "125 x10^6", core.culture.format_cells)."""
    rows: list[list[Any]] = [[_p(h) for h in ("Bag", "DIN and check character", "Cells in the bag", "Volume",
                                               "Cells per mL", "DMSO")]]
    rows += [[_p(f"{b.bag_number} of {b.bag_count}"), _p(din_shown(b)), _p(f"{format_cells(b.total_cells)} cells"),
              _p(f"{b.volume_ml} mL"), _p(f"{format_cells(b.cells_per_ml)}/mL"), _p(f"{b.dmso_percent} %")]
             for b in review.bags]
    return _grid(rows, [22 * mm, 55 * mm, 40 * mm, 28 * mm, 35 * mm, 22 * mm])


def _culture_words(review: Any) -> str:
    """The culture summary from the steps and the harvest the review page reads (Review.steps, the lot): the last
    passage before the harvest, its cumulative population doublings, and the harvest viability; what is not
    recorded yet is said so, never filled in."""
    lot = review.lot
    passages = [s for s in review.steps if s.kind == "passage"]
    last = passages[-1] if passages else None
    if lot.harvested_at is None:
        passage = f"last passage recorded {last.label}" if last is not None else "no passage recorded"
        harvest = "harvest not recorded yet"
    else:
        passage = f"passage at harvest {last.label}" if last is not None else "passage at harvest: none recorded"
        viability = (f"{lot.harvest_viability_percent} %" if lot.harvest_viability_percent is not None
                     else "not recorded")
        harvest = f"harvest viability {viability}"
        if lot.harvest_total_cells:
            harvest += f" ({format_cells(lot.harvest_total_cells)} cells harvested" + (
                f", {format_cells(lot.harvest_viable_cells)} viable)" if lot.harvest_viable_cells else ")")
    pd = (f"cumulative population doublings {last.cumulative_pd}" if last is not None and last.cumulative_pd
          is not None else "cumulative population doublings not recorded")
    return f"Culture: {passage}; {pd}; {harvest}."


def _decision_words(review: Any) -> str:
    """QA's signed eligibility decision on the donor in force (donors.queries.current_decision, the decision the
    donor gate reads): its meaning, who signed it and when, and the rule set it was judged with. Then every signed
    decision superseded while the lot existed (the approval a recalled lot was released under, reopened since by a
    late reactive result): who signed it, when, its meaning, and when and by what it was superseded (its reason, the
    result that opened its lookback, the decision signed after it), so that the certificate never shows the donor's
    state now without the approval the lot was made and released under."""
    session = object_session(review.lot)
    decision = current_decision(session, review.donor.id) if session is not None else None
    if decision is None:
        words = (f"Donor eligibility decision: no signed decision of QA in force for donor {review.donor.code} "
                 f"(donor eligibility {review.gate}).")
    else:
        rule_set = (f"rule set {decision.ruleset_id} version {decision.ruleset_version} "
                    f"(sha256 {decision.ruleset_sha256[:16]}…)" if decision.ruleset_id else "rule set not recorded")
        words = (f"Donor eligibility decision {decision.id}: {decision.meaning} — {_signed_words(session, decision)}; "
                 f"screening {decision.engine_status}, judged {_when(decision.judged_at)} with {rule_set}.")
    if session is not None:
        words += "".join(" " + _superseded_words(session, review, d, later)
                         for d, later in _superseded_decisions(session, review))
    return words


def _signed_words(session: Any, decision: Any) -> str:
    """Who signed a donor decision and when, with the signature's meaning when it differs from the decision's."""
    return "; ".join(f"signed by {s.printed_name}, {_when(s.signed_at)}"
                     + (f", meaning: {s.meaning}" if s.meaning != decision.meaning else "")
                     for s in signatures_of(session, decision)) or "no signature recorded"


def _superseded_decisions(session: Any, review: Any) -> list[tuple[Any, Any]]:
    """The donor's signed decisions superseded since the lot's tissue was collected (those the lot may have been
    made or released under), oldest first, each with the decision signed after it (None when none was)."""
    decisions = sorted(decisions_of(session, review.donor.id), key=lambda d: d.id)
    collected = review.lot.collection_at
    return [(d, next((n for n in decisions if n.id > d.id), None)) for d in decisions
            if d.superseded_at is not None and (collected is None or d.superseded_at >= collected)]


def _superseded_words(session: Any, review: Any, decision: Any, later: Any) -> str:
    released = getattr(review, "first_released_at", None)
    under = (" (in force when the lot was released)" if released is not None and decision.judged_at <= released
             < decision.superseded_at else "")
    words = (f"Superseded donor eligibility decision {decision.id}{under}: {decision.meaning} — "
             f"{_signed_words(session, decision)}; SUPERSEDED (reopened) on {_when(decision.superseded_at)}"
             + (f": {decision.superseded_reason.strip()}" if decision.superseded_reason else "")).rstrip(".") + "."
    for lookback in lookbacks_of(session, review.donor.id):
        if lookback.superseded_decision_id != decision.id:
            continue
        opener = session.get(User, lookback.opened_by_id)
        words += (f" Lookback {lookback.id} opened {_when(lookback.opened_at)} by "
                  f"{opener.full_name if opener is not None else '?'}")
        result = (session.get(ScreeningResult, lookback.triggering_result_id)
                  if lookback.triggering_result_id is not None else None)
        if result is not None:
            words += (f", on the late result {_marker_name(review.donor, result.marker)} {result.result} ({result.method}, sample "
                      f"{result.sample_date}, lab reference {result.lab_reference}, entered {_when(result.entered_at)})")
        words += "."
    if later is not None:
        words += (f" Decision signed since: {later.id}, {later.meaning} — {_signed_words(session, later)}"
                  + (" (in force)." if later.superseded_at is None else " (superseded too)."))
    return words


def _marker_name(donor: Any, marker_id: str) -> str:
    """A screening marker as the donor's rule set names it ("Anti-HIV-1/2"), its id when the set no longer has it."""
    try:
        marker = rule_set_of(donor).marker(marker_id)
    except NotFound:
        return marker_id
    return str(marker.name) if marker is not None else marker_id


def _product(lot: Any) -> Any:
    try:
        return product_of(lot)
    except NotFound:  # the product left products.toml: the certificate still prints, with the site's limit
        return None


def _conclusion(oos: Any) -> str:
    """QA's investigation and conclusion; an invalidation starts with the assignable laboratory cause it was
    signed on (core.oos_causes), as the review page says it."""
    if oos.status != "invalidated":
        # oos reads the review's queries: imported when used
        from mscbatch.release.oos import conclusion_words

        words = conclusion_words(object_session(oos), oos) if oos.closed_at is not None else None
        return " ".join(part for part in (words, str(oos.investigation or "")) if part)
    return f"Assignable laboratory cause: {oos.cause_words}. {oos.investigation or ''}".strip()


def _closed(review: Any, oos: Any) -> str:
    """Who closed an OOS investigation, when, and the retest it was closed with (its value as the table shows it)."""
    if oos.closed_at is None:
        return "open"
    who = review.users.get(oos.closed_by_id, "?")
    text = f"{who}, {_when(oos.closed_at)}"
    retest = next((r for row in review.rows for r in row.results if r.id == oos.retest_result_id), None)
    if retest is not None:
        text += f"; retest {review.shown(retest)} ({retest.tested_on})"
    return text
