"""Release specification files and entered-value checks (mscbatch.core.release_spec): plain values only."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from mscbatch.core.configfiles import ConfigError
from mscbatch.core.release_spec import (
    KINDS,
    ResultValueError,
    judge_value,
    load_release_spec,
    load_release_specs,
    parse_result_value,
    specs_for_product,
)

SPEC_DIR = Path(__file__).resolve().parents[2] / "config" / "release_specs"
DEFAULT = SPEC_DIR / "msc_default_v1.toml"
STRICT = SPEC_DIR / "uc_msc_strict_v1.toml"

HEADER = 'id = "tmp_spec"\nversion = "1"\ntitle = "t"\nproducts = ["MSC(M)"]\nsources = ["s"]\n'
CD105 = """
[[tests]]
id = "cd105"
name = "CD105"
kind = "minimum"
unit = "percent"
min = 95
group = "identity"
method = "flow cytometry"
blocking = true
"""


def write_spec(tmp_path: Path, tests: str, header: str = HEADER) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(header + tests, encoding="utf-8")
    return path


@pytest.mark.parametrize("path", [DEFAULT, STRICT], ids=lambda p: p.name)
def test_each_shipped_release_spec_file_loads(path: Path) -> None:
    spec = load_release_spec(path)
    assert spec.id and spec.version and spec.products and spec.sources and spec.tests
    assert len(spec.sha256) == 64


def test_the_release_spec_folder_loads_both_specs_with_distinct_ids() -> None:
    specs = load_release_specs(SPEC_DIR)
    assert {s.id for s in specs} >= {"msc_default", "uc_msc_strict"}


def test_each_product_is_mapped_to_its_spec() -> None:
    specs = load_release_specs(SPEC_DIR)
    assert [s.id for s in specs_for_product(specs, "MSC(WJ)")] == ["uc_msc_strict"]
    assert [s.id for s in specs_for_product(specs, "MSC(M)")] == ["msc_default"]
    assert specs_for_product(specs, "unknown product") == ()


def test_the_default_spec_holds_the_isct_identity_panel_and_the_safety_tests() -> None:
    spec = load_release_spec(DEFAULT)
    assert spec.test("cd105").min == Decimal(95) and spec.test("cd45").max == Decimal(2)
    expected = {"cd73", "cd90", "cd105", "cd45", "cd34", "cd14_or_cd11b", "cd79a_or_cd19", "hla_dr",
                "plastic_adherence", "trilineage_osteo", "trilineage_adipo", "trilineage_chondro", "viability",
                "viable_cell_count", "sterility", "gram_stain", "mycoplasma", "endotoxin", "karyotype",
                "potency_pbmc"}
    assert {t.id for t in spec.tests} == expected
    assert spec.test("endotoxin").dose_based_k == Decimal(5)
    assert spec.test("potency_pbmc").blocking is False


def test_sterility_is_the_test_that_may_be_pending_at_conditional_release() -> None:
    assert [t.id for t in load_release_spec(DEFAULT).conditional_release_tests] == ["sterility"]


def test_the_strict_uc_spec_differs_from_the_default_on_viability_only() -> None:
    default, strict = load_release_spec(DEFAULT), load_release_spec(STRICT)
    assert (default.test("viability").min, default.test("viability").strict) == (Decimal(70), False)
    assert (strict.test("viability").min, strict.test("viability").strict) == (Decimal(80), True)
    assert [t for t in default.tests if t.id != "viability"] == [t for t in strict.tests if t.id != "viability"]
    eighty = Decimal("80")
    assert judge_value(default.test("viability"), eighty).meets is True
    assert judge_value(strict.test("viability"), eighty).meets is False


def test_hla_dr_is_blocking_at_2_percent_by_default() -> None:
    hla_dr = load_release_spec(DEFAULT).test("hla_dr")
    assert (hla_dr.blocking, hla_dr.max, hla_dr.variant) == (True, Decimal(2), "blocking")


def test_one_key_turns_hla_dr_informative_at_20_percent(tmp_path: Path) -> None:
    text = DEFAULT.read_text(encoding="utf-8").replace('variant = "blocking"', 'variant = "informative"')
    hla_dr = load_release_spec(write_spec(tmp_path, text, header="")).test("hla_dr")
    assert (hla_dr.blocking, hla_dr.max, hla_dr.variant) == (False, Decimal(20), "informative")
    assert "Informative" in hla_dr.note


def test_cd105_at_94_6_percent_does_not_meet_95_percent() -> None:
    judgement = judge_value(load_release_spec(DEFAULT).test("cd105"), Decimal("94.6"))
    assert judgement.meets is False
    assert judgement.comparison == "94.6 % < 95 %"


def test_a_percentage_of_104_is_refused_naming_the_test_and_the_rule() -> None:
    with pytest.raises(ResultValueError) as caught:
        parse_result_value(load_release_spec(DEFAULT).test("cd105"), "104", "percent")
    assert str(caught.value) == "CD105: 104 % is impossible (a percentage is between 0 and 100)"
    assert caught.value.field == "value"


def test_a_negative_cell_count_is_refused() -> None:
    with pytest.raises(ResultValueError, match=r"Viable cell count: -5 cells is impossible \(a count is a whole"):
        parse_result_value(load_release_spec(DEFAULT).test("viable_cell_count"), -5, "cells")


def test_a_fractional_cell_count_is_refused() -> None:
    with pytest.raises(ResultValueError, match="whole number"):
        parse_result_value(load_release_spec(DEFAULT).test("viable_cell_count"), "1000.5", "cells")


def test_a_cell_count_in_exponent_notation_is_read_as_a_whole_number() -> None:
    test = load_release_spec(DEFAULT).test("viable_cell_count")
    assert parse_result_value(test, "2.5E8", "cells") == Decimal(250_000_000)
    assert test.format(Decimal(250_000_000)) == "250 x10^6 cells"


def test_a_result_in_the_wrong_unit_is_refused() -> None:
    with pytest.raises(ResultValueError) as caught:
        parse_result_value(load_release_spec(DEFAULT).test("cd105"), "96", "cells")
    assert caught.value.field == "unit"
    assert "CD105" in str(caught.value) and "percent" in str(caught.value)


def test_the_percent_sign_is_accepted_as_the_percent_unit() -> None:
    assert parse_result_value(load_release_spec(DEFAULT).test("cd105"), "96.5", "%") == Decimal("96.5")


def test_a_binary_float_is_refused_so_limits_are_compared_in_decimal() -> None:
    with pytest.raises(TypeError):
        parse_result_value(load_release_spec(DEFAULT).test("cd105"), 96.5, "percent")  # type: ignore[arg-type]


def test_a_word_outside_the_tests_results_is_refused_and_known_words_are_normalised() -> None:
    gram = load_release_spec(DEFAULT).test("gram_stain")
    assert parse_result_value(gram, "  No   Organisms ", "none") == "no organisms"
    with pytest.raises(ResultValueError, match="Gram stain: 'maybe' is not a result of this test"):
        parse_result_value(gram, "maybe", "none")


def test_a_range_test_is_a_config_change_only(tmp_path: Path) -> None:
    tests = CD105.replace('kind = "minimum"', 'kind = "range"').replace("min = 95", "min = 10\nmax = 20")
    test = load_release_spec(write_spec(tmp_path, tests)).test("cd105")
    assert judge_value(test, Decimal(15)).meets is True
    assert judge_value(test, Decimal("20.1")).comparison == "20.1 % outside 10 % to 20 %"


def test_an_informative_kind_records_a_value_without_a_limit(tmp_path: Path) -> None:
    tests = CD105.replace('kind = "minimum"', 'kind = "informative"').replace("min = 95\n", "")
    test = load_release_spec(write_spec(tmp_path, tests)).test("cd105")
    assert judge_value(test, parse_result_value(test, "50", "percent")).meets is None


def test_every_kind_in_the_registry_can_judge() -> None:
    assert set(KINDS) == {"minimum", "maximum", "range", "negative", "pass_fail", "informative"}
    assert all(callable(k.judge) and callable(k.limit_text) for k in KINDS.values())


@pytest.mark.parametrize(
    ("edit", "key", "problem"),
    [
        (lambda t: t.replace('"minimum"', '"at_least"'), "tests[0].kind", "unknown kind 'at_least'"),
        (lambda t: t.replace('name = "CD105"\n', ""), "tests[0].name", "missing"),
        (lambda t: t.replace('"percent"', '"furlongs"'), "tests[0].unit", "unknown unit 'furlongs'"),
        (lambda t: t.replace('unit = "percent"', 'unit = "none"'), "tests[0].unit", "needs a numeric unit"),
        (lambda t: t.replace("min = 95", "min = 104"), "tests[0].min", "a percentage is between 0 and 100"),
        (lambda t: t.replace("min = 95\n", ""), "tests[0].min", "missing (kind 'minimum' needs it)"),
        (lambda t: t.replace("min = 95", "min = 95\nmax = 2"), "tests[0].max", "not allowed for kind 'minimum'"),
        (lambda t: t.replace("blocking = true", "bloking = true"), "tests[0].bloking", "unknown key"),
        (lambda t: t.replace("blocking = true", 'blocking = "yes"'), "tests[0].blocking", "expected bool"),
        (lambda t: t + t, "tests[1].id", "duplicate test id 'cd105'"),
        (lambda t: t + 'variant = "loose"\n', "tests[0].variant", "has no [variants] tables"),
        (lambda t: t + 'variant = "loose"\n[tests.variants.strict]\nmin = 99\n', "tests[0].variant",
         "'loose' is not one of: strict"),
    ],
)
def test_a_broken_spec_is_refused_naming_the_file_and_the_key(tmp_path: Path, edit, key: str, problem: str) -> None:
    path = write_spec(tmp_path, edit(CD105))
    with pytest.raises(ConfigError) as caught:
        load_release_spec(path)
    assert caught.value.file == str(path)
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("header", "key"),
    [
        (HEADER.replace('title = "t"\n', ""), "title"),
        (HEADER.replace('products = ["MSC(M)"]', "products = []"), "products"),
        (HEADER.replace('version = "1"\n', ""), "version"),
    ],
)
def test_a_spec_without_its_header_keys_is_refused_naming_the_key(tmp_path: Path, header: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_release_spec(write_spec(tmp_path, CD105, header=header))
    assert caught.value.key == key


def test_a_spec_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_release_spec(write_spec(tmp_path, "[[tests]\n"))


def test_two_files_with_the_same_id_and_version_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(HEADER + CD105, encoding="utf-8")
    (tmp_path / "b.toml").write_text(HEADER + CD105, encoding="utf-8")
    with pytest.raises(ConfigError, match="also defined in"):
        load_release_specs(tmp_path)


def test_a_blocking_test_without_a_limit_waits_for_its_result_and_then_never_blocks(tmp_path: Path) -> None:
    """A "report the result" line (kind informative, blocking = true, e.g. a karyotype the trial wants on every
    lot): release waits for a valid result, which then neither passes nor fails. Read as FAIL ("no limit" is not
    "meets"), it left the lot with no way to be released and no OOS to open."""
    from datetime import UTC, datetime

    from mscbatch.core.verdicts import LabResult, LotStatus, VerdictStatus, can_release, judge_lot, judge_test

    tests = CD105.replace('kind = "minimum"', 'kind = "informative"').replace("min = 95\n", "")
    spec = load_release_spec(write_spec(tmp_path, tests))
    test = spec.test("cd105")
    assert test.blocking
    waiting = judge_test(test, [])
    assert waiting.status == VerdictStatus.PENDING and judge_lot(spec, []).status == LotStatus.PENDING
    reported = [LabResult("cd105", "50", "percent", datetime(2026, 1, 5, tzinfo=UTC))]
    verdict = judge_test(test, reported)
    assert verdict.status == VerdictStatus.INFORMATIVE and "no limit" in verdict.reason, verdict.reason
    assert judge_lot(spec, reported).status == LotStatus.READY
    facts = dict(donor_approved=True, open_oos=0, releaser_entered_results=False, releaser_recorded_manufacture=False)
    assert can_release(judge_lot(spec, reported).verdicts, **facts) == []  # type: ignore[arg-type]
    assert can_release(judge_lot(spec, []).verdicts, **facts) == ["CD105 pending (no valid result yet)"]  # type: ignore[arg-type]
