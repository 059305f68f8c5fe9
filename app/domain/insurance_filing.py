"""The referral filing (转院备案) as the national medical-insurance platform takes it.

Source: 国家医疗保障信息平台 定点医药机构接口规范 (the NHSA interface specification for designated
medical institutions): transaction **2501 转院备案** (input node ``refmedin``, output
``trt_dcla_detl_sn`` 待遇申报明细流水号, the filing number) and **2502 转院备案撤销** (input
``data``: ``trt_dcla_detl_sn``, ``psn_no``, ``memo``), each in the platform's common envelope
(``infno``, ``msgid``, ``mdtrtarea_admdvs``, ``insuplc_admdvs``, ``recer_sys_code``, ``infver``,
``opter_type``, ``opter``, ``opter_name``, ``inf_time``, ``fixmedins_code``,
``fixmedins_name``, ``sign_no``, ``input``), answered with ``infcode`` (0 = success),
``err_msg`` and ``output``.

Pure functions: the facts of a referral in, the messages out; the answer read back. No clock,
no database. What the service does not know is sent empty for the regional gateway to fill
(``sign_no`` from its 9001 sign-in, ``addr``, and ``psn_no`` when the referral carries no
insurance number): see the README, "Referral filing".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

FILE_INFNO: Final = "2501"
CANCEL_INFNO: Final = "2502"
INFVER: Final = "V1.0"
#: 经办人 (a person at the institution's insurance office), as opposed to a self-service terminal
OPTER_TYPE: Final = "1"
OPTER: Final = "referral-service"
OPTER_NAME: Final = "双向转诊服务"
#: 医院同意转院标志: the referring institution agrees (it is the one sending the referral)
HOSPITAL_AGREES: Final = "1"
#: 转院类型 (REFL_TYPE): transfer within the insured region (the first six digits of both ends'
#: region codes agree) and to another region (异地转诊). Provincial platforms publish the
#: dictionary; these two codes are the common ones and are to be checked against it.
REFL_TYPE_LOCAL: Final = "1"
REFL_TYPE_OTHER_REGION: Final = "2"
#: field lengths of the specification (characters), so a long text never fails the filing
DISE_COND_DSCR_MAX: Final = 2000
REFL_REA_MAX: Final = 100
REFL_OPNN_MAX: Final = 100
DIAG_NAME_MAX: Final = 100
MEMO_MAX: Final = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class FilingFacts:
    """What a filing says, as the service knows it (patient data included: sealed at rest)."""

    referral_number: str
    psn_no: str | None  # the patient's insurance number, when the referral carries one
    insutype: str  # 险种类型: the referral's insurance scheme code (310, 390, ...)
    tel: str | None
    diag_code: str
    diag_name: str
    dise_cond_dscr: str | None  # the clinical summary
    reason: str  # why the patient is transferred (the referral's reason, in words)
    opinion: str  # the referring side's opinion (target, care type, urgency)
    source_code: str | None  # 定点医药机构编号 of the referring institution
    source_name: str
    target_code: str | None  # 定点医药机构编号 of the receiving institution
    target_name: str
    source_admdvs: str  # 6-digit 医保区划 of the referring side (the insured region)
    target_admdvs: str  # of the receiving side (就医地)
    filed_on: date  # the referral's day (the consortium's local day)
    valid_days: int


def admdvs(region_code: str | None) -> str:
    """The 6-digit 医保区划 of a region code (GB/T 2260 county part); empty when unknown."""
    digits = (region_code or "")[:6]
    return digits if len(digits) == 6 and digits.isdigit() else ""


def msgid(fixmedins_code: str | None, at: datetime, sequence: int) -> str:
    """发送方报文ID: the sending institution's code (12), the time (14), a sequence (4)."""
    code = (fixmedins_code or "").ljust(12, "0")[:12]
    return f"{code}{at:%Y%m%d%H%M%S}{sequence % 10_000:04d}"


def _envelope(
    infno: str, facts: FilingFacts, at: datetime, sequence: int, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "infno": infno,
        "msgid": msgid(facts.source_code, at, sequence),
        "mdtrtarea_admdvs": facts.target_admdvs,
        "insuplc_admdvs": facts.source_admdvs,
        "recer_sys_code": "",  # the regional gateway's own code: it fills it
        "dev_no": "",
        "dev_safe_info": "",
        "cainfo": "",
        "signtype": "",
        "infver": INFVER,
        "opter_type": OPTER_TYPE,
        "opter": OPTER,
        "opter_name": OPTER_NAME,
        "inf_time": f"{at:%Y-%m-%d %H:%M:%S}",
        "fixmedins_code": facts.source_code or "",
        "fixmedins_name": facts.source_name,
        "sign_no": "",  # from the gateway's 9001 sign-in
        "input": data,
    }


def _cut(text: str | None, limit: int) -> str:
    return (text or "")[:limit]


def file_message(facts: FilingFacts, at: datetime, sequence: int) -> dict[str, Any]:
    """Transaction 2501 转院备案 (``input.refmedin``)."""
    local = facts.source_admdvs and facts.source_admdvs == facts.target_admdvs
    refmedin = {
        "psn_no": facts.psn_no or "",
        "insutype": facts.insutype,
        "tel": facts.tel or "",
        "addr": "",
        "insu_optins": facts.source_admdvs,
        "diag_code": facts.diag_code,
        "diag_name": _cut(facts.diag_name, DIAG_NAME_MAX),
        "dise_cond_dscr": _cut(facts.dise_cond_dscr, DISE_COND_DSCR_MAX),
        "reflin_medins_no": facts.target_code or "",
        "reflin_medins_name": facts.target_name,
        "mdtrtarea_admdvs": facts.target_admdvs,
        "hosp_agre_refl_flag": HOSPITAL_AGREES,
        "refl_type": REFL_TYPE_LOCAL if local else REFL_TYPE_OTHER_REGION,
        "refl_date": facts.filed_on.isoformat(),
        "refl_rea": _cut(facts.reason, REFL_REA_MAX),
        "refl_opnn": _cut(facts.opinion, REFL_OPNN_MAX),
        "begndate": facts.filed_on.isoformat(),
        "enddate": (facts.filed_on + timedelta(days=facts.valid_days)).isoformat(),
        "memo": _cut(f"双向转诊 {facts.referral_number}", MEMO_MAX),
    }
    return _envelope(FILE_INFNO, facts, at, sequence, {"refmedin": refmedin})


def cancel_message(
    filed: dict[str, Any], filing_number: str, at: datetime, sequence: int
) -> dict[str, Any]:
    """Transaction 2502 转院备案撤销 of a filing sent as ``filed`` (its 2501 message)."""
    refmedin = filed["input"]["refmedin"]
    message = dict(filed)
    message.update(
        infno=CANCEL_INFNO,
        msgid=msgid(filed.get("fixmedins_code"), at, sequence),
        inf_time=f"{at:%Y-%m-%d %H:%M:%S}",
        input={
            "data": {
                "trt_dcla_detl_sn": filing_number,
                "psn_no": refmedin.get("psn_no", ""),
                "memo": refmedin.get("memo", ""),
            }
        },
    )
    return message


@dataclass(frozen=True, slots=True)
class Answer:
    """The platform's answer, read: success, the filing number (2501), or a coarse failure."""

    ok: bool
    filing_number: str | None
    failure: str | None  # infcode, not_json, no_filing_number; never the answer's text
    infcode: int | None = None


FILING_NUMBER_MAX: Final = 64


def read_answer(body: bytes, *, expect_number: bool) -> Answer:
    """``{"infcode": 0, "output": {...}}`` → success; anything else a failure class.

    The filing number is ``output.trt_dcla_detl_sn`` (some gateways nest it one level down,
    ``output.result.trt_dcla_detl_sn``). ``err_msg`` is never kept: it may quote the patient.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return Answer(False, None, "not_json")
    if not isinstance(data, dict):
        return Answer(False, None, "not_json")
    code = data.get("infcode")
    if isinstance(code, str) and code.lstrip("-").isdigit():
        code = int(code)
    if not isinstance(code, int) or isinstance(code, bool):
        return Answer(False, None, "not_json")
    if code != 0:
        return Answer(False, None, "infcode", code)
    if not expect_number:
        return Answer(True, None, None, 0)
    output = data.get("output")
    number: Any = None
    if isinstance(output, dict):
        number = output.get("trt_dcla_detl_sn")
        nested = output.get("result")
        if number is None and isinstance(nested, dict):
            number = nested.get("trt_dcla_detl_sn")
    if isinstance(number, int) and not isinstance(number, bool):
        number = str(number)
    if not isinstance(number, str) or not number.strip() or len(number) > FILING_NUMBER_MAX:
        return Answer(False, None, "no_filing_number", 0)
    return Answer(True, number.strip(), None, 0)
