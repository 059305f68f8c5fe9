"""National code sets: 险种类型, hospital grades, GB 32100 check character."""

from __future__ import annotations

import pytest

from app.domain import national_codes as nc
from app.domain.enums import InstitutionGrade, InstitutionLevel, InsuranceScheme


@pytest.mark.parametrize("code", ["91110000802100433B", "12100000400000624D", "91440300708461136T"])
def test_published_unified_social_credit_codes_pass(code: str) -> None:
    assert nc.is_valid_uscc(code)


def test_a_changed_character_breaks_the_check() -> None:
    assert not nc.is_valid_uscc("91110000802100433C")
    assert not nc.is_valid_uscc("9111000080210043IB")  # I is not in the charset
    assert not nc.is_valid_uscc("91110000802100433")  # 17 characters


def test_every_scheme_has_a_name_and_old_words_map_to_codes() -> None:
    assert {s for s in nc.SCHEME_NAMES} == set(InsuranceScheme)
    assert nc.scheme_of("employee_basic") is InsuranceScheme.EMPLOYEE_BASIC
    assert nc.scheme_of("390") is InsuranceScheme.URBAN_RURAL_RESIDENT
    assert nc.scheme_name(InsuranceScheme("310")) == "职工基本医疗保险"
    with pytest.raises(ValueError, match="999"):
        nc.scheme_of("999")


def test_grades_by_code_or_word_and_fit_to_level() -> None:
    assert nc.grade_of("三级甲等") is InstitutionGrade.G3A
    assert nc.grade_of("2B") is InstitutionGrade.G2B
    assert nc.grade_fits_level(InstitutionGrade.G3A, InstitutionLevel.TERTIARY)
    assert not nc.grade_fits_level(InstitutionGrade.G3A, InstitutionLevel.SECONDARY)
    assert not nc.grade_fits_level(InstitutionGrade.G1A, InstitutionLevel.VILLAGE)
    assert nc.grade_fits_level(InstitutionGrade.UNGRADED, InstitutionLevel.VILLAGE)
