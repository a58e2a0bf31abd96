"""Every page of a multi-page PDF says what it belongs to and "page x of y", so that a loose page (a certificate's,
a dose sheet's, a trace report's) is never anonymous. One canvas for the certificate of analysis, the dose sheet and
the recall and trace reports."""
from __future__ import annotations

from typing import Any

from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas


class NumberedCanvas(Canvas):
    """A page is kept until the document is laid out, when the count of pages is known, then written with its
    running header (`header`, top left), its footer (`footer`, bottom left) and "page x of y" (bottom right): the
    two-pass canvas of ReportLab's examples. Used as `canvasmaker=partial(NumberedCanvas, footer=..., margin=...)`."""

    def __init__(self, *args: Any, header: str = "", footer: str = "", margin: float = 12 * mm,
                 font_size: float = 7, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header, self._footer, self._margin, self._font_size = header, footer, margin, font_size
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # noqa: N802 - ReportLab's name
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        width, height = self._pagesize
        for page in self._pages:
            self.__dict__.update(page)
            self.saveState()
            self.setFont("Helvetica", self._font_size)
            if self._header:
                self.drawString(self._margin, height - 8 * mm, self._header)
            if self._footer:
                self.drawString(self._margin, 7 * mm, self._footer)
            self.drawRightString(width - self._margin, 7 * mm, f"page {self._pageNumber} of {total}")
            self.restoreState()
            super().showPage()
        super().save()
