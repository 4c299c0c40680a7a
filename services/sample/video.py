"""Short generated H.264 clips for the sample library, written with PyAV (its wheels carry FFmpeg)."""

from __future__ import annotations

import io

import av
import numpy as np

__all__ = ["make_clip"]


def make_clip(
    seed: int,
    width: int = 640,
    height: int = 360,
    *,
    seconds: float = 4.0,
    fps: int = 24,
    black: float = 0.0,
) -> bytes:
    """An MP4 (H.264, yuv420p) of a camera panning over a scene with moving shapes (deterministic).

    ``black`` seconds of black frames open it, as a clip that fades in does: a video thumbnail
    taken of the first non-blank frame skips them.
    """
    rng = np.random.default_rng(5000 + seed)
    scene_w = width * 2
    x = np.linspace(0, 1, scene_w, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    tint = rng.uniform(-25, 25, 3).astype(np.float32)
    scene = np.stack(
        [60 + 120 * y + 30 * x + tint[0], 110 + 80 * y + 0 * x + tint[1], 200 - 90 * y + 20 * x + tint[2]],
        axis=-1,
    )
    for _ in range(24):  # buildings along the bottom half
        x0 = int(rng.integers(0, scene_w - 40))
        w, h = int(rng.integers(20, width // 5)), int(rng.integers(height // 6, height // 2))
        scene[height - h :, x0 : x0 + w] = rng.integers(30, 220, 3)
    scene_u8 = np.clip(scene, 0, 255).astype(np.uint8)
    frames = round(seconds * fps)
    blank = round(black * fps)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        # One thread and fixed options: the same arguments give the same bytes.
        stream.options = {"preset": "veryfast", "crf": "26", "g": str(fps), "threads": "1"}
        for index in range(frames):
            if index < blank:
                pixels = np.zeros((height, width, 3), dtype=np.uint8)
            else:
                offset = int((index - blank) / max(1, frames - blank) * (scene_w - width))
                pixels = scene_u8[:, offset : offset + width].copy()
                bx = int((index * 7) % (width - 60))
                by = int(height * 0.25 + 30 * np.sin(index / 6))
                pixels[by : by + 40, bx : bx + 60] = (250, 220, 40)  # a yellow car crossing
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
