"""`mediasuite up` gives processing, the cache and batch one media library and one derived store,
under the state dir by default."""

from __future__ import annotations

from pathlib import Path

from services.cache.config import CacheConfig
from services.cli.suite import prepare_media, suite_environment
from services.processing.config import ProcessingConfig
from services.runtime.config import Env


def test_by_default_both_read_state_dir_media_and_outputs_go_to_state_dir_derived(tmp_path: Path) -> None:
    env = suite_environment({}, tmp_path)
    processing = ProcessingConfig.from_env(Env(env))
    assert processing.media_root == tmp_path / "media"
    assert processing.derived_root == tmp_path / "derived"
    assert CacheConfig.from_env(Env(env)).media_root == tmp_path / "media"
    # batch reads these (its branch adds the settings): the same directories
    assert env["BATCH_MEDIA_ROOT"] == str(tmp_path / "media")
    assert env["BATCH_DERIVED_ROOT"] == str(tmp_path / "derived")
    assert prepare_media(env, tmp_path) == []
    assert (tmp_path / "media").is_dir()
    assert (tmp_path / "derived").is_dir()


def test_a_library_named_for_either_process_is_the_library_of_both(tmp_path: Path) -> None:
    library = tmp_path / "photos"
    library.mkdir()
    for name in ("PROCESSING_MEDIA_ROOT", "CACHE_MEDIA_ROOT", "BATCH_MEDIA_ROOT"):
        env = suite_environment({name: str(library)}, tmp_path / "state")
        assert (
            env["PROCESSING_MEDIA_ROOT"] == env["CACHE_MEDIA_ROOT"] == env["BATCH_MEDIA_ROOT"] == str(library)
        )
        assert prepare_media(env, tmp_path / "state") == []
    env = suite_environment({"BATCH_DERIVED_ROOT": str(library)}, tmp_path / "state")
    assert env["PROCESSING_DERIVED_ROOT"] == str(library)


def test_what_the_user_set_is_kept_and_a_disagreement_or_a_missing_library_is_reported(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    env = suite_environment(
        {
            "PROCESSING_MEDIA_ROOT": str(tmp_path / "missing"),
            "CACHE_MEDIA_ROOT": str(tmp_path / "elsewhere"),
            "PROCESSING_DERIVED_ROOT": str(state / "out"),
        },
        state,
    )
    assert env["PROCESSING_MEDIA_ROOT"] == str(tmp_path / "missing")
    assert env["CACHE_MEDIA_ROOT"] == str(tmp_path / "elsewhere")
    warnings = prepare_media(env, state)
    assert len(warnings) == 2
    assert warnings[0].startswith(f"PROCESSING_MEDIA_ROOT ({tmp_path / 'missing'}) is not a directory")
    assert warnings[1].startswith(f"CACHE_MEDIA_ROOT ({tmp_path / 'elsewhere'}) is not PROCESSING_MEDIA_ROOT")
    assert env["BATCH_MEDIA_ROOT"] == env["PROCESSING_MEDIA_ROOT"], "unset: processing's, the first named"
    assert not (tmp_path / "missing").exists(), "a directory the user named is never made up"
    assert (state / "out").is_dir(), "one under the state dir is created"
