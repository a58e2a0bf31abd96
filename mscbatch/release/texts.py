"""The one length rule for the texts signed or written in the release record: a justification, a rejection's
reason, a deviation's rationale, an OOS investigation and its conclusion, a correction's reason, a clinician's
justification. Its own module (no import of the release services) so that every one of them can use it, oos.py
included, which release.release imports."""
from __future__ import annotations

from mscbatch.errors import ValidationFailed

#: the longest text signed or written in the release record (as a recall's reason and a label reprint's reason).
#: Refused, never cut: the record keeps the text as written. The forms' maxlength says it too (release.forms).
SIGNED_TEXT_MAX_CHARS = 2000


def too_long(text: str, label: str, field: str, done: str = "Nothing was signed.", *,
             limit: int = SIGNED_TEXT_MAX_CHARS) -> None:
    """A text over SIGNED_TEXT_MAX_CHARS refused (ValidationFailed naming its field `field`, 422), in one wording:
    "<label>: at most 2000 characters (<n> given); shorten it. <done>". A line break counts as one character, as the
    form's maxlength counts it. `limit`: SIGNED_TEXT_MAX_CHARS, but for a record written before the rule (tests)."""
    length = len(text.replace("\r\n", "\n"))
    if length > limit:
        raise ValidationFailed(f"{label}: at most {limit} characters ({length} given); shorten it. {done}",
                               field=field)
