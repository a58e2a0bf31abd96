"""The assignable laboratory causes an OOS investigation may be invalidated with (FDA guidance "Investigating
Out-of-Specification (OOS) Test Results for Pharmaceutical Production", 2006, phase I laboratory investigation;
MHRA "Out of Specification & Out of Trend Investigations", 2018).

A failing result is invalidated only when the laboratory investigation documents an assignable cause: without
one the failure stands and the OOS can only be confirmed. The cause is chosen from this fixed list (its code is
stored on the investigation and signed with it; its words are printed on the review page, the certificate and
beside the retest that replaced the result), and the investigation text describes it. One place for the codes and
their words: the service, the form, the page and the certificate read them here.
"""
from __future__ import annotations

#: code -> words, in the order the form offers them
ASSIGNABLE_CAUSES: dict[str, str] = {
    "analyst_error": "Analyst error (e.g. dilution, pipetting, transcription)",
    "instrument": "Instrument or equipment failure",
    "method": "Method or calculation error",
    "sample": "Sample handling or mix-up",
    "reagent": "Reagent, standard or control out of its limits",
    "other": "Other laboratory cause (described)",
}

#: the longest code (the column is String(30))
CAUSE_CODE_MAX_CHARS = 30

#: said of an OOS invalidated before the cause was recorded (migration 0020): its investigation text is all there is
NO_CAUSE_RECORDED = "no assignable cause recorded (closed before causes were recorded)"


def cause_words(code: str | None) -> str:
    """The words of a cause code; an unknown code is shown as stored, never hidden; None: NO_CAUSE_RECORDED."""
    if not code:
        return NO_CAUSE_RECORDED
    return ASSIGNABLE_CAUSES.get(code, code)


def is_cause(code: str | None) -> bool:
    return bool(code) and code in ASSIGNABLE_CAUSES
