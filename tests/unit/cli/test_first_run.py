"""When `mediasuite up` writes the sample library, and when it never does."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli.first_run import SAMPLE_ENV, plan_sample
from services.cli.suite import chosen_media_root, suite_environment
from services.runtime.config import ConfigError
from services.sample.library import STAGING_DIR


def test_an_empty_default_library_gets_the_sample(tmp_path: Path) -> None:
    plan = plan_sample({}, tmp_path / "media", no_sample=False, chosen_by=None)
    assert plan.write
    assert plan.reason == f"38 files into {tmp_path / 'media' / 'sample'}"
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / STAGING_DIR).mkdir()  # what an interrupted first run leaves
    assert plan_sample({}, tmp_path / "media", no_sample=False, chosen_by=None).write


@pytest.mark.parametrize(
    ("environ", "no_sample", "chosen_by", "reason"),
    [
        ({}, True, None, "off (--no-sample)"),
        ({SAMPLE_ENV: "off"}, False, None, "off (MEDIASUITE_SAMPLE=off)"),
        ({SAMPLE_ENV: "0"}, False, None, "off (MEDIASUITE_SAMPLE=0)"),
        ({}, False, "CACHE_MEDIA_ROOT", "not written: the media library was chosen with CACHE_MEDIA_ROOT"),
    ],
)
def test_turned_off_or_a_chosen_library_is_never_written(
    tmp_path: Path, environ: dict[str, str], no_sample: bool, chosen_by: str | None, reason: str
) -> None:
    plan = plan_sample(environ, tmp_path, no_sample=no_sample, chosen_by=chosen_by)
    assert not plan.write
    assert plan.reason == reason


def test_a_library_that_holds_anything_is_not_touched(tmp_path: Path) -> None:
    (tmp_path / "holiday.jpg").write_bytes(b"mine")
    plan = plan_sample({}, tmp_path, no_sample=False, chosen_by=None)
    assert not plan.write
    assert plan.reason == "not written: the media library is not empty"


def test_a_bad_switch_says_its_value_and_what_is_accepted(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        plan_sample({SAMPLE_ENV: "maybe"}, tmp_path, no_sample=False, chosen_by=None)
    assert str(caught.value) == (
        "MEDIASUITE_SAMPLE is 'maybe': expected true or false (also 1/0, yes/no, on/off)"
    )


def test_which_variable_chose_the_library() -> None:
    assert chosen_media_root({}) is None
    assert chosen_media_root({"CACHE_MEDIA_ROOT": "/photos"}) == "CACHE_MEDIA_ROOT"
    assert chosen_media_root({"BATCH_MEDIA_ROOT": ""}) is None


def test_each_library_gets_its_own_catalog(tmp_path: Path) -> None:
    one = suite_environment({}, tmp_path / "one")["BATCH_KEY_PREFIX"]
    two = suite_environment({}, tmp_path / "two")["BATCH_KEY_PREFIX"]
    assert one.startswith("mediasuite:batch:")
    assert one.endswith(":")
    assert one != two
    assert suite_environment({}, tmp_path / "one")["BATCH_KEY_PREFIX"] == one, "stable across starts"
    same = suite_environment({"PROCESSING_MEDIA_ROOT": str(tmp_path / "one" / "media")}, tmp_path / "x")
    assert same["BATCH_KEY_PREFIX"] == one, "named by the library, not the state dir"
    assert suite_environment({"BATCH_KEY_PREFIX": "mine:"}, tmp_path)["BATCH_KEY_PREFIX"] == "mine:"
