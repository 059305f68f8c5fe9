"""ICD-10 code shape check."""

from __future__ import annotations

import pytest

from app.domain.icd10 import InvalidIcd10Code, validate_icd10


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("I21", "I21"),
        ("I21.0", "I21.0"),
        ("I63.900", "I63.900"),
        ("S72.001", "S72.001"),
        ("O80.x", "O80.X"),
        ("i63.9", "I63.9"),
        ("Z99.9999", "Z99.9999"),
        ("A00", "A00"),
        ("J44.1", "J44.1"),
    ],
)
def test_valid_codes_are_normalised(code: str, expected: str) -> None:
    assert validate_icd10(code) == expected


@pytest.mark.parametrize(
    "code",
    [
        "",
        " ",
        "\t",
        " I21",
        "I21 ",
        "I 21",
        "U07.1",  # WHO emergency-use chapter
        "u07",
        "I2",
        "I210",
        "I21.",
        "I21.00000",
        "E11.900x001",  # national extension longer than four characters: not needed
        "I21.A",
        "121",
        "II21",
        "I21-0",
        "I21..0",
        "ı21",  # dotless i: upper() would make it "I21"
        "Ｉ21",  # full-width letter
    ],
)
def test_invalid_codes(code: str) -> None:
    with pytest.raises(InvalidIcd10Code):
        validate_icd10(code)


def test_message_does_not_repeat_the_code() -> None:
    with pytest.raises(InvalidIcd10Code) as info:
        validate_icd10("Q99.99999")
    assert "Q99" not in str(info.value)
