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
from mscbatch.lots.models import (  # noqa: E402  (issue 4: lots, bags, storage)
    Bag,
    Deviation,
    DinCounter,
    Lot,
    LotNumberCounter,
    ProcessStep,
    ReagentLot,
    ReagentUse,
    StorageLocation,
    StorageMove,
)

__all__ += ["Lot", "ProcessStep", "Deviation", "ReagentLot", "ReagentUse", "StorageLocation", "Bag", "StorageMove",
            "DinCounter", "LotNumberCounter"]
from mscbatch.release.models import (  # noqa: E402  (issue 5: release testing, OOS, dispositions)
    DeviationAssessment,
    LotDisposition,
    OosInvestigation,
    ReleaseResult,
    ResultAttachment,
)

__all__ += ["ReleaseResult", "ResultAttachment", "OosInvestigation", "LotDisposition", "DeviationAssessment"]
from mscbatch.patients.models import (  # noqa: E402  (issue 6: patients, prescriptions, allocations)
    Allocation,
    EnrolmentCheck,
    EscalationDecisionRecord,
    Patient,
    Prescription,
    WeightError,
    WeightMeasurement,
)

__all__ += ["Patient", "WeightMeasurement", "WeightError", "EnrolmentCheck", "EscalationDecisionRecord", "Prescription",
            "Allocation"]
from mscbatch.labelling.models import LabelPrint, LabelPrintItem  # noqa: E402  (issue 7: label prints)
from mscbatch.recall.models import BagHold, Recall  # noqa: E402  (issue 7: recall and holds)

__all__ += ["LabelPrint", "LabelPrintItem", "Recall", "BagHold"]
from mscbatch.custody.models import (  # noqa: E402  (issue 7: chain of custody, bedside check, infusions)
    CustodyEvent,
    Infusion,
    InfusionReaction,
    ReturnAssessment,
    TwoPersonCheck,
)

__all__ += ["CustodyEvent", "TwoPersonCheck", "Infusion", "InfusionReaction", "ReturnAssessment"]
