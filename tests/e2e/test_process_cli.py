"""``mediactl process ...`` against a real mediasuite-processing process, on files made here."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from services.cli.mediactl import cli
from tests.support import media as M
from tests.support.processes import service_process


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_process_commands_read_local_files_and_write_results(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(M.oriented_jpeg(6))
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(M.h264_video())
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(M.corrupt_h264())
    media = tmp_path / "media"
    media.mkdir()
    (media / "remote.png").write_bytes(M.save(M.photo(300, 200), "PNG"))
    runner = CliRunner()
    with service_process(
        "processing",
        tmp_path,
        PROCESSING_MEDIA_ROOT=str(media),
        PROCESSING_CACHE="false",
        PROCESSING_WORKERS="1",
    ) as svc:

        def run(*args: str) -> tuple[int, str]:
            result = runner.invoke(
                cli, ["--processing-addr", svc.address, "--timeout", "60", "process", *args]
            )
            return result.exit_code, result.output

        code, out = run("probe", str(photo), "--hash")
        assert code == 0, out
        info = json.loads(out)["info"]
        assert (info["display_width"], info["exif"]["orientation"]) == (600, 6)
        assert info["content_hash"].startswith("sha256:")

        target = tmp_path / "thumb.webp"
        code, out = run(
            "thumbnail",
            str(photo),
            "--size",
            "100x100",
            "--fit",
            "cover",
            "--format",
            "webp",
            "-o",
            str(target),
        )
        assert code == 0, out
        assert _size(target) == (100, 100)

        code, out = run(
            "thumbnail", "remote.png", "--remote", "--preset", "tiny", "-o", str(tmp_path / "r.png")
        )
        assert code == 0, out
        assert _size(tmp_path / "r.png") == (64, 43)

        for args in (
            ("convert", str(photo), "--format", "png", "-o", str(tmp_path / "c.png")),
            ("optimize", str(photo), "-o", str(tmp_path / "o.jpg")),
            ("enhance", str(photo), "-o", str(tmp_path / "e.jpg")),
            ("crop", str(photo), "--aspect", "1:1", "-o", str(tmp_path / "k.jpg")),
            ("watermark", str(photo), "--text", "(c) test", "-o", str(tmp_path / "w.jpg")),
            ("video-thumbnail", str(clip), "-o", str(tmp_path / "v.jpg")),
        ):
            code, out = run(*args)
            assert code == 0, (args, out)
            assert Path(args[-1]).stat().st_size > 0
        assert _size(tmp_path / "k.jpg") == (400, 400)

        code, out = run("analyze", str(photo))
        assert code == 0, out
        assert "score" in json.loads(out)["report"]
        code, out = run("video-probe", str(clip))
        assert code == 0, out
        assert json.loads(out)["info"]["streams"][0]["codec"] == "h264"
        code, out = run("video-validate", str(clip))
        assert code == 0, out
        code, out = run("video-validate", str(broken))
        assert code == 1
        assert "decoding error" in out

        code, out = run("thumbnail", "../escape.jpg", "--remote")
        assert code == 1
        assert "PERMISSION_DENIED" in out
        assert "media root" in out
        code, out = run("convert", str(photo))
        assert code == 2
        assert "--format is required" in out
