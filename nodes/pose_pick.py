"""Pick Person: change which tracked person a POSE's subject is (e.g. person B for a second
Replacement pass), with the same choice rule as Pose Extraction, or by position against another
tracking of the same clip."""
from __future__ import annotations

from dataclasses import replace

from comfy_api.latest import io, ui

from .common import CATEGORY, PREFIX, InputError, Pose

NODE = "Wan-Animate Pose: Pick Person"
MISSING = ("hold", "interpolate", "raise")


class PosePickPerson(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "PosePickPerson",
            display_name=NODE,
            category=CATEGORY + "/pose",
            description="Make another tracked person the subject of a POSE, so the skeleton, face crops, SAM2 mask "
                        "and head growth follow that person. Used to replace two people in one clip: pass A "
                        "replaces person A; pass B picks person B from the SAME tracking (Pose Extraction on the "
                        "original video) and replaces them on pass A's output. Replacement keeps everyone where "
                        "they were, so the ids stay attached to the same people without re-tracking. If you do "
                        "re-track pass A's output (person A now looks different), connect the original pose to "
                        "match_to: the person is then matched by position (keypoint-box IoU over the frames, "
                        "then keypoint distance), never by appearance.",
            inputs=[
                Pose.Input("pose", tooltip="Tracked poses of every person (Pose Extraction, not a retargeted pose, "
                                           "which holds only its subject)."),
                io.String.Input("person", default="largest",
                                tooltip="Who becomes the subject, as in Pose Extraction: 'largest', an index "
                                        "'0', '1' ... in order of first appearance, or a point 'x,y' in pixels "
                                        "(or '0.5,0.4' as fractions): the person at or nearest that point on "
                                        "the first frame where anyone is seen. Ignored when match_to is "
                                        "connected."),
                io.Combo.Input("missing_frames", options=list(MISSING), default="hold",
                               tooltip="Frames where the new subject was not detected: hold the last pose, "
                                       "interpolate between neighbours, or stop with an error listing them (as "
                                       "Pose Extraction does for its subject)."),
                Pose.Input("match_to", optional=True,
                           tooltip="Optional: a pose of the same clip tracked separately (e.g. on the original "
                                   "video, with its subject set to the person wanted). The subject becomes the "
                                   "person of 'pose' nearest to match_to's subject by position: highest mean IoU "
                                   "of their keypoint boxes over the frames both were detected, then smallest "
                                   "mean keypoint distance. Appearance is not used."),
            ],
            outputs=[
                Pose.Output(display_name="pose", tooltip="The same poses with the chosen person as the subject."),
                io.String.Output(display_name="report"),
            ],
        )

    @classmethod
    def execute(cls, pose, person, missing_frames, match_to=None):
        from ..preprocess.person_match import match_person
        from ..preprocess.smoothing import fill_missing_frames
        from ..preprocess.tracking import select_subject

        if missing_frames not in MISSING:
            raise InputError(NODE, "missing_frames", f"is {missing_frames!r}", f"pick one of {', '.join(MISSING)}")
        if pose.num_people == 0:
            raise InputError(NODE, "pose", "has no tracked person", "check Pose Extraction's report")
        if match_to is not None:
            try:
                found = match_person(pose, match_to)
            except ValueError as e:
                raise InputError(NODE, "match_to", str(e), "connect a pose of the same clip") from e
            seq = replace(pose, subject=found.index)
            how = (f"matched by position to match_to's person {match_to.track_ids[match_to.subject]} "
                   f"(mean IoU {found.iou:.2f} over {found.shared_frames} frame(s))")
        else:
            if pose.retargeted and pose.num_people == 1 and str(person).strip() not in ("0", "largest", ""):
                raise InputError(NODE, "pose", "is a retargeted pose, which holds only its subject",
                                 "pick the person on Pose Extraction's output, before Pose Retarget")
            try:
                seq = select_subject(pose, person)
            except ValueError as e:
                raise InputError(NODE, "person", str(e)) from e
            how = f"picked with person {person!r}"
        try:
            filled, missing = fill_missing_frames(seq.subject_keypoints, seq.subject_detected, missing_frames)
        except ValueError as e:
            raise InputError(NODE, "missing_frames", str(e)) from e
        seq = seq.with_subject_keypoints(filled)
        report = (f"subject: person {seq.track_ids[seq.subject]} of {seq.num_people} ({how}); "
                  f"{len(missing)} frame(s) without them" + (f": {missing[:20]}" if missing else ""))
        return io.NodeOutput(seq, report, ui=ui.PreviewText(report))


NODES = [PosePickPerson]
