"""Versions of one release specification (mscbatch.core.release_spec): ordered as numbers, one number per version,
and each test keeps how its results are written, since the version in force judges results entered under older
ones (release.specs: an unreleased lot is judged under the highest version)."""
from __future__ import annotations

from pathlib import Path

import pytest

from mscbatch.core.configfiles import ConfigError
from mscbatch.core.release_spec import load_release_spec, load_release_specs, version_key

GRAM = """
[[tests]]
id = "gram_stain"
name = "Gram stain"
kind = "negative"
unit = "none"
pass_result = "no organisms"
fail_result = "organisms seen"
group = "safety"
method = "Gram stain"
blocking = true
"""
POTENCY = """
[[tests]]
id = "potency"
name = "Potency"
kind = "minimum"
unit = "percent"
min = 20
group = "potency"
method = "co-culture"
blocking = false
"""


def write(folder: Path, name: str, version: str, tests: str) -> Path:
    path = folder / name
    path.write_text(f'id = "spec"\nversion = "{version}"\ntitle = "t"\nproducts = ["MSC(M)"]\nsources = ["s"]\n'
                    + tests, encoding="utf-8")
    return path


@pytest.mark.parametrize("version", ["2a", "v2", "1..2", "", "1.", "2-draft"])
def test_a_version_that_is_not_dotted_whole_numbers_is_refused_naming_the_key(tmp_path: Path, version: str) -> None:
    path = write(tmp_path, "s.toml", version, GRAM)
    with pytest.raises(ConfigError) as caught:
        load_release_spec(path)
    assert (caught.value.key, caught.value.file) == ("version", str(path))


def test_versions_are_ordered_as_numbers_and_trailing_zeros_do_not_make_another_version() -> None:
    assert version_key("1.10") > version_key("1.9") > version_key("1") and version_key("10") > version_key("9")
    assert version_key("1") == version_key("1.0") == version_key("01") == version_key("1.0.0")


def test_the_same_version_written_twice_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", "1", GRAM)
    write(tmp_path, "b.toml", "1.0", GRAM)
    with pytest.raises(ConfigError, match="also defined in") as caught:
        load_release_specs(tmp_path)
    assert caught.value.key == "version" and caught.value.file.endswith("b.toml")


@pytest.mark.parametrize(("later", "key"), [
    (GRAM + POTENCY.replace('kind = "minimum"\nunit = "percent"\nmin = 20', 'kind = "pass_fail"\nunit = "none"'),
     "tests[1].unit"),
    (GRAM.replace('"no organisms"', '"none seen"') + POTENCY, "tests[0].pass_result"),
    (GRAM.replace('"organisms seen"', '"seen"') + POTENCY, "tests[0].fail_result"),
])
def test_a_later_version_that_cannot_read_an_earlier_versions_results_is_refused(tmp_path: Path, later: str,
                                                                                 key: str) -> None:
    write(tmp_path, "v1.toml", "1", GRAM + POTENCY)
    write(tmp_path, "v2.toml", "2", later)
    with pytest.raises(ConfigError) as caught:
        load_release_specs(tmp_path)
    assert caught.value.key == key and caught.value.file.endswith("v2.toml")
    assert "version 1 (v1.toml)" in caught.value.problem and "new test id" in caught.value.problem


def test_a_test_left_out_of_one_version_and_brought_back_with_another_unit_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "v1.toml", "1", GRAM + POTENCY)
    write(tmp_path, "v2.toml", "2", GRAM)
    write(tmp_path, "v3.toml", "3", GRAM + POTENCY.replace('unit = "percent"\nmin = 20', 'unit = "cells"\nmin = 20'))
    with pytest.raises(ConfigError) as caught:
        load_release_specs(tmp_path)
    assert caught.value.key == "tests[1].unit" and caught.value.file.endswith("v3.toml")


def test_a_later_version_may_change_limits_and_kinds_that_keep_results_readable(tmp_path: Path) -> None:
    write(tmp_path, "v1.toml", "1", GRAM + POTENCY)
    write(tmp_path, "v1_1.toml", "1.1", GRAM.replace('kind = "negative"', 'kind = "pass_fail"')
          + POTENCY.replace("min = 20", "min = 25").replace("blocking = false", "blocking = true"))
    write(tmp_path, "v2.toml", "2", GRAM.replace('kind = "negative"\nunit = "none"\npass_result = "no organisms"\n'
                                                 'fail_result = "organisms seen"', 'kind = "informative"\nunit = "none"')
          + POTENCY.replace('kind = "minimum"', 'kind = "informative"').replace("min = 20\n", ""))
    assert [s.version for s in load_release_specs(tmp_path)] == ["1", "1.1", "2"]
