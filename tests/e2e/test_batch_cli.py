"""mediactl against real batch and processing processes: import, batch run/list, catalog query and
summary, NDJSON for scripts and errors that say what to do next."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.batch import batch_env, make_tree, processing_env
from tests.support.processes import service_process
from tests.support.redis import SHARED_URL, delete_prefix, unique_prefix

MEDIACTL = str(Path(sys.executable).parent / "mediactl")


def _mediactl(batch: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MEDIACTL, "--batch-addr", batch, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_import_run_query_summary_from_the_command_line(tmp_path: Path) -> None:
    media, derived = tmp_path / "media", tmp_path / "derived"
    media.mkdir()
    paths = make_tree(media, images=20)
    prefix = unique_prefix("batchcli")
    try:
        with service_process("processing", tmp_path, **processing_env(media, derived)) as p:
            env = batch_env(media, derived, redis_url=SHARED_URL, prefix=prefix, processing=p.address)
            with service_process("batch", tmp_path, **env) as batch:
                imported = _mediactl(batch.address, "import", "library", "--json")
                assert imported.returncode == 0, imported.stderr
                events = [json.loads(line) for line in imported.stdout.splitlines()]
                assert [int(e["sequence"]) for e in events] == list(
                    range(1, len(events) + 1)
                )  # proto3 JSON: int64 as text
                assert sum("item_done" in e for e in events) == 20
                assert events[-1]["finished"]["batch"]["state"] == "BATCH_STATE_SUCCEEDED"

                tagged = _mediactl(
                    batch.address,
                    "batch",
                    "run",
                    "tag",
                    "--select",
                    "format=PNG",
                    "--tag",
                    "Flat",
                    "--atomic",
                )
                assert tagged.returncode == 0, tagged.stderr
                assert "succeeded: 4 done" in tagged.stderr  # the progress view ends with the outcome

                found = _mediactl(batch.address, "catalog", "query", "--where", "tag=flat", "--json")
                assert found.returncode == 0, found.stderr
                items = [json.loads(line) for line in found.stdout.splitlines()]
                assert sorted(i["path"] for i in items) == sorted(p for p in paths if p.endswith(".png"))

                summary = json.loads(_mediactl(batch.address, "catalog", "summary", "--json").stdout)
                assert int(summary["total"]["count"]) == 20
                assert int(summary["by_format"]["PNG"]["count"]) == 4

                listed = _mediactl(batch.address, "batch", "list", "--json")
                batches = [json.loads(line) for line in listed.stdout.splitlines()]
                assert [b["state"] for b in batches] == ["BATCH_STATE_SUCCEEDED"] * 2

                refused = _mediactl(batch.address, "batch", "run", "purge", "--select", "status=trashed")
                assert refused.returncode == 1
                assert "PERMISSION_DENIED" in refused.stderr
                assert "--admin" in refused.stderr
                outside = _mediactl(batch.address, "import", "../elsewhere")
                assert outside.returncode == 1
                assert "PERMISSION_DENIED" in outside.stderr
    finally:
        delete_prefix(SHARED_URL, prefix)
