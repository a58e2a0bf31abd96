"""Interoperability (issue 8): CSV exports for statisticians, FHIR R5 resources for hospital systems, and the
human-readable API documentation page."""
