"""Diagnosis code structure per edition, morphology codes and catalogue files."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.domain.icd10 import (
    CodeSystem,
    InvalidIcd10Code,
    InvalidMorphologyCode,
    matches_prefix,
    parse_code,
    validate_icd10,
    validate_morphology,
)
from app.domain.icd10_catalogue import CatalogueError, parse_catalogue

GB = CodeSystem.GB_T_14396_2016
CLINICAL = CodeSystem.CLINICAL_2_0
INSURANCE = CodeSystem.INSURANCE_2_0
EXAMPLE = Path(__file__).resolve().parents[2] / "app/data/icd10/example-clinical-2.0.csv"

EVERY_EDITION = [
    "I63",  # category
    "I63.9",  # subcategory
    "I63.900",  # GB/T 14396-2016 six characters
    "I10.x00",  # x for the subcategory of a category without one
    "S72.000",
    "A17.0†G01*",  # dagger/asterisk pair, dagger as printed
    "A17.000+G01*",  # dagger written "+" as the national catalogues do
    "E11.4†G63.2*",
    "U07.1",
]
NATIONAL_ONLY = [
    "I63.900x007",
    "E11.900x001",
    "I21.000x001",
    "I10.x00x002",
    "U07.100",  # six characters in every edition; here for the COVID code of edition 2.0
    "E11.400x031+G63.2*",
]


@pytest.mark.parametrize("system", [GB, CLINICAL, INSURANCE])
@pytest.mark.parametrize("code", EVERY_EDITION)
def test_every_edition_accepts_and_keeps_the_code(code: str, system: CodeSystem) -> None:
    assert validate_icd10(code, system) == code


@pytest.mark.parametrize("system", [CLINICAL, INSURANCE])
@pytest.mark.parametrize("code", NATIONAL_ONLY)
def test_national_editions_accept_extension_codes_as_sent(code: str, system: CodeSystem) -> None:
    parsed = parse_code(code, system)
    assert parsed.code == code  # the lower-case x is kept
    assert parsed.system is system


@pytest.mark.parametrize("code", ["I63.900x007", "E11.900x001", "E11.400x031+G63.2*"])
def test_gb_14396_has_no_x_extension(code: str) -> None:
    with pytest.raises(InvalidIcd10Code) as info:
        parse_code(code, GB)
    assert info.value.reason == "other_edition"


@pytest.mark.parametrize(
    "code",
    ["E11.900X001", "I10.X00", "i63.900", "e11.900x001"],
)
def test_case_is_not_folded(code: str) -> None:
    with pytest.raises(InvalidIcd10Code) as info:
        parse_code(code, CLINICAL)
    assert info.value.reason == "case"


def test_asterisk_code_alone_is_refused() -> None:
    with pytest.raises(InvalidIcd10Code) as info:
        parse_code("G01*", CLINICAL)
    assert info.value.reason == "asterisk_alone"


@pytest.mark.parametrize(
    "code",
    [
        "",
        " ",
        "\t",
        " I21",
        "I21 ",
        "I 21",
        "I2",
        "I210",
        "I21.",
        "I21.00",  # neither a subcategory nor a six-character code
        "I21.0000",
        "I21.00000",
        "I21.000x01",
        "I21.000x0011",
        "I21.0x001",
        "I21.A",
        "121",
        "II21",
        "I21-0",
        "I21..0",
        "A17.0†",
        "A17.0†G01",  # asterisk missing
        "A17.0G01*",  # dagger missing
        "A17.0†G01*†B20*",
        "A17.0†G01.000x001*",
        "ı21",  # dotless i: upper() would make it "I21"
        "Ｉ21",  # full-width letter
        "I2１",  # full-width digit
    ],
)
@pytest.mark.parametrize("system", [GB, CLINICAL, INSURANCE])
def test_invalid_codes(code: str, system: CodeSystem) -> None:
    with pytest.raises(InvalidIcd10Code):
        parse_code(code, system)


def test_unspecified_reads_codes_stored_before_editions() -> None:
    for code in ("I63.9", "O80.X", "Z99.9999", "I63.900x007"):
        assert parse_code(code, CodeSystem.UNSPECIFIED).code == code


def test_pair_parts_and_category() -> None:
    pair = parse_code("E11.400x031+G63.2*", CLINICAL)
    assert (pair.primary, pair.manifestation, pair.category) == ("E11.400x031", "G63.2", "E11")
    single = parse_code("I10.x00", GB)
    assert (single.primary, single.manifestation, single.category) == ("I10.x00", None, "I10")


def test_prefix_matching_on_the_dagger_code_case_sensitive() -> None:
    assert matches_prefix(parse_code("E11.900x001", CLINICAL), "E11")
    assert matches_prefix(parse_code("I63.900x007", CLINICAL), "I63.9")
    assert matches_prefix(parse_code("E11.4†G63.2*", GB), "E11")
    assert not matches_prefix(parse_code("E11.4†G63.2*", GB), "G63")
    assert not matches_prefix(parse_code("I10.x00", GB), "I10.X")
    assert not matches_prefix(parse_code("I11.900", GB), "I10")


def test_message_does_not_repeat_the_code() -> None:
    with pytest.raises(InvalidIcd10Code) as info:
        parse_code("Q99.99999", CLINICAL)
    assert "Q99" not in str(info.value)


@pytest.mark.parametrize("morphology", ["M8140/3", "M81400/3", "M80700/6", "M8000/0"])
def test_morphology_with_a_neoplasm(morphology: str) -> None:
    for code in ("C34.900", "D03.9", "D48.9"):
        assert validate_morphology(morphology, parse_code(code, CLINICAL)) == morphology


@pytest.mark.parametrize("morphology", ["M8140", "8140/3", "M814/3", "M8140/4", "m8140/3", ""])
def test_morphology_shape(morphology: str) -> None:
    with pytest.raises(InvalidMorphologyCode) as info:
        validate_morphology(morphology, parse_code("C34.9", CLINICAL))
    assert info.value.reason == "shape"


@pytest.mark.parametrize("code", ["I63.900", "D50.9", "B20"])
def test_morphology_only_with_a_neoplasm(code: str) -> None:
    with pytest.raises(InvalidMorphologyCode) as info:
        validate_morphology("M8140/3", parse_code(code, CLINICAL))
    assert info.value.reason == "not_a_neoplasm"


def test_example_catalogue_parses_with_bom_and_comments() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert text.startswith("# EXAMPLE SUBSET")
    catalogue = parse_catalogue("\ufeff" + text, CLINICAL)
    assert len(catalogue) >= 30
    assert catalogue.name_of("E11.900x001") is not None
    assert catalogue.name_of("I63.900") == "脑梗死"
    assert catalogue.name_of("E11.900X001") is None  # exact match
    assert catalogue.name_of("I63.9") is None


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("code,name\nI63.900,脑梗死\nI63.900,again\n", "line 3"),
        ("I63.900\n", "line 1"),
        ("I63.900,\n", "line 1"),
        ("# comment\nnot a code,x\n", "line 2"),
        ("code,name\nE11.900x001,2型糖尿病\n", "line 2"),  # no x extension in GB/T 14396
    ],
)
def test_broken_catalogue_names_the_line(text: str, line: str) -> None:
    with pytest.raises(CatalogueError, match=line):
        parse_catalogue(text, GB)


def test_empty_catalogue_is_refused() -> None:
    with pytest.raises(CatalogueError):
        parse_catalogue("# nothing\ncode,name\n", CLINICAL)
