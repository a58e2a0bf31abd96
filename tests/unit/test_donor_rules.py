"""Loading and validating the donor eligibility rule files (config/donor_rules/, DOMAIN.md section 3)."""
from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

import pytest

from mscbatch.core.configfiles import ConfigError
from mscbatch.core.donor_rules import (
    FACT_KINDS,
    TISSUE_SOURCES,
    load_all_donor_rule_sets,
    load_donor_rule_set,
)
from mscbatch.core.eligibility import FACT_EVALUATORS

RULES_DIR = Path(__file__).resolve().parents[2] / "config" / "donor_rules"
MANDATORY_EU_PANEL = {"anti_hiv_1_2", "hbsag", "anti_hbc", "anti_hcv", "syphilis"}

MINIMAL = """
id = "tiny"
version = "1"
tissue_source = "bone_marrow"
protocol = "TEST"
title = "Minimal rule set"
sources = ["test"]

[sample_window]
from_days = -30
to_days = 0
unit = "days"
source = "EU 2006/17/EC Annex II 2.5"

[[markers]]
id = "hbsag"
name = "HBsAg"
method = "serology"
on_positive = "ineligible"
source = "test"

[[limits]]
id = "min_weight"
quantity = "weight"
kind = "min"
min = 50
unit = "kg"
text = "Weight at least 50 kg"
source = "test"

[[required_facts]]
id = "consent"
kind = "consent"
text = "Signed consent"
source = "test"
"""


def write(tmp_path: Path, text: str, name: str = "bad.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_shipped_rule_file_loads_with_its_id_version_and_hash() -> None:
    rule_sets = load_all_donor_rule_sets(RULES_DIR)
    assert set(rule_sets) == {"adipose_at_don", "marrow_ssc_bm", "cord_eu"}
    for rule_set in rule_sets.values():
        assert rule_set.version == ("2" if rule_set.id == "cord_eu" else "1")  # cord_eu 2: HTLV by origin
        assert rule_set.sha256 == hashlib.sha256(Path(rule_set.path).read_bytes()).hexdigest()
        assert rule_set.tissue_source in TISSUE_SOURCES
        assert rule_set.sources
        assert MANDATORY_EU_PANEL <= {m.id for m in rule_set.markers if m.required}


def test_every_criterion_names_its_source_and_has_a_unique_rule_id() -> None:
    for rule_set in load_all_donor_rule_sets(RULES_DIR).values():
        rule_ids = [c.rule_id for c in rule_set.criteria()]
        assert len(rule_ids) == len(set(rule_ids))
        assert all(c.source for c in rule_set.criteria())


def test_each_rule_set_covers_its_source_specific_markers() -> None:
    rule_sets = load_all_donor_rule_sets(RULES_DIR)
    adipose = {m.id for m in rule_sets["adipose_at_don"].markers if m.required}
    assert {"htlv_1_2", "hev", "toxo_igm", "ebv_igm", "cmv_igm"} <= adipose
    marrow = {m.id for m in rule_sets["marrow_ssc_bm"].markers if m.required}
    assert {"htlv_1_2", "hiv_nat", "hbv_nat", "hcv_nat"} <= marrow


def test_windows_match_the_eu_sample_timing_and_cord_window_is_marked_to_confirm() -> None:
    rule_sets = load_all_donor_rule_sets(RULES_DIR)
    marrow, adipose, cord = (rule_sets[k].sample_window for k in ("marrow_ssc_bm", "adipose_at_don", "cord_eu"))
    assert (marrow.from_days, marrow.to_days) == (-30, 0)
    assert (adipose.from_days, adipose.to_days) == (0, 7)
    assert adipose.extended is not None and (adipose.extended.from_days, adipose.extended.to_days) == (-30, 7)
    assert (cord.from_days, cord.to_days) == (-7, 7)
    assert cord.to_confirm and "to confirm" in cord.note.lower()


def test_hbv_core_antibody_is_a_risk_assessment_under_eu_cord_rules_but_excludes_under_at_don() -> None:
    rule_sets = load_all_donor_rule_sets(RULES_DIR)
    assert rule_sets["cord_eu"].marker("anti_hbc").on_positive == "risk_assessment"
    assert rule_sets["adipose_at_don"].marker("anti_hbc").on_positive == "ineligible"


def test_numeric_limits_are_decimals_with_their_units() -> None:
    rule_sets = load_all_donor_rule_sets(RULES_DIR)
    (weight,) = rule_sets["adipose_at_don"].limits
    assert weight.min == Decimal("50") and isinstance(weight.min, Decimal) and weight.unit == "kg"
    (age,) = rule_sets["marrow_ssc_bm"].limits
    assert (age.min, age.max, age.unit) == (Decimal(18), Decimal(65), "years")


def test_every_adipose_exclusion_in_the_at_don_list_is_a_question() -> None:
    questions = {q.id for q in load_all_donor_rule_sets(RULES_DIR)["adipose_at_don"].questions}
    assert {"dura_mater_graft", "cns_surgery", "steroids_over_5_days_past_3_months", "lithium", "pregnancy",
            "deprived_of_freedom", "uncontrolled_hypertension", "haemophilia", "icterus"} <= questions
    assert len(questions) == 20


def test_every_fact_kind_the_loader_accepts_has_an_evaluator() -> None:
    assert set(FACT_KINDS) == set(FACT_EVALUATORS)


def test_a_minimal_valid_file_loads(tmp_path: Path) -> None:
    rule_set = load_donor_rule_set(write(tmp_path, MINIMAL))
    assert rule_set.id == "tiny" and rule_set.limits[0].min == Decimal(50)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('method = "serology"', 'method = "ELISA"', "markers[0].method"),
        ('kind = "min"', 'kind = "between"', "limits[0].kind"),
        ('kind = "consent"', 'kind = "blood_group"', "required_facts[0].kind"),
        ('on_positive = "ineligible"', 'on_positive = "ignore"', "markers[0].on_positive"),
        ('tissue_source = "bone_marrow"', 'tissue_source = "liver"', "tissue_source"),
        ('quantity = "weight"', 'quantity = "height"', "limits[0].quantity"),
    ],
)
def test_an_unknown_kind_raises_config_error_naming_file_and_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    path = write(tmp_path, MINIMAL.replace(old, new))
    with pytest.raises(ConfigError, match="unknown kind") as caught:
        load_donor_rule_set(path)
    assert caught.value.file == str(path) and caught.value.key == key
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("old", "key"),
    [
        ('source = "test"\n\n[[limits]]', "markers[0].source"),
        ('name = "HBsAg"\n', "markers[0].name"),
        ('min = 50\n', "limits[0].min"),
        ('text = "Signed consent"\n', "required_facts[0].text"),
        ('to_days = 0\n', "sample_window.to_days"),
        ('protocol = "TEST"\n', "protocol"),
    ],
)
def test_a_missing_field_raises_config_error_naming_file_and_key(tmp_path: Path, old: str, key: str) -> None:
    path = write(tmp_path, MINIMAL.replace(old, "\n[[limits]]" if old.endswith("[[limits]]") else ""))
    with pytest.raises(ConfigError, match="missing") as caught:
        load_donor_rule_set(path)
    assert caught.value.file == str(path) and caught.value.key == key


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('unit = "kg"', 'unit = "lb"', "limits[0].unit"),
        ('unit = "days"', 'unit = "weeks"', "sample_window.unit"),
    ],
)
def test_a_bad_unit_raises_config_error_naming_file_and_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    path = write(tmp_path, MINIMAL.replace(old, new))
    with pytest.raises(ConfigError, match="bad unit") as caught:
        load_donor_rule_set(path)
    assert caught.value.file == str(path) and caught.value.key == key


def test_a_misspelt_key_is_refused_rather_than_silently_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('on_positive = "ineligible"', 'on_positve = "ineligible"'))
    with pytest.raises(ConfigError, match="unknown key") as caught:
        load_donor_rule_set(path)
    assert caught.value.key == "markers[0].on_positve"


def test_a_weight_limit_given_as_text_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("min = 50", 'min = "50"'))
    with pytest.raises(ConfigError) as caught:
        load_donor_rule_set(path)
    assert caught.value.key == "limits[0].min"


def test_a_duplicate_marker_id_is_refused(tmp_path: Path) -> None:
    marker = MINIMAL[MINIMAL.index("[[markers]]"):MINIMAL.index("[[limits]]")]
    path = write(tmp_path, MINIMAL.replace("[[limits]]", marker + "[[limits]]", 1))
    with pytest.raises(ConfigError, match="duplicate id") as caught:
        load_donor_rule_set(path)
    assert caught.value.key == "markers[1].id"


def test_an_inverted_window_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("to_days = 0", "to_days = -40"))
    with pytest.raises(ConfigError) as caught:
        load_donor_rule_set(path)
    assert caught.value.key == "sample_window.from_days"


def test_an_extended_window_naming_an_unknown_nat_marker_is_refused(tmp_path: Path) -> None:
    extended = ('[sample_window.extended]\nfrom_days = -30\nto_days = 7\nunit = "days"\n'
                'nat_markers = ["hiv_nat"]\nsource = "test"\n\n[[markers]]')
    path = write(tmp_path, MINIMAL.replace("[[markers]]", extended, 1))
    with pytest.raises(ConfigError) as caught:
        load_donor_rule_set(path)
    assert caught.value.key == "sample_window.extended.nat_markers"


def test_a_relationship_fact_without_allowed_values_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('kind = "consent"', 'kind = "relationship"'))
    with pytest.raises(ConfigError) as caught:
        load_donor_rule_set(path)
    assert caught.value.key == "required_facts[0].allowed"


def test_two_files_with_the_same_rule_set_id_are_refused(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL, "a.toml")
    second = write(tmp_path, MINIMAL, "b.toml")
    with pytest.raises(ConfigError, match="duplicate rule-set id") as caught:
        load_all_donor_rule_sets(tmp_path)
    assert caught.value.file == str(second) and caught.value.key == "id"


def test_a_file_that_is_not_toml_is_refused_with_its_name(tmp_path: Path) -> None:
    path = write(tmp_path, "id = [unclosed")
    with pytest.raises(ConfigError) as caught:
        load_donor_rule_set(path)
    assert caught.value.file == str(path)
