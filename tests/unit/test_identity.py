"""GB 11643-1999 resident identity number check."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from app.domain.enums import Sex
from app.domain.identity import (
    InvalidResidentId,
    ResidentId,
    check_character,
    make_resident_id,
    mask_resident_id,
    validate_resident_id,
)

TODAY = date(2024, 5, 1)
EXAMPLE = "11010519491231002X"  # the standard's worked example


def _reason(value: str, today: date = TODAY) -> str:
    with pytest.raises(InvalidResidentId) as info:
        validate_resident_id(value, today)
    if value:
        assert value not in str(info.value)
        assert value not in repr(info.value)
    return info.value.reason


def test_well_known_example_is_valid() -> None:
    rid = validate_resident_id(EXAMPLE, TODAY)
    assert rid == ResidentId(
        value=EXAMPLE, birth_date=date(1949, 12, 31), sex=Sex.FEMALE, region_code="110105"
    )


def test_lower_case_x_is_normalised() -> None:
    rid = validate_resident_id(EXAMPLE.lower(), TODAY)
    assert rid.value == EXAMPLE


def test_repr_does_not_show_the_number() -> None:
    rid = validate_resident_id(EXAMPLE, TODAY)
    assert EXAMPLE not in repr(rid)
    assert EXAMPLE not in str(rid)


def test_generated_numbers_are_valid_and_decode() -> None:
    rng = random.Random(11643)
    for _ in range(500):
        birth = date(1900, 1, 1) + timedelta(days=rng.randrange((TODAY - date(1900, 1, 1)).days))
        seq = rng.randrange(1000)
        number = make_resident_id("350725", birth, seq)
        rid = validate_resident_id(number, TODAY)
        assert rid.value == number
        assert rid.birth_date == birth
        assert rid.region_code == "350725"
        assert rid.sex is (Sex.MALE if seq % 2 else Sex.FEMALE)


def test_birth_today_and_on_1900_01_01_are_accepted() -> None:
    validate_resident_id(make_resident_id("110105", TODAY, 1), TODAY)
    validate_resident_id(make_resident_id("110105", date(1900, 1, 1), 1), TODAY)


def test_check_character_of_example() -> None:
    assert check_character(EXAMPLE[:17]) == "X"
    assert check_character(make_resident_id("110105", date(1990, 1, 1), 10)[:17]) in "0123456789X"


@pytest.mark.parametrize("last", list("0123456789"))
def test_wrong_check_character(last: str) -> None:
    assert _reason(EXAMPLE[:17] + last) == "check_character"


@pytest.mark.parametrize(
    "value",
    ["", EXAMPLE[:17], EXAMPLE + "0", "110105491231002", " " + EXAMPLE, EXAMPLE + " "],
)
def test_wrong_length(value: str) -> None:
    assert _reason(value) == "length"


@pytest.mark.parametrize(
    "value",
    [
        "1101051949123100ZX",  # letter inside the digits
        "11010519491231002Y",  # check character not a digit or X
        "11010519491231002-",
        "１10105194912310021",  # full-width digit
        "110105-9491231002X",
    ],
)
def test_bad_characters(value: str) -> None:
    assert _reason(value) == "characters"


def _with_birth(yyyymmdd: str) -> str:
    body = "110105" + yyyymmdd + "002"
    return body + check_character(body)


@pytest.mark.parametrize(
    "yyyymmdd",
    [
        "19490231",  # 31 February
        "19491301",  # month 13
        "19490000",
        "20230229",  # not a leap year
        "18991231",  # before 1900
        "20240502",  # after today
        "00000000",
    ],
)
def test_bad_birth_date(yyyymmdd: str) -> None:
    assert _reason(_with_birth(yyyymmdd)) == "birth_date"


def test_leap_day_is_a_real_date() -> None:
    assert validate_resident_id(_with_birth("20000229"), TODAY).birth_date == date(2000, 2, 29)


def test_mask() -> None:
    assert mask_resident_id(EXAMPLE) == "110**************X"
    assert mask_resident_id(EXAMPLE.lower()) == "110**************X"
    assert len(mask_resident_id(EXAMPLE)) == 18
    assert mask_resident_id("12345") == "*****"


@pytest.mark.parametrize(
    ("region", "birth", "seq"),
    [
        ("11010", date(1990, 1, 1), 1),
        ("11010A", date(1990, 1, 1), 1),
        ("110105", date(1899, 12, 31), 1),
        ("110105", date(1990, 1, 1), 1000),
        ("110105", date(1990, 1, 1), -1),
    ],
)
def test_make_resident_id_rejects_bad_input(region: str, birth: date, seq: int) -> None:
    with pytest.raises(ValueError, match=r"."):
        make_resident_id(region, birth, seq)
