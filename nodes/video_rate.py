"""The driving video at the official frame rate (and, for Replacement, the official size), made on demand.

The official preprocessing resamples the driving video to 30 fps before it extracts poses, faces
and masks (``preprocess.frame_rate`` has the rule); in Replacement mode it also resizes every
resampled frame to the ``resolution_area`` pixel budget (``preprocess.frame_resize``). This node
does the same to a VIDEO without decoding it: the result is a :class:`~.lazy_video.LazyVideo`
whose frames are picked out of the source (and resized) while a pack node reads it, a chunk at a
time.
"""
from __future__ import annotations

import logging
import math
from fractions import Fraction

import numpy as np
from comfy_api.latest import io

from .common import CATEGORY, PREFIX, InputError, _streams_from_a_file, source_of

NODE = "Wan-Animate Driving Video"
CHUNK = 32
CHUNK_BYTES = 256 << 20  # decoded source frames held at once, at most (but at least one frame)
MAX_FPS = 240.0
MAX_AREA = 4096 * 4096
MAX_SIDE = 8192
# Set on a video this node resized: (resize_area, divisor). Output Size reads it, so that given this video
# and the same area it returns the video's own size (re-applying the official size rule to an already
# resized frame can give a different size, e.g. 49x25 -> 1328x672 -> 1344x672).
RESIZED_ATTR = "wak_resized_to_area"
log = logging.getLogger("wan_animate_kit")


def source_facts(video, src) -> tuple[int, float, float | None]:
    """(frame count, average fps, end time in seconds of the last frame or None) as the official
    preprocessing reads them with decord (official: process_pipepline.py, ``ProcessPipeline.__call__``):
    for a file, the video packets of its first video stream are counted (demuxed, not decoded),
    the rate is the stream's average rate and the end time is that of the packet latest in
    presentation order; an in-memory VIDEO gives its frame count and rate."""
    if not _streams_from_a_file(video):
        return src.num_frames, src.fps, None
    import av

    source = video.get_stream_source()
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        with av.open(source, mode="r") as container:
            if not container.streams.video:
                raise InputError(NODE, "video", "has no video stream", "load a video file")
            stream = container.streams.video[0]
            rate = float(stream.average_rate) if stream.average_rate else 0.0
            base = stream.time_base
            step = float(base.numerator) / float(base.denominator) if base else 0.0
            start = stream.start_time or 0
            count, latest, end = 0, None, None
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream marker, not a frame
                    continue
                count += 1
                if packet.pts is not None and (latest is None or packet.pts > latest):
                    latest = packet.pts
                    end = (packet.pts + (packet.duration or 0) - start) * step
    except InputError:
        raise
    except Exception as e:  # av.error.* on damaged data, OSError
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InputError(NODE, "video", f"could not be read to the end ({first})",
                         "check the file, re-export it as an .mp4 (H.264) or load another video") from e
    return count, rate, end


def source_audio(video):
    """The VIDEO's own sound (the host's AUDIO) without decoding its frames, or None."""
    if _streams_from_a_file(video):
        from .video import decode_audio

        try:
            return decode_audio(video.get_stream_source())
        except Exception as e:  # a damaged sound track: the frames are what the pipeline needs
            log.warning("%s: the video's sound could not be read (%s); going on without it", NODE, e)
            return None
    if hasattr(video, "iter_chunks"):  # the pack's on-demand VIDEO keeps its audio as an attribute
        return getattr(video, "audio", None)
    return video.get_components().audio  # frames already in memory


def trim_audio(audio, seconds: Fraction):
    """``audio`` cut at ``seconds`` (never stretched: the sound stays in step with the frames)."""
    if audio is None:
        return None
    keep = math.ceil(Fraction(int(audio["sample_rate"])) * seconds)
    wave = audio["waveform"]
    if wave.shape[-1] <= keep:
        return audio
    return {**audio, "waveform": wave[..., :keep]}


class DrivingVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "DrivingVideo",
            display_name="Wan-Animate Driving Video (official 30 fps)",
            category=CATEGORY + "/video",
            description="The driving video at the frame rate the official Wan-Animate preprocessing uses: it "
                        "resamples every driving video to 30 fps before poses, faces and masks are taken, and "
                        "the model's output plays at 30 fps. Output frame i is source frame round(i / fps x "
                        "source fps) (half to even), clipped to the last frame, for int(frames / source fps x "
                        "fps) frames in float arithmetic: a 60 fps video keeps every other frame, a 24 fps one "
                        "shows every fourth frame twice, and a 30 fps one is kept as it is (except that, like "
                        "the official code, some lengths lose their last frame: 123 frames give 122). Nothing "
                        "is decoded here: the frames are picked while the next node reads them, a chunk at a "
                        "time. Replacement mode: set resize_area to 921600 (1280x720) to resize every frame "
                        "as the official preprocessing does before poses, masks, face crops and the "
                        "background (its width and height are then the generation size). Connect its video "
                        "output wherever the driving video goes (Pose Extraction, Face Crops, Output Size, SAM2 "
                        "Segmentation, Environment Video) and its fps and audio to the sampler.",
            inputs=[
                io.Video.Input("video", tooltip="The driving video (Load Video)."),
                io.Float.Input("fps", default=30.0, min=0.0, max=MAX_FPS, step=0.001,
                               tooltip="Frame rate to resample to. 30 = official (preprocess_data.py --fps "
                                       "default; the model's sample_fps is 30 too). 0 = source rate: every frame "
                                       "kept, the video passed through unchanged (still resized when resize_area "
                                       "is set; the official --fps -1 means the same, but its float arithmetic "
                                       "drops the last frame for some lengths, e.g. 29 frames at 25 fps). Other "
                                       "values: the official rule at that rate (the official script takes whole "
                                       "numbers only)."),
                io.Int.Input("resize_area", default=0, min=0, max=MAX_AREA, step=256, optional=True,
                             tooltip="Pixel budget width x height of the frames handed on. 0 = keep the source "
                                     "frame size, as the official Animation mode (it resizes only the reference "
                                     "image). The official Replacement mode resizes every resampled frame to "
                                     "resolution_area 1280x720 = 921600 (resize_by_area: the aspect kept, each "
                                     "side floored to a multiple of divisor, the frame letterboxed in with black "
                                     "bars, INTER_AREA when the new size has fewer pixels, else INTER_LINEAR) "
                                     "before poses, masks, face crops and the background, and generates at "
                                     "that size: set 921600 there (399360 = 832x480 for 480p)."),
                io.Int.Input("divisor", default=16, min=8, max=64, step=8, optional=True,
                             tooltip="With resize_area: the sides are floored to multiples of this (16 = "
                                     "official)."),
            ],
            outputs=[
                io.Video.Output(display_name="video",
                                tooltip="The driving video at fps, with the source's sound cut at its end. Its "
                                        "frames are decoded from the source when a node reads them."),
                io.Float.Output(display_name="fps", tooltip="Its frame rate (the sampler's fps)."),
                io.Int.Output(display_name="frames", tooltip="Its frame count."),
                io.Audio.Output(display_name="audio",
                                tooltip="The source's sound, unchanged in speed, cut at the end of the "
                                        "resampled video (the sampler's audio); nothing when it has none."),
                io.Int.Output(display_name="width",
                              tooltip="Width of its frames (with resize_area: the official generation width)."),
                io.Int.Output(display_name="height",
                              tooltip="Height of its frames (with resize_area: the official generation "
                                      "height)."),
            ],
        )

    @classmethod
    def execute(cls, video, fps=30.0, resize_area=0, divisor=16) -> io.NodeOutput:
        from ..preprocess.frame_rate import official_frame_num, official_resample
        from ..preprocess.frame_resize import AreaResize
        from .lazy_video import recipe_video
        from ..preprocess.video_file import frame_rate

        fps = float(fps)
        if not math.isfinite(fps) or fps < 0 or fps > MAX_FPS:
            raise InputError(NODE, "fps", f"is {fps:g}", f"use 30 (official), 0 for the source rate, or a rate "
                             f"up to {MAX_FPS:g}")
        resize_area = _whole(resize_area, "resize_area", 0, MAX_AREA,
                             "use 0 to keep the frame size, or 921600 (1280x720, official Replacement)")
        divisor = _whole(divisor, "divisor", 8, 64, "use 16 (official)")
        if video is None or not hasattr(video, "get_components"):
            raise InputError(NODE, "video", f"is not a VIDEO ({type(video).__name__})", "connect Load Video")
        src = source_of(video, "video", NODE)  # a file without a readable video track stops here
        width, height = src.size
        resize = None
        if resize_area:
            resize = AreaResize.plan(width, height, resize_area, divisor)
            if max(resize.width, resize.height) > MAX_SIDE:
                raise InputError(NODE, "resize_area", f"makes {resize.width}x{resize.height} frames of this "
                                 f"{width}x{height} video (a side over {MAX_SIDE})", "use a smaller area")
            if resize.identity:  # already the official size: nothing to do
                resize = None
        out_w, out_h = (resize.width, resize.height) if resize else (width, height)
        chunk = max(1, min(CHUNK, CHUNK_BYTES // (width * height * 3)))
        count, source_fps, end = source_facts(video, src)
        if count < 1:
            raise InputError(NODE, "video", "has no frames", "check the video file")
        if not source_fps > 0:
            raise InputError(NODE, "video", "has no average frame rate in its metadata",
                             "re-encode it with a constant frame rate (e.g. ffmpeg -i in.mp4 -r 30 out.mp4)")
        if fps == 0:  # source rate: every frame
            try:
                rate = Fraction(video.get_frame_rate())
            except Exception:
                rate = frame_rate(source_fps)
            frames = src.num_frames
            indices = np.arange(frames, dtype=np.int64)
            same = True
        else:
            indices = official_resample(official_frame_num(count, source_fps, end), source_fps, fps)
            frames = len(indices)
            if frames < 1:
                raise InputError(NODE, "video", f"is too short: {count} frames at {source_fps:g} fps make no "
                                 f"frame at {fps:g} fps", "use a longer video")
            rate = frame_rate(fps)
            same = (frames == src.num_frames and np.array_equal(indices, np.arange(frames))
                    and Fraction(video.get_frame_rate()) == rate)
        audio = trim_audio(source_audio(video), frames / rate)
        if same and resize is None:  # already the official clip: hand the source on (a file stays a file)
            return io.NodeOutput(video, float(rate), frames, audio, width, height)

        def chunks():
            from ..preprocess.frame_rate import pick_frames

            picked = pick_frames(src.iter_chunks(chunk), indices, chunk)
            missing = yield from (_mapped(picked, resize) if resize is not None else picked)
            if missing:
                log.warning("%s: the video decoded fewer frames than its metadata promised; the last frame "
                            "stands in for the last %d of %d", NODE, missing, frames)

        out = recipe_video(chunks, frames, out_w, out_h, float(rate), audio=audio)
        if resize is not None:
            setattr(out, RESIZED_ATTR, (resize_area, divisor))
        return io.NodeOutput(out, float(rate), frames, audio, out_w, out_h)


def _whole(value, name: str, lo: int, hi: int, fix: str) -> int:
    """An INT input as an int within [lo, hi], or an InputError naming it (the host lets floats,
    NaN and infinity through)."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and value == int(value) and lo <= value <= hi)
    if not ok:
        raise InputError(NODE, name, f"must be a whole number from {lo} to {hi}, got {value!r}", fix)
    return int(value)


def _mapped(frames, fn):
    """Each chunk of the generator ``frames`` passed through ``fn``; returns the generator's own value."""
    try:
        while True:
            try:
                part = next(frames)
            except StopIteration as stop:
                return stop.value
            yield fn(part)
    finally:
        frames.close()


NODES = [DrivingVideo]
