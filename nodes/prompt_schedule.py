"""A prompt per segment: a schedule of prompts with the frame each one starts at, read by the
Wan-Animate Sampler's optional ``prompt_schedule`` input (the pack's option; the official code
has one prompt for the whole video)."""
from __future__ import annotations

import re

from comfy_api.latest import io

from .common import CATEGORY, PREFIX, InputError

PromptSchedule = io.Custom("WAK_PROMPT_SCHEDULE")

NODE = "Wan-Animate Prompt Schedule"
TEXT_NODE = "Wan-Animate Prompt Schedule (text)"
SCHEDULE_TOOLTIP = ("A prompt schedule: each prompt is in force from its start frame until the next one's; the "
                    "sampler gives every segment the prompt in force at its first new output frame.")


def add_entry(schedule, start_frame: int, conditioning) -> tuple:
    """The schedule (a tuple of (start_frame, CONDITIONING) sorted by frame) with one more entry; a
    prompt at an existing start frame replaces it."""
    entries = {int(s): c for s, c in (schedule or ())}
    entries[int(start_frame)] = conditioning
    return tuple(sorted(entries.items(), key=lambda e: e[0]))


def check_schedule(node: str, name: str, schedule) -> tuple:
    """A schedule value as the sampler reads it; InputError naming ``name`` when it is not one."""
    if schedule is None:
        return ()
    ok = isinstance(schedule, tuple) and all(
        isinstance(e, tuple) and len(e) == 2 and isinstance(e[0], int) and e[0] >= 0 and isinstance(e[1], list)
        and len(e[1]) > 0 for e in schedule)
    if not ok:
        raise InputError(node, name, "is not a prompt schedule", f"connect the output of {NODE}")
    return schedule


class PromptScheduleNode(io.ComfyNode):
    """Adds one prompt (a CONDITIONING) at a start frame to a schedule; chain several."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "PromptSchedule",
            display_name=NODE,
            category=CATEGORY + "/sampling",
            description=("A prompt per segment for the Wan-Animate Sampler (the pack's option; officially one "
                         "prompt drives the whole video). Chain one node per prompt: each adds its "
                         "conditioning, in force from start_frame until the next prompt's start frame. Connect "
                         "the last one to the sampler's prompt_schedule. Before the first start frame the "
                         "sampler's positive prompt is used."),
            inputs=[
                io.Conditioning.Input("conditioning", tooltip="The encoded prompt (umT5, e.g. CLIP Text Encode or "
                                      "Load Prompt Embedding) used from start_frame on."),
                io.Int.Input("start_frame", default=0, min=0, max=10_000_000,
                             tooltip="First output frame (0-based) of this prompt. A segment takes the prompt in "
                             "force at its first new frame, so a prompt change lands on the next segment boundary "
                             "at or after it. With the sampler's continue_from, frames count from the start of "
                             "the whole video."),
                PromptSchedule.Input("previous", optional=True, tooltip="Optional: the schedule so far (another "
                                     "Prompt Schedule node); a prompt at the same start frame replaces it."),
            ],
            outputs=[PromptSchedule.Output("schedule", display_name="schedule", tooltip=SCHEDULE_TOOLTIP)],
        )

    @classmethod
    def execute(cls, conditioning, start_frame, previous=None) -> io.NodeOutput:
        if not isinstance(conditioning, list) or not conditioning:
            raise InputError(NODE, "conditioning", "is empty", "connect an encoded prompt")
        if not isinstance(start_frame, int) or start_frame < 0:
            raise InputError(NODE, "start_frame", f"must be a whole number >= 0, got {start_frame!r}")
        return io.NodeOutput(add_entry(check_schedule(NODE, "previous", previous), start_frame, conditioning))


LINE = re.compile(r"^\s*(\d+)\s*[:|]\s*(.*?)\s*$")


def parse_schedule_text(text: str) -> list[tuple[int, str]]:
    """``"0: a prompt"`` lines -> [(0, "a prompt"), ...]; blank lines and ``#`` comments skipped.
    ValueError naming the line on anything else, on repeated frames and on empty prompts."""
    out: list[tuple[int, str]] = []
    seen = set()
    for number, line in enumerate(str(text).splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = LINE.match(line)
        if m is None:
            raise ValueError(f"line {number} ({line.strip()[:40]!r}) is not 'start_frame: prompt'")
        frame, prompt = int(m.group(1)), m.group(2)
        if not prompt:
            raise ValueError(f"line {number}: the prompt for frame {frame} is empty")
        if frame in seen:
            raise ValueError(f"line {number}: frame {frame} has two prompts")
        seen.add(frame)
        out.append((frame, prompt))
    if not out:
        raise ValueError("no 'start_frame: prompt' line")
    return sorted(out)


class PromptScheduleText(io.ComfyNode):
    """Encodes several prompts, one per line with its start frame, into a schedule."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "PromptScheduleText",
            display_name=TEXT_NODE,
            category=CATEGORY + "/sampling",
            description=("A prompt per segment for the Wan-Animate Sampler (the pack's option; officially one "
                         "prompt drives the whole video): one line per prompt, 'start_frame: prompt', encoded "
                         "with the CLIP model like CLIP Text Encode."),
            inputs=[
                io.Clip.Input("clip", tooltip="The umT5 text encoder (umt5_xxl), as for CLIP Text Encode."),
                io.String.Input("prompts", multiline=True, default="0: 视频中的人在做动作",
                                tooltip="One line per prompt: 'start_frame: prompt' (e.g. '0: the person dances' "
                                "and '150: the person waves'); lines starting with # are ignored. Each prompt is "
                                "in force from its frame until the next one's; a segment takes the prompt in force "
                                "at its first new frame. The default is the official prompt ('the person in the "
                                "video is doing actions')."),
                PromptSchedule.Input("previous", optional=True, tooltip="Optional: a schedule to add these "
                                     "prompts to (a prompt at the same start frame replaces it)."),
            ],
            outputs=[PromptSchedule.Output("schedule", display_name="schedule", tooltip=SCHEDULE_TOOLTIP)],
        )

    @classmethod
    def execute(cls, clip, prompts, previous=None) -> io.NodeOutput:
        if clip is None or not hasattr(clip, "tokenize"):
            raise InputError(TEXT_NODE, "clip", "is not a CLIP text encoder", "connect Load CLIP (umt5_xxl)")
        try:
            lines = parse_schedule_text(prompts)
        except ValueError as e:
            raise InputError(TEXT_NODE, "prompts", str(e), "write one 'start_frame: prompt' per line") from None
        out = check_schedule(TEXT_NODE, "previous", previous)
        for frame, text in lines:
            out = add_entry(out, frame, clip.encode_from_tokens_scheduled(clip.tokenize(text)))
        return io.NodeOutput(out)


NODES = [PromptScheduleNode, PromptScheduleText]
