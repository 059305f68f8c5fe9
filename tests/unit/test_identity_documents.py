from __future__ import annotations

from datetime import date

import pytest

from app.domain.enums import Sex
from app.domain.identity import make_resident_id
from app.domain.identity_documents import (
    DocumentType,
    InvalidDocument,
    mask_document,
    validate_document,
)

TODAY = date(2026, 12, 1)
BIRTH = date(1990, 6, 30)


def test_residence_permit_and_2023_foreigner_card_carry_birth_date_and_sex() -> None:
    for kind, region in (("hmt_residence_permit", "830000"), ("foreigner_permanent_id", "931250")):
        doc = validate_document(kind, make_resident_id(region, BIRTH, 2), None, TODAY)
        assert (doc.birth_date, doc.sex) == (BIRTH, Sex.FEMALE)
        assert doc.match_key() == f"{kind}:{doc.number}"


def test_resident_id_key_is_the_bare_number() -> None:
    number = make_resident_id("350725", BIRTH, 3)
    assert validate_document("resident_id", number, None, TODAY).match_key() == number


def test_issue_count_is_not_part_of_the_match() -> None:
    new = validate_document("taiwan_travel_permit", "12345678", None, TODAY)
    old = validate_document("taiwan_travel_permit", "1234567803", None, TODAY)
    assert new.match_key() == old.match_key()


def test_newborn_key_names_mother_and_birth_order() -> None:
    mother = validate_document("passport", "ab12345", "USA", TODAY)
    baby = validate_document("newborn", "", None, TODAY, mother=mother, birth_order=1)
    assert baby.match_key() == "newborn:passport:USA:AB12345:1"
    assert mask_document(baby) == "A****45#1"
    assert "AB12345" not in repr(baby)


@pytest.mark.parametrize(
    ("kind", "number", "shown"),
    [
        ("hk_macao_travel_permit", "H12345678", "H******78"),
        ("taiwan_travel_permit", "12345678", "******78"),
        ("birth_certificate", "Q350012345", "Q*******45"),
        ("foreigner_permanent_id", "USA118503150112", "USA************"),
    ],
)
def test_masks_by_type(kind: str, number: str, shown: str) -> None:
    assert mask_document(validate_document(kind, number, None, TODAY)) == shown


def test_2017_foreigner_card_birth_date_must_be_a_date() -> None:
    with pytest.raises(InvalidDocument) as exc:
        validate_document("foreigner_permanent_id", "USA111302300112", None, TODAY)
    assert (exc.value.field, exc.value.reason) == ("number", "birth_date")
    assert "USA" not in str(exc.value)


def test_types_listed() -> None:
    assert len(DocumentType) == 8
