"""gRPC servicer of the processing service: proto in, one Processor call, proto out."""

from __future__ import annotations

from typing import Any

from PIL import features

from mediasuite.common.v1 import status_pb2
from mediasuite.processing.v1 import processing_service_pb2 as pb
from mediasuite.processing.v1 import processing_service_pb2_grpc
from services.processing import messages as m
from services.processing.engine.decode import READ_FORMATS
from services.processing.engine.edits import CropSpec, WatermarkSpec
from services.processing.engine.encode import writable_formats
from services.processing.engine.probe import ImageInfo, ProbeOptions
from services.processing.engine.quality import QualityReport
from services.processing.engine.tasks import ENGINE_VERSION
from services.processing.engine.thumbnail import ThumbnailSpec
from services.processing.engine.transcode import OptimizeResult
from services.processing.engine.video import ValidationResult, VideoData
from services.processing.limits import LIMIT_ENV
from services.processing.media import Source
from services.processing.processor import MediaSpec, Processor
from services.runtime.errors import InvalidArgument, MediasuiteError

__all__ = ["ProcessingServiceServicer"]

_STEPS = {
    pb.ENHANCE_STEP_AUTO_CONTRAST: "auto_contrast",
    pb.ENHANCE_STEP_EQUALIZE: "equalize",
    pb.ENHANCE_STEP_SHARPEN: "sharpen",
    pb.ENHANCE_STEP_DENOISE: "denoise",
    pb.ENHANCE_STEP_AUTO_ORIENT: "auto_orient",
}
_STEP_ENUMS = {name: number for number, name in _STEPS.items()}
_ISSUES = {
    "blurry": pb.QUALITY_ISSUE_KIND_BLURRY,
    "underexposed": pb.QUALITY_ISSUE_KIND_UNDEREXPOSED,
    "overexposed": pb.QUALITY_ISSUE_KIND_OVEREXPOSED,
    "low_contrast": pb.QUALITY_ISSUE_KIND_LOW_CONTRAST,
    "noisy": pb.QUALITY_ISSUE_KIND_NOISY,
    "low_resolution": pb.QUALITY_ISSUE_KIND_LOW_RESOLUTION,
    "heavy_compression": pb.QUALITY_ISSUE_KIND_HEAVY_COMPRESSION,
}
_KINDS = {
    "video": pb.STREAM_KIND_VIDEO,
    "audio": pb.STREAM_KIND_AUDIO,
    "subtitle": pb.STREAM_KIND_SUBTITLE,
    "data": pb.STREAM_KIND_DATA,
}


def _ratio(value: float, default: float, field: str, low: float = 0.0, high: float = 1.0) -> float:
    if value == 0:
        return default
    if not low < value <= high:
        raise InvalidArgument(
            f"{field} must be above {low:g} and at most {high:g} (got {value:g})", field=field
        )
    return value


def _deadline(context: Any) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else float(remaining)


class ProcessingServiceServicer(processing_service_pb2_grpc.ProcessingServiceServicer):
    """ProcessingService over a :class:`Processor`."""

    def __init__(self, processor: Processor, presets: dict[str, int], workers: int) -> None:
        self._processor = processor
        self._presets = presets
        self._workers = workers

    @staticmethod
    def _probe_options(request: Any) -> tuple[ProbeOptions, bool]:
        """The probe's options, and whether it is cached: header probes are not (cheaper than a cache
        round trip); probes with hashes are."""
        options = ProbeOptions(perceptual_hash=request.perceptual_hash, raw_exif=request.raw_exif)
        return options, bool(request.content_hash or request.perceptual_hash)

    @staticmethod
    def _probe_info(request: Any, info: ImageInfo, digest: str, source: Source) -> pb.MediaInfo:
        return m.image_info(info, digest if request.content_hash else "", source.mtime_ns)

    async def Probe(self, request: pb.ProbeRequest, context: Any) -> pb.ProbeResponse:
        """Format, size, colour, frames, hashes and EXIF of an image."""
        options, cached = self._probe_options(request)
        info, digest, source, served = await self._processor.data_op(
            "probe", m.media_spec(request.media), options, ImageInfo, _deadline(context), use_cache=cached
        )
        return pb.ProbeResponse(
            info=self._probe_info(request, info, digest, source), operation=m.operation_info(served)
        )

    async def ProbeMany(self, request: pb.ProbeManyRequest, context: Any) -> pb.ProbeManyResponse:
        """Probe each item; each succeeds or fails on its own. One cache lookup and one store for all."""
        items: list[MediaSpec] = []
        failures: dict[int, MediasuiteError] = {}
        for index, ref in enumerate(request.media):
            try:
                items.append(m.media_spec(ref, f"media[{index}]"))
            except InvalidArgument as error:
                failures[index] = error
                items.append(MediaSpec(path="", inline=b"", field=f"media[{index}]"))
        options, cached = self._probe_options(request)
        results = await self._processor.data_many(
            "probe",
            [item for i, item in enumerate(items) if i not in failures],
            options,
            ImageInfo,
            _deadline(context),
            use_cache=cached,
        )
        response = pb.ProbeManyResponse()
        found = iter(results)
        for index in range(len(items)):
            outcome: Any = failures.get(index) or next(found)
            if isinstance(outcome, tuple):
                info, digest, source, _ = outcome
                try:
                    outcome = self._probe_info(request, info, digest, source)
                except (ValueError, TypeError) as error:  # a value proto refuses: this item fails alone
                    outcome = error
            if isinstance(outcome, pb.MediaInfo):
                response.results.add(info=outcome)
            else:
                response.results.add(error=_item_status(outcome))
        return response

    async def Thumbnail(self, request: pb.ThumbnailRequest, context: Any) -> pb.ThumbnailResponse:
        """A thumbnail at a preset or explicit size."""
        media = m.media_spec(request.media)
        which = request.WhichOneof("target")
        if which == "preset":
            if request.preset not in self._presets:
                raise InvalidArgument(
                    f"preset {request.preset!r} is not configured; known: {', '.join(self._presets)}",
                    field="preset",
                )
            box = (self._presets[request.preset], self._presets[request.preset])
        elif which == "size":
            box = m.size_of(request.size, "size")
        else:
            raise InvalidArgument("set preset (a name) or size (width/height)", field="target")
        self._processor.limits.check_output(*box, "size")
        spec = ThumbnailSpec(
            box[0],
            box[1],
            m.enum_value(m.FITS, request.fit, "fit"),
            m.enum_value(m.GRAVITIES, request.gravity, "gravity"),
            request.allow_upscale,
            m.encode_spec(request.encode),
        )
        delivered, served = await self._processor.image_op(
            "thumbnail", media, spec, m.output_mode(request.encode), _deadline(context)
        )
        return pb.ThumbnailResponse(output=m.output(delivered), operation=m.operation_info(served))

    async def Convert(self, request: pb.ConvertRequest, context: Any) -> pb.ConvertResponse:
        """The image in another format."""
        media = m.media_spec(request.media)
        if request.encode.format == pb.IMAGE_FORMAT_UNSPECIFIED:
            raise InvalidArgument("encode.format is required for Convert", field="encode.format")
        spec = m.encode_spec(request.encode)
        delivered, served = await self._processor.image_op(
            "convert", media, spec, m.output_mode(request.encode), _deadline(context)
        )
        return pb.ConvertResponse(output=m.output(delivered), operation=m.operation_info(served))

    async def Optimize(self, request: pb.OptimizeRequest, context: Any) -> pb.OptimizeResponse:
        """Smaller with no visible loss, never larger than the input."""
        media = m.media_spec(request.media)
        spec = m.encode_spec(request.encode)
        min_ssim = _ratio(request.min_ssim, 0.98, "min_ssim")

        def split(result: OptimizeResult) -> Any:
            extras = {
                "original": result.original_bytes,
                "ssim": result.ssim,
                "returned": result.returned_original,
            }
            return result.encoded, extras

        delivered, served = await self._processor.image_op(
            "optimize",
            media,
            (spec, min_ssim),
            m.output_mode(request.encode),
            _deadline(context),
            split=split,
        )
        original = int(delivered.extras["original"])
        return pb.OptimizeResponse(
            output=m.output(delivered),
            original_bytes=original,
            optimized_bytes=delivered.size_bytes,
            bytes_saved=max(0, original - delivered.size_bytes),
            returned_original=bool(delivered.extras["returned"]),
            ssim=float(delivered.extras["ssim"]),
            operation=m.operation_info(served),
        )

    async def AnalyzeQuality(
        self, request: pb.AnalyzeQualityRequest, context: Any
    ) -> pb.AnalyzeQualityResponse:
        """Measured quality, named issues and a 0-100 score."""
        media = m.media_spec(request.media)
        report, _, _, served = await self._processor.data_op(
            "analyze_quality", media, None, QualityReport, _deadline(context)
        )
        message = pb.QualityReport(
            score=report.score,
            sharpness=report.sharpness,
            mean_luminance=report.mean_luminance,
            clipped_shadows=report.clipped_shadows,
            clipped_highlights=report.clipped_highlights,
            contrast=report.contrast,
            noise=report.noise,
            megapixels=report.megapixels,
            estimated_jpeg_quality=report.estimated_jpeg_quality,
        )
        for issue in report.issues:
            message.issues.add(
                kind=_ISSUES[issue.kind],
                severity=issue.severity,
                measured=issue.measured,
                threshold=issue.threshold,
                message=issue.message,
            )
        return pb.AnalyzeQualityResponse(report=message, operation=m.operation_info(served))

    async def Enhance(self, request: pb.EnhanceRequest, context: Any) -> pb.EnhanceResponse:
        """Enhancement steps in order."""
        media = m.media_spec(request.media)
        steps = [m.enum_value(_STEPS, step, f"steps[{i}]") for i, step in enumerate(request.steps)]
        steps = steps or ["auto_orient", "auto_contrast"]
        strength = _ratio(request.strength, 0.5, "strength")
        spec = m.encode_spec(request.encode)
        delivered, served = await self._processor.image_op(
            "enhance",
            media,
            (steps, strength, spec),
            m.output_mode(request.encode),
            _deadline(context),
            split=lambda result: (result[0], {"applied": result[1]}),
        )
        applied = [_STEP_ENUMS[name] for name in delivered.extras["applied"]]
        return pb.EnhanceResponse(
            output=m.output(delivered), applied=applied, operation=m.operation_info(served)
        )

    async def Crop(self, request: pb.CropRequest, context: Any) -> pb.CropResponse:
        """A rectangle, or an aspect ratio placed by gravity or content."""
        media = m.media_spec(request.media)
        which = request.WhichOneof("region")
        if which == "rect":
            r = request.rect
            crop = CropSpec(rect=(r.x, r.y, r.width, r.height))
        elif which == "aspect":
            a = request.aspect
            crop = CropSpec(
                ratio=(a.width_ratio, a.height_ratio),
                gravity=m.enum_value(m.GRAVITIES, a.gravity, "aspect.gravity"),
            )
        else:
            raise InvalidArgument("set rect or aspect", field="region")
        spec = m.encode_spec(request.encode)
        delivered, served = await self._processor.image_op(
            "crop",
            media,
            (crop, spec),
            m.output_mode(request.encode),
            _deadline(context),
            split=lambda result: (
                result[0],
                {"region": [result[1].x, result[1].y, result[1].width, result[1].height]},
            ),
        )
        x, y, w, h = delivered.extras["region"]
        return pb.CropResponse(
            output=m.output(delivered),
            region=pb.Rect(x=x, y=y, width=w, height=h),
            operation=m.operation_info(served),
        )

    async def Watermark(self, request: pb.WatermarkRequest, context: Any) -> pb.WatermarkResponse:
        """A text or image mark, placed or tiled."""
        media = m.media_spec(request.media)
        which = request.WhichOneof("mark")
        overlay = None
        text = size_ratio = color = None
        if which == "text":
            text = request.text.text
            size_ratio = _ratio(request.text.size_ratio, 0.05, "text.size_ratio")
            color = request.text.color or "#ffffff"
        elif which == "image":
            overlay = await self._processor.hashed(m.media_spec(request.image, "image"))
        else:
            raise InvalidArgument("set text or image", field="mark")
        position = m.enum_value(m.GRAVITIES, request.position, "position")
        spec = WatermarkSpec(
            text=text or "",
            size_ratio=size_ratio or 0.05,
            color=color or "#ffffff",
            position="south_east" if request.position == pb.GRAVITY_UNSPECIFIED else position,
            margin_ratio=_ratio(request.margin_ratio, 0.02, "margin_ratio", high=0.45),
            opacity=_ratio(request.opacity, 0.5, "opacity"),
            tile=request.tile,
            overlay_ratio=_ratio(request.overlay_ratio, 0.2, "overlay_ratio"),
        )
        encode = m.encode_spec(request.encode)
        delivered, served = await self._processor.image_op(
            "watermark", media, (spec, encode, overlay), m.output_mode(request.encode), _deadline(context)
        )
        return pb.WatermarkResponse(output=m.output(delivered), operation=m.operation_info(served))

    async def ProbeVideo(self, request: pb.ProbeVideoRequest, context: Any) -> pb.ProbeVideoResponse:
        """Container, duration, bit rate and streams."""
        media = m.media_spec(request.media)
        video, digest, _, served = await self._processor.data_op(
            "probe_video", media, None, VideoData, _deadline(context)
        )
        info = pb.VideoInfo(
            container=video.container,
            duration=m.duration(video.duration_s),
            bit_rate=video.bit_rate,
            size_bytes=video.size_bytes,
            content_hash=digest if request.content_hash else "",
        )
        for s in video.streams:
            info.streams.add(
                index=s.index,
                kind=_KINDS.get(s.kind, pb.STREAM_KIND_UNSPECIFIED),
                codec=s.codec,
                width=s.width,
                height=s.height,
                fps=s.fps,
                bit_rate=s.bit_rate,
                duration=m.duration(s.duration_s),
                frame_count=s.frame_count,
                sample_rate=s.sample_rate,
                channels=s.channels,
                pixel_format=s.pixel_format,
            )
        return pb.ProbeVideoResponse(info=info, operation=m.operation_info(served))

    async def VideoThumbnail(
        self, request: pb.VideoThumbnailRequest, context: Any
    ) -> pb.VideoThumbnailResponse:
        """A thumbnail of a frame at a time, or of a representative frame."""
        media = m.media_spec(request.media)
        timestamp = None
        if request.WhichOneof("frame") == "timestamp":
            timestamp = request.timestamp.ToNanoseconds() / 1e9
            if timestamp < 0:
                raise InvalidArgument("timestamp must not be negative", field="timestamp")
        medium = self._presets.get("medium", 320)
        box = m.size_of(request.size, "size") if request.HasField("size") else (medium, medium)
        if box == (0, 0):
            box = (medium, medium)
        self._processor.limits.check_output(*box, "size")
        spec = m.encode_spec(request.encode)
        delivered, served = await self._processor.image_op(
            "video_thumbnail",
            media,
            (timestamp, box, spec),
            m.output_mode(request.encode),
            _deadline(context),
            split=lambda result: (result[0], {"at": result[1]}),
        )
        return pb.VideoThumbnailResponse(
            output=m.output(delivered),
            frame_timestamp=m.duration(float(delivered.extras["at"])),
            operation=m.operation_info(served),
        )

    async def ValidateVideo(self, request: pb.ValidateVideoRequest, context: Any) -> pb.ValidateVideoResponse:
        """Decode every frame; report the first errors with their times."""
        media = m.media_spec(request.media)
        max_errors = request.max_errors or 10
        if not 1 <= max_errors <= 1000:
            raise InvalidArgument("max_errors must be 1-1000 (0: 10)", field="max_errors")
        result, _, _, served = await self._processor.data_op(
            "validate_video", media, max_errors, ValidationResult, _deadline(context)
        )
        response = pb.ValidateVideoResponse(
            valid=result.valid,
            frames_decoded=result.frames_decoded,
            decoded_duration=m.duration(result.decoded_duration_s),
            operation=m.operation_info(served),
        )
        for problem in result.errors:
            response.errors.add(
                timestamp=m.duration(problem.timestamp_s),
                stream_index=problem.stream_index,
                message=problem.message,
            )
        return response

    async def ExtractFrames(self, request: pb.ExtractFramesRequest, context: Any) -> pb.ExtractFramesResponse:
        """The first frames of an animation or video, up to a frame limit."""
        media = m.media_spec(request.media)
        limits = self._processor.limits
        count = request.max_frames or 1
        if count < 0:
            raise InvalidArgument("max_frames must not be negative", field="max_frames")
        if count > limits.max_extract_frames:
            raise limits.exceeded("max_extract_frames", count, "max_frames asked for")
        box = m.size_of(request.size, "size") if request.HasField("size") else None
        if box is not None:
            limits.check_output(*box, "size")
        result, delivered, served = await self._processor.frames_op(
            media,
            (count, box, m.encode_spec(request.encode)),
            m.output_mode(request.encode),
            _deadline(context),
        )
        response = pb.ExtractFramesResponse(
            total_frames=result.total_frames, operation=m.operation_info(served)
        )
        for frame, output in zip(result.frames, delivered, strict=True):
            response.frames.add(
                index=frame.index,
                timestamp=m.duration(frame.timestamp_s),
                duration=m.duration(frame.duration_s),
                output=m.output(output),
            )
        return response

    async def GetCapabilities(
        self, request: pb.GetCapabilitiesRequest, context: Any
    ) -> pb.GetCapabilitiesResponse:
        """Formats, presets, limits, engines and workers of this installation."""
        readable = [
            f for f in READ_FORMATS if f in m.FORMAT_ENUMS and (f != "AVIF" or features.check("avif"))
        ]
        limits = self._processor.limits
        response = pb.GetCapabilitiesResponse(
            readable_formats=[m.FORMAT_ENUMS[f] for f in readable],
            writable_formats=[m.FORMAT_ENUMS[f] for f in writable_formats()],
            engines=[part.strip() for part in ENGINE_VERSION.split(";")],
            video_supported=True,
            workers=self._workers,
        )
        for name, edge in self._presets.items():
            response.presets.add(name=name, long_edge=edge)
        for name, env in LIMIT_ENV.items():
            if hasattr(limits, name):
                response.limits.add(name=name, value=int(getattr(limits, name)), env=env)
        return response


def _item_status(error: Any) -> status_pb2.ItemStatus:
    if isinstance(error, MediasuiteError):
        field = error.violations[0].field if error.violations else ""
        return status_pb2.ItemStatus(
            code=error.code.value, code_name=error.code.name, message=error.message, field=field
        )
    return status_pb2.ItemStatus(
        code=13, code_name="INTERNAL", message=f"internal error: {type(error).__name__}"
    )
