"""Every model module, imported once so the metadata (and Alembic) sees every table."""
from mscbatch.audit.models import AuditEvent, AuditHead
from mscbatch.auth.models import ApiToken, AuthSession, User, UserRole
from mscbatch.donors.models import (
    Donor,
    DonorLookback,
    EligibilityDecision,
    QuestionnaireAnswer,
    ScreeningResult,
)
from mscbatch.signatures.models import Signature

__all__ = ["AuditEvent", "AuditHead", "ApiToken", "AuthSession", "User", "UserRole", "Signature",
           "Donor", "DonorLookback", "EligibilityDecision", "QuestionnaireAnswer", "ScreeningResult"]
