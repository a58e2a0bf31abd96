"""Donors: registration, screening, eligibility decisions signed by QA, lookbacks and the gate for lots."""
