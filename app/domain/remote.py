"""Remote services beside the transfer: a specialist's consultation about a patient who stays
(``consult``) and the reading of an examination done at the township (``remote_read``).

Both are requests of the referral's kind (``referral.kind``): created, routed, held, answered,
expired and routed on as referrals are. A remote read is routed by the specialty of its reading
(the GB/T 诊疗科目 code: 32.02 CT diagnosis, 32.06 electrocardiography, 31 pathology); the
modality is kept as its DICOM code, exactly as sent.
"""

from __future__ import annotations

from enum import StrEnum

from app.domain.enums import CareType


class RequestKind(StrEnum):
    TRANSFER = "transfer"  # the patient moves: an up- or down-referral
    CONSULT = "consult"  # a specialist advises the primary doctor; the patient stays
    REMOTE_READ = "remote_read"  # the county reads an examination done at the township

    @property
    def remote(self) -> bool:
        return self is not RequestKind.TRANSFER

    @property
    def hold_kind(self) -> str:
        """The capacity a request of this kind holds: a reader's read slot or a consult slot."""
        return {RequestKind.CONSULT: "consult", RequestKind.REMOTE_READ: "read"}.get(self, "bed")

    @property
    def care_type(self) -> CareType:
        """The care type stored with the request (the patient is not admitted)."""
        return CareType.EXAMINATION if self is RequestKind.REMOTE_READ else CareType.OUTPATIENT


REMOTE_KINDS = frozenset({RequestKind.CONSULT, RequestKind.REMOTE_READ})
#: hold kinds of remote capacity (``remote_capacity.kind``)
REMOTE_HOLD_KINDS = frozenset({"read", "consult"})


def report_associated(referral_id: str) -> str:
    """The associated data a report is sealed with: its request, as a report."""
    return f"{referral_id}:report"


class ConsultMode(StrEnum):
    VIDEO = "video"  # a synchronous video session
    ASYNC = "async"  # the specialist answers in writing


class Modality(StrEnum):
    """DICOM modality codes (PS3.3 C.7.3.1.1.1) of the examinations read remotely."""

    CT = "CT"
    MR = "MR"
    DX = "DX"  # digital radiography (DR)
    CR = "CR"
    MG = "MG"
    XA = "XA"
    US = "US"
    ECG = "ECG"
    NM = "NM"
    PT = "PT"
    SM = "SM"  # slide microscopy: digital pathology
    GM = "GM"  # general microscopy


#: the specialty (GB/T 诊疗科目) whose readers read each modality
READING_SPECIALTY: dict[Modality, str] = {
    Modality.CT: "32.02",
    Modality.MR: "32.03",
    Modality.DX: "32.01",
    Modality.CR: "32.01",
    Modality.MG: "32.01",
    Modality.XA: "32.09",
    Modality.US: "32.05",
    Modality.ECG: "32.06",
    Modality.NM: "32.04",
    Modality.PT: "32.04",
    Modality.SM: "31",
    Modality.GM: "31",
}
