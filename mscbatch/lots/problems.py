"""Every problem of one submission of the lot record, each on its field: a technician fixes them all at once instead
of meeting them one per submit (as the donor and recall forms say them). Nothing is written while one remains."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from mscbatch.errors import ValidationFailed

T = TypeVar("T")


class Problems:
    """The refusals gathered from several checks. A field already refused (by the form, or by an earlier check) is
    not judged again: "Give the cells seeded." is not followed by "Cells seeded: a whole number of cells"."""

    def __init__(self, refused: Iterable[str | None] = ()) -> None:
        self.errors: dict[str, list[str]] = {}
        self.general: list[str] = []  # refusals naming no field
        self.refused = {name for name in refused if name}
        self._raised: list[ValidationFailed] = []

    def check(self, judge: Callable[[], T]) -> T | None:
        """What `judge` returns, or None when it refuses (the refusal kept)."""
        try:
            return judge()
        except ValidationFailed as error:
            self.add(error)
            return None

    def add(self, error: ValidationFailed) -> None:
        fresh = {name: messages for name, messages in error.errors.items() if name not in self.refused}
        if error.errors and not fresh:
            return  # said already on its field
        self._raised.append(error)
        for name, messages in fresh.items():
            self.errors.setdefault(name, []).extend(messages)
        if not error.errors:
            self.general.append(error.message)
        self.refused |= fresh.keys()

    def __bool__(self) -> bool:
        return bool(self._raised)

    def raise_any(self) -> None:
        """One refusal is raised as it was (its status and words); several as one ValidationFailed naming them all."""
        if len(self._raised) == 1:
            raise self._raised[0]
        if self._raised:
            said = [m for messages in self.errors.values() for m in messages] + self.general
            raise ValidationFailed("Nothing was saved; correct each marked field: " + " ".join(dict.fromkeys(said)),
                                   errors=self.errors)

    def show(self, form: Any) -> bool:
        """Put each refusal next to its field of `form` (one naming no field, or a field the form lacks, above it);
        True when there was any."""
        placed: set[str] = set()
        for name, messages in self.errors.items():
            field = getattr(form, name, None)
            if field is not None and hasattr(field, "errors"):
                field.errors = [*field.errors, *messages]
                placed.update(messages)
        above = [m for messages in self.errors.values() for m in messages if m not in placed] + self.general
        form.form_errors.extend(dict.fromkeys(above))  # an API field's twin (harvest_total_cells) is said once
        return bool(self)
