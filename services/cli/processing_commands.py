"""``mediactl process ...``: every processing operation on a local file (sent inline), or on a path
under the service's media root (``--remote``), writing the result to a file."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc
from google.protobuf import duration_pb2, json_format
from google.protobuf.message import Message

from mediasuite.common.v1 import media_pb2
from mediasuite.processing.v1 import processing_service_pb2 as pb
from mediasuite.processing.v1 import processing_service_pb2_grpc
from services.cli.help import Choice, SuiteGroup

__all__ = ["process"]

F = TypeVar("F", bound=Callable[..., Any])
Q = TypeVar("Q", bound=Message)
R = TypeVar("R", bound=Message)
_Stub = processing_service_pb2_grpc.ProcessingServiceStub
_MAX_MESSAGE = 64 * 1024**2
_FORMATS = {
    name.removeprefix("IMAGE_FORMAT_").lower(): value for name, value in pb.ImageFormat.items() if value
}
_FITS = {"contain": pb.FIT_MODE_CONTAIN, "cover": pb.FIT_MODE_COVER, "fill": pb.FIT_MODE_FILL}
_GRAVITIES = {name.removeprefix("GRAVITY_").lower(): value for name, value in pb.Gravity.items() if value}
_STEPS = {
    name.removeprefix("ENHANCE_STEP_").lower().replace("_", "-"): v for name, v in pb.EnhanceStep.items() if v
}
_METADATA = {"strip": 1, "keep-copyright": 2, "keep-all": 3}
_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/tiff": "tiff",
    "image/avif": "avif",
    "image/gif": "gif",
}


@contextmanager
def _stub(ctx: click.Context) -> Iterator[_Stub]:
    address = ctx.obj.addresses["processing"]
    options = [
        ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ("grpc.max_send_message_length", _MAX_MESSAGE),
    ]
    with ctx.obj.channel(address, options) as channel:
        try:
            yield _Stub(channel)
        except grpc.RpcError as error:
            code = error.code()
            hint = {
                grpc.StatusCode.UNAVAILABLE: f"is the processing service running at {address}? "
                "(`make run`, or --processing-addr)",
                grpc.StatusCode.PERMISSION_DENIED: "give a path relative to the service's media root",
                grpc.StatusCode.RESOURCE_EXHAUSTED: "the limit and its variable are named above",
                grpc.StatusCode.DEADLINE_EXCEEDED: "raise --timeout or PROCESSING_OPERATION_TIMEOUT",
            }.get(code, "")
            raise click.ClickException(
                f"{code.name}: {error.details()}" + (f"\n  hint: {hint}" if hint else "")
            ) from None


def _call(ctx: click.Context, rpc: Callable[[_Stub], grpc.UnaryUnaryMultiCallable[Q, R]], request: Q) -> R:
    """One call of ``rpc`` (picked from the stub) with the command line's timeout; failures as
    click errors with a hint."""
    with _stub(ctx) as stub:
        return rpc(stub)(request, timeout=ctx.obj.timeout)


def _media(source: str, remote: bool) -> media_pb2.MediaRef:
    if remote:
        return media_pb2.MediaRef(path=source)
    path = Path(source)
    if not path.is_file():
        raise click.BadParameter(
            f"{source} is not a file here (use --remote for a path under the media root)"
        )
    return media_pb2.MediaRef(inline=path.read_bytes())


def _encode(fmt: str | None, quality: int, progressive: bool, metadata: str) -> pb.EncodeOptions:
    return pb.EncodeOptions(
        format=_FORMATS[fmt] if fmt else 0,  # type: ignore[arg-type]
        quality=quality,
        progressive=progressive,
        metadata=_METADATA[metadata],  # type: ignore[arg-type]
        output_mode=media_pb2.OUTPUT_MODE_INLINE,
    )


def _write(output: media_pb2.Output, source: str, operation: str, target: Path | None) -> Path:
    extension = _EXTENSIONS.get(output.media_type, "bin")
    path = target or Path(f"{Path(source).stem}.{operation}.{extension}")
    path.write_bytes(output.inline)
    return path


def _show(message: Message) -> None:
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    for key in ("output", "frames"):
        data.pop(key, None)
    click.echo(json.dumps(data, indent=2))


def _source(func: F) -> F:
    """The SOURCE argument and --remote, which every command takes."""
    remote = click.option("--remote", is_flag=True, help="SOURCE is a path under the service's media root.")
    return click.argument("source")(remote(func))


@dataclass(frozen=True)
class _ImageJob:
    """What every image operation shares: its source, how the result is encoded, where it goes."""

    source: str
    remote: bool
    output: Path | None
    fmt: str | None
    encode: pb.EncodeOptions

    def media(self) -> media_pb2.MediaRef:
        """The source to send (a local one is read here)."""
        return _media(self.source, self.remote)

    def write(self, output: media_pb2.Output, operation: str) -> Path:
        """Write ``output`` to --output, else to ``<source stem>.<operation>.<ext>`` here."""
        return _write(output, self.source, operation, self.output)

    def report(self, reply: Any, operation: str) -> None:
        """Write the reply's image and say what was written."""
        written = self.write(reply.output, operation)
        info = reply.output
        cached = " (cached)" if reply.operation.cached else ""
        click.echo(
            f"wrote {written}: {info.width}x{info.height} {info.media_type}, {info.size_bytes} bytes{cached}"
        )


def _image_options(func: Callable[..., None]) -> Callable[..., None]:
    """Options every image operation shares; the command receives them as one ``job``."""

    @functools.wraps(func)
    def command(
        *args: Any,
        source: str,
        remote: bool,
        output: Path | None,
        fmt: str | None,
        quality: int,
        progressive: bool,
        metadata: str,
        **options: Any,
    ) -> None:
        encode = _encode(fmt, quality, progressive, metadata)
        func(*args, job=_ImageJob(source, remote, output, fmt, encode), **options)

    for decorator in reversed(
        [
            _source,
            click.option(
                "-o",
                "--output",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Where to write the result.",
            ),
            click.option("--format", "fmt", type=Choice(sorted(_FORMATS)), help="Output format."),
            click.option(
                "--quality", type=click.IntRange(0, 100), default=0, help="1-100; 0: the format's default."
            ),
            click.option("--progressive", is_flag=True, help="Progressive JPEG."),
            click.option("--metadata", type=Choice(sorted(_METADATA)), default="strip", show_default=True),
        ]
    ):
        command = decorator(command)
    return command


@click.group(cls=SuiteGroup)
def process() -> None:
    """Run processing operations on one media item.

    \b
    Examples:
      mediactl process probe photo.jpg --hash
      mediactl process thumbnail photo.jpg --preset small -o thumb.jpg
      mediactl process thumbnail 2024/img.jpg --remote --size 300x200 --fit cover --gravity attention
    """


@process.command()
@_source
@click.option("--hash", "content_hash", is_flag=True, help="Compute the sha256 content hash.")
@click.option("--phash", is_flag=True, help="Compute the perceptual hash.")
@click.option("--raw-exif", is_flag=True, help="Every EXIF tag.")
@click.pass_context
def probe(
    ctx: click.Context, *, source: str, remote: bool, content_hash: bool, phash: bool, raw_exif: bool
) -> None:
    """Format, size, colour, frames, hashes and EXIF, as JSON.

    Example: mediactl process probe photo.jpg --hash --phash
    """
    request = pb.ProbeRequest(
        media=_media(source, remote), content_hash=content_hash, perceptual_hash=phash, raw_exif=raw_exif
    )
    _show(_call(ctx, lambda stub: stub.Probe, request))


def _size(text: str | None) -> pb.Size | None:
    if not text:
        return None
    width, _, height = text.lower().partition("x")
    if not (width or "0").isdigit() or not (height or "0").isdigit():
        raise click.BadParameter(f"{text!r}: write WIDTHxHEIGHT, e.g. 320x200, 320x or x200")
    return pb.Size(width=int(width or 0), height=int(height or 0))


@process.command()
@_image_options
@click.option("--preset", default=None, help="A configured preset (tiny, small, medium, large, gallery).")
@click.option("--size", default=None, help="An explicit box WIDTHxHEIGHT (320x200, 320x, x200).")
@click.option("--fit", type=Choice(sorted(_FITS)), default="contain", show_default=True)
@click.option("--gravity", type=Choice(sorted(_GRAVITIES)), default="center", show_default=True)
@click.option("--upscale", is_flag=True, help="Enlarge sources smaller than the box.")
@click.pass_context
def thumbnail(
    ctx: click.Context,
    *,
    job: _ImageJob,
    preset: str | None,
    size: str | None,
    fit: str,
    gravity: str,
    upscale: bool,
) -> None:
    """A thumbnail at a preset or explicit size.

    Example: mediactl process thumbnail photo.jpg --size 256x256 --fit cover --gravity entropy -o t.webp
    """
    box = _size(size)
    request = pb.ThumbnailRequest(
        media=job.media(),
        fit=_FITS[fit],
        gravity=_GRAVITIES[gravity],
        allow_upscale=upscale,
        encode=job.encode,
    )
    if box is not None:
        request.size.CopyFrom(box)
    else:
        request.preset = preset or "medium"
    job.report(_call(ctx, lambda stub: stub.Thumbnail, request), "thumbnail")


@process.command()
@_image_options
@click.pass_context
def convert(ctx: click.Context, *, job: _ImageJob) -> None:
    """The image in another format (--format is required).

    Example: mediactl process convert scan.tiff --format webp -o scan.webp
    """
    if not job.fmt:
        raise click.UsageError("--format is required for convert")
    request = pb.ConvertRequest(media=job.media(), encode=job.encode)
    job.report(_call(ctx, lambda stub: stub.Convert, request), "convert")


@process.command()
@_image_options
@click.option(
    "--min-ssim", type=click.FloatRange(0, 1), default=0.0, help="Smallest similarity kept (default 0.98)."
)
@click.pass_context
def optimize(ctx: click.Context, *, job: _ImageJob, min_ssim: float) -> None:
    """Smaller with no visible loss; never larger than the input.

    Example: mediactl process optimize photo.jpg -o photo.small.jpg
    """
    request = pb.OptimizeRequest(media=job.media(), encode=job.encode, min_ssim=min_ssim)
    reply = _call(ctx, lambda stub: stub.Optimize, request)
    written = job.write(reply.output, "optimized")
    verdict = (
        "kept the original (nothing smaller)"
        if reply.returned_original
        else f"saved {reply.bytes_saved} bytes"
    )
    click.echo(
        f"wrote {written}: {reply.original_bytes} -> {reply.optimized_bytes} bytes, "
        f"{verdict}, SSIM {reply.ssim:.4f}"
    )


@process.command()
@_source
@click.pass_context
def analyze(ctx: click.Context, *, source: str, remote: bool) -> None:
    """Quality scores, named issues and a 0-100 score, as JSON.

    Example: mediactl process analyze photo.jpg
    """
    request = pb.AnalyzeQualityRequest(media=_media(source, remote))
    _show(_call(ctx, lambda stub: stub.AnalyzeQuality, request))


@process.command()
@_image_options
@click.option(
    "--step", "steps", multiple=True, type=Choice(sorted(_STEPS)), help="A step, in order (repeat)."
)
@click.option(
    "--strength", type=click.FloatRange(0, 1), default=0.0, help="Sharpen/denoise strength (default 0.5)."
)
@click.pass_context
def enhance(ctx: click.Context, *, job: _ImageJob, steps: tuple[str, ...], strength: float) -> None:
    """Enhancement steps (default: auto-orient, auto-contrast).

    Example: mediactl process enhance dark.jpg --step auto-contrast --step sharpen -o better.jpg
    """
    request = pb.EnhanceRequest(
        media=job.media(), steps=[_STEPS[s] for s in steps], strength=strength, encode=job.encode
    )
    job.report(_call(ctx, lambda stub: stub.Enhance, request), "enhanced")


@process.command()
@_image_options
@click.option("--rect", default=None, help="X,Y,WIDTH,HEIGHT in upright pixels.")
@click.option("--aspect", default=None, help="A ratio W:H, placed by --gravity.")
@click.option("--gravity", type=Choice(sorted(_GRAVITIES)), default="center", show_default=True)
@click.pass_context
def crop(ctx: click.Context, *, job: _ImageJob, rect: str | None, aspect: str | None, gravity: str) -> None:
    """Crop to a rectangle or an aspect ratio.

    Example: mediactl process crop photo.jpg --aspect 16:9 --gravity attention -o wide.jpg
    """
    request = pb.CropRequest(media=job.media(), encode=job.encode)
    try:
        if rect:
            x, y, w, h = (int(v) for v in rect.split(","))
            request.rect.CopyFrom(pb.Rect(x=x, y=y, width=w, height=h))
        elif aspect:
            rw, rh = (int(v) for v in aspect.split(":"))
            request.aspect.CopyFrom(
                pb.AspectCrop(width_ratio=rw, height_ratio=rh, gravity=_GRAVITIES[gravity])
            )
        else:
            raise click.UsageError("give --rect X,Y,W,H or --aspect W:H")
    except ValueError:
        raise click.BadParameter("--rect needs four whole numbers X,Y,W,H; --aspect two, W:H") from None
    job.report(_call(ctx, lambda stub: stub.Crop, request), "cropped")


@process.command()
@_image_options
@click.option("--text", default=None, help="Text of the mark.")
@click.option("--image", "overlay", default=None, help="A local image (or --remote path) laid over instead.")
@click.option("--position", type=Choice(sorted(_GRAVITIES)), default="south_east", show_default=True)
@click.option("--opacity", type=click.FloatRange(0, 1), default=0.0, help="0-1 (default 0.5).")
@click.option("--tile", is_flag=True, help="Repeat the mark over the whole image.")
@click.option("--color", default="", help="Text colour #rrggbb (default white).")
@click.pass_context
def watermark(
    ctx: click.Context,
    *,
    job: _ImageJob,
    text: str | None,
    overlay: str | None,
    position: str,
    opacity: float,
    tile: bool,
    color: str,
) -> None:
    """A text or image watermark.

    Example: mediactl process watermark photo.jpg --text "(c) 2025 Ada" --opacity 0.6 -o marked.jpg
    """
    request = pb.WatermarkRequest(
        media=job.media(),
        position=_GRAVITIES[position],
        opacity=opacity,
        tile=tile,
        encode=job.encode,
    )
    if text:
        request.text.CopyFrom(pb.TextMark(text=text, color=color))
    elif overlay:
        request.image.CopyFrom(_media(overlay, job.remote))
    else:
        raise click.UsageError("give --text or --image")
    job.report(_call(ctx, lambda stub: stub.Watermark, request), "marked")


@process.command("video-probe")
@_source
@click.option("--hash", "content_hash", is_flag=True, help="Compute the sha256 content hash.")
@click.pass_context
def video_probe(ctx: click.Context, *, source: str, remote: bool, content_hash: bool) -> None:
    """Container, duration, bit rate and streams of a video, as JSON.

    Example: mediactl process video-probe clip.mp4
    """
    request = pb.ProbeVideoRequest(media=_media(source, remote), content_hash=content_hash)
    _show(_call(ctx, lambda stub: stub.ProbeVideo, request))


@process.command("video-thumbnail")
@_image_options
@click.option(
    "--at",
    "at_seconds",
    type=float,
    default=None,
    help="Seconds from the start (default: a representative frame).",
)
@click.option("--size", default=None, help="Box WIDTHxHEIGHT (default: the medium preset).")
@click.pass_context
def video_thumbnail(
    ctx: click.Context, *, job: _ImageJob, at_seconds: float | None, size: str | None
) -> None:
    """A thumbnail of a video frame.

    Example: mediactl process video-thumbnail clip.mp4 --at 12.5 -o poster.jpg
    """
    request = pb.VideoThumbnailRequest(media=job.media(), encode=job.encode)
    box = _size(size)
    if box is not None:
        request.size.CopyFrom(box)
    if at_seconds is not None:
        request.timestamp.CopyFrom(
            duration_pb2.Duration(seconds=int(at_seconds), nanos=int(at_seconds % 1 * 1e9))
        )
    else:
        request.representative = True
    reply = _call(ctx, lambda stub: stub.VideoThumbnail, request)
    job.report(reply, "poster")
    click.echo(f"frame at {reply.frame_timestamp.ToNanoseconds() / 1e9:.3f}s")


@process.command("video-validate")
@_source
@click.option("--max-errors", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.pass_context
def video_validate(ctx: click.Context, *, source: str, remote: bool, max_errors: int) -> None:
    """Decode every frame; exit 1 when the video has errors.

    Example: mediactl process video-validate clip.mp4 --max-errors 5
    """
    request = pb.ValidateVideoRequest(media=_media(source, remote), max_errors=max_errors)
    reply = _call(ctx, lambda stub: stub.ValidateVideo, request)
    _show(reply)
    if not reply.valid:
        raise click.ClickException(
            f"{len(reply.errors)} decoding error(s), "
            f"first at {reply.errors[0].timestamp.ToNanoseconds() / 1e9:.3f}s"
        )
