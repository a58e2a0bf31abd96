"""The infusion rate the ward sets (mL/h), per bag and for the course, on the prescription page and the dose sheet.

One definition of the time, the one the rest of the system already uses (mscbatch.custody.infusions):
- the course is given over infusion_hours(): the prescription's stored calculation's infusion_duration_h, the time
  its endotoxin limit K x weight x time was judged with (the protocol's dosing.infusion_duration_h when signed),
  else the protocol's;
- each bag over its share of that time, in proportion to the volume the prescription draws from it (BagTime: three
  bags of 25 mL over 1 h, 20 min each), which is also what the infusion's end is checked against (an end sooner is
  recorded only with a reason).
So every bag runs at the course's rate: its volume over the course's time. The rate is rounded to 0.1 mL/h (half
up), what an infusion pump is set to; the volumes and the times are the prescription's own.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from mscbatch.core.numbers import plain
from mscbatch.custody.infusions import BagTime, duration_words, infusion_hours

#: the rate's rounding, said with it
RATE_STEP = Decimal("0.1")
ROUNDING_WORDS = "rounded to 0.1"


def rate_ml_per_h(volume_ml: Decimal, hours: Decimal) -> Decimal:
    """mL/h rounded to 0.1 (half up): 25 mL over 1 h -> 25.0; 100 mL over 3 h -> 33.3."""
    return (volume_ml / hours).quantize(RATE_STEP, ROUND_HALF_UP)


@dataclass(frozen=True)
class CourseRate:
    """The course's time and volume; None hours when neither the prescription nor its protocol gives a time."""

    protocol: str  # the protocol's short name, as the sheet names it
    hours: Decimal | None
    course_ml: Decimal  # what the prescription draws from all its bags (released ones too: the course as signed)

    @property
    def known(self) -> bool:
        return self.hours is not None and self.course_ml > 0

    def total_words(self) -> str:
        """"25 mL over 1 h = 25.0 mL/h, rounded to 0.1 (protocol SLE-UC: infuse over 1 h; each bag at this rate)":
        one line of the dose sheet's facts, beside its label "Infusion rate"."""
        if not self.known or self.hours is None:
            return (f"not given: protocol {self.protocol} has no infusion time. Ask the prescriber how fast to "
                    "infuse.")
        over = duration_words(timedelta(hours=float(self.hours)))
        return (f"{plain(self.course_ml)} mL over {over} = {rate_ml_per_h(self.course_ml, self.hours)} mL/h, "
                f"{ROUNDING_WORDS} (protocol {self.protocol}: infuse over {over}; each bag at this rate)")

    def bag_rate(self, bag_ml: Decimal) -> tuple[str, str] | None:
        """("75.0 mL/h", "20 min"): this bag's rate and its share of the course's time (BagTime), the dose sheet's
        narrow column; None without an infusion time."""
        if not self.known or self.hours is None:
            return None
        time = BagTime(self.hours, bag_ml, self.course_ml)
        # every bag runs at the course's rate: worked out from the course, not from the bag over its share of the
        # time, whose 28-digit quotient rounded 75.0 down to 74.9 for a 50 mL bag of a 74.95 mL course
        return f"{rate_ml_per_h(self.course_ml, self.hours)} mL/h", duration_words(time.expected)

    def bag_words(self, bag_ml: Decimal) -> str:
        """"25 mL over 20 min = 75.0 mL/h": this bag's volume over its share of the course's time."""
        rate = self.bag_rate(bag_ml)
        if rate is None:
            return "no infusion time: ask the prescriber"
        return f"{plain(bag_ml)} mL over {rate[1]} = {rate[0]}"


def course_rate(calculation: Any, protocol_id: str, protocol_name: str, draws_ml: list[Decimal]) -> CourseRate:
    """The course's rate from the prescription's stored calculation and the volumes of all its allocations."""
    return CourseRate(protocol_name, infusion_hours(calculation, protocol_id),
                      sum((Decimal(v) for v in draws_ml), Decimal(0)))
