"""Loading and validating the trial protocol files (config/protocols/, DOMAIN.md section 6)."""
from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

import pytest

from mscbatch.core.configfiles import ConfigError
from mscbatch.core.protocols import KNOWN_UNITS, format_cells_per_kg, load_protocol, load_protocols

PROTOCOLS_DIR = Path(__file__).resolve().parents[2] / "config" / "protocols"
SLE_FILE = PROTOCOLS_DIR / "sle_uc.toml"
SSC_FILE = PROTOCOLS_DIR / "ssc_bm.toml"


def _variant(tmp_path: Path, old: str, new: str, source: Path = SLE_FILE) -> Path:
    """A copy of a real protocol file with one piece of text replaced (which must exist)."""
    text = source.read_text(encoding="utf-8")
    assert old in text, f"test setup: {old!r} not in {source.name}"
    path = tmp_path / "broken.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _raises(path: Path, key: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_protocol(path)
    assert info.value.file == str(path) and info.value.key == key, str(info.value)
    assert str(path) in str(info.value) and key in str(info.value)
    return info.value


@pytest.mark.parametrize("path", sorted(PROTOCOLS_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_protocol_file_loads_with_its_hash(path: Path) -> None:
    protocol = load_protocol(path)
    assert protocol.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert protocol.version and protocol.trial_id.startswith("NCT")
    assert protocol.age.above_years == 18 and protocol.age.below_years == 70
    for criterion in protocol.criteria:
        assert criterion.text and criterion.source and criterion.unit in KNOWN_UNITS


def test_load_protocols_keys_both_trials_by_id() -> None:
    protocols = load_protocols(PROTOCOLS_DIR)
    assert {p.trial_id for p in protocols.values()} == {"NCT03562065", "NCT02213705"}
    assert load_protocols().keys() == protocols.keys()


def test_the_lupus_protocol_uses_umbilical_cord_msc_at_1_2_or_4_million_per_kg_starting_at_2() -> None:
    sle = load_protocol(SLE_FILE)
    assert sle.products == ("UC-MSC",) and sle.directed is False
    assert sle.dosing.dose_levels_cells_per_kg == (Decimal("1E6"), Decimal("2E6"), Decimal("4E6"))
    assert sle.escalation.starting_level_cells_per_kg == Decimal(2_000_000)
    assert sle.escalation.cohort_size == 5
    first, second = sle.escalation.stages
    assert first.levels_cells_per_kg == (Decimal("2E6"),) and first.patients == 5 and not first.needs_decision
    assert set(second.levels_cells_per_kg) == {Decimal("1E6"), Decimal("4E6")} and second.needs_decision
    inclusion = {c.parameter: c for c in sle.inclusion}
    assert inclusion["selena_sledai_points"].comparator == ">="
    assert inclusion["selena_sledai_points"].threshold == 6


def test_the_sclerosis_protocol_is_directed_familial_marrow_msc_10_at_1_then_10_at_3_million_per_kg() -> None:
    ssc = load_protocol(SSC_FILE)
    assert ssc.products == ("BM-MSC",) and ssc.directed is True
    assert [(s.levels_cells_per_kg, s.patients) for s in ssc.escalation.stages] == [
        ((Decimal("1E6"),), 10), ((Decimal("3E6"),), 10)]
    assert not any(s.needs_decision for s in ssc.escalation.stages)
    mrss = ssc.inclusion[0]
    assert (mrss.parameter, mrss.comparator, mrss.threshold) == ("mrss_points", ">", 15)


@pytest.mark.parametrize("path", [SLE_FILE, SSC_FILE], ids=lambda p: p.name)
def test_dose_settings_follow_domain_section_6(path: Path) -> None:
    dosing = load_protocol(path).dosing
    assert dosing.dose_basis == "viable"
    assert dosing.weight_valid_days == 7 and dosing.tolerance_percent == 10
    assert dosing.max_dmso_g_per_kg_per_day == 1
    assert dosing.dmso_density_g_per_ml == Decimal("1.10")
    assert dosing.endotoxin_k_eu_per_kg_per_h == 5


def test_a_parameter_has_the_same_unit_in_every_protocol() -> None:
    units: dict[str, set[str]] = {}
    for protocol in load_protocols(PROTOCOLS_DIR).values():
        for parameter, unit in protocol.parameters().items():
            units.setdefault(parameter, set()).add(unit)
    assert {p: u for p, u in units.items() if len(u) > 1} == {}


def test_the_published_rodnan_wording_is_a_config_change(tmp_path: Path) -> None:
    path = _variant(tmp_path, 'comparator = ">"\nthreshold = 15', 'comparator = ">="\nthreshold = 15', SSC_FILE)
    assert load_protocol(path).inclusion[0].comparator == ">="


def test_format_cells_per_kg_writes_levels_as_the_protocols_do() -> None:
    assert format_cells_per_kg(Decimal("2E+6")) == "2 x10^6/kg"
    assert format_cells_per_kg(Decimal("1500000")) == "1.5 x10^6/kg"


def test_an_unknown_comparator_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    error = _raises(_variant(tmp_path, 'comparator = ">="', 'comparator = "=>"'), "inclusion[0].comparator")
    assert "=>" in error.problem


def test_an_unknown_unit_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    _raises(_variant(tmp_path, 'unit = "mL/min"', 'unit = "ml/mn"'), "exclusion[0].unit")


def test_a_yes_no_criterion_with_a_numeric_unit_is_refused(tmp_path: Path) -> None:
    path = _variant(tmp_path, 'unit = "boolean"\ncomparator = "is_true"', 'unit = "G/L"\ncomparator = "is_true"')
    _raises(path, "exclusion[11].unit")


def test_a_numeric_criterion_with_the_boolean_unit_is_refused(tmp_path: Path) -> None:
    _raises(_variant(tmp_path, 'unit = "mL/min"', 'unit = "boolean"'), "exclusion[0].unit")


def test_a_missing_threshold_is_refused_naming_the_criterion(tmp_path: Path) -> None:
    _raises(_variant(tmp_path, "threshold = 30\n", ""), "exclusion[0].threshold")


def test_a_numeric_criterion_needs_its_plausible_range(tmp_path: Path) -> None:
    line = "plausible = [0, 400]  # Cockcroft-Gault can exceed 250 for a young, heavy patient\n"
    _raises(_variant(tmp_path, "threshold = 30\n" + line, "threshold = 30\n"), "exclusion[0].plausible")


@pytest.mark.parametrize("bounds", ["[400, 0]", "[0]", "[-1, 400]", "[40, 400]", '["0", "400"]'])
def test_a_plausible_range_that_is_not_low_high_around_the_threshold_is_refused(tmp_path: Path, bounds: str) -> None:
    _raises(_variant(tmp_path, "plausible = [0, 400]", f"plausible = {bounds}"), "exclusion[0].plausible")


def test_every_numeric_criterion_of_the_shipped_protocols_has_a_range_around_its_threshold() -> None:
    for protocol in load_protocols(PROTOCOLS_DIR).values():
        for criterion in protocol.criteria:
            if criterion.is_boolean:
                assert criterion.plausible is None
            else:
                assert criterion.plausible is not None and criterion.threshold is not None
                assert criterion.plausible[0] <= criterion.threshold <= criterion.plausible[1], criterion.id


def test_a_missing_source_is_refused_naming_the_criterion(tmp_path: Path) -> None:
    line = 'source = "SLE-UC synopsis (seed 001), inclusion 3 (the registry copy lost the >= sign)"\n'
    _raises(_variant(tmp_path, line, ""), "inclusion[0].source")


def test_a_misspelt_key_is_refused_rather_than_ignored(tmp_path: Path) -> None:
    _raises(_variant(tmp_path, "threshold = 30", "treshold = 30"), "exclusion[0].treshold")


def test_a_missing_dosing_field_is_refused(tmp_path: Path) -> None:
    _raises(_variant(tmp_path, "weight_valid_days = 7", "# no validity"), "dosing.weight_valid_days")


def test_an_unknown_dose_basis_is_refused(tmp_path: Path) -> None:
    _raises(_variant(tmp_path, 'dose_basis = "viable"', 'dose_basis = "nucleated"'), "dosing.dose_basis")


def test_a_duplicate_criterion_id_is_refused(tmp_path: Path) -> None:
    _raises(_variant(tmp_path, 'id = "sle.exc.lvef"', 'id = "sle.exc.creatinine_clearance"'), "exclusion[1].id")


def test_an_escalation_level_that_is_not_a_dose_level_is_refused(tmp_path: Path) -> None:
    _raises(_variant(tmp_path, "levels_cells_per_kg = [1e6, 4e6]", "levels_cells_per_kg = [1e6, 5e6]"),
            "escalation.stages[1].levels_cells_per_kg[1]")


def test_a_starting_level_other_than_the_first_stage_is_refused(tmp_path: Path) -> None:
    _raises(_variant(tmp_path, "starting_level_cells_per_kg = 2e6", "starting_level_cells_per_kg = 4e6"),
            "escalation.starting_level_cells_per_kg")


def test_a_missing_trial_identifier_is_refused(tmp_path: Path) -> None:
    _raises(_variant(tmp_path, 'trial_id = "NCT03562065"\n', ""), "trial_id")
