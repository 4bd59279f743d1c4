"""Render Pose in the real host (in-process): the official body hold over the whole video, in both outputs."""
import numpy as np
import pytest

from test_render import held_sequence_case, official_held  # the unit tests' builders and re-statement

pytestmark = pytest.mark.host


def test_render_pose_node_draws_failed_bodies_held_in_both_outputs(host, monkeypatch):
    from dataclasses import replace

    from wan_animate_kit.nodes import pose as pose_nodes
    from wan_animate_kit.nodes.common import source_of
    from wan_animate_kit.preprocess.pose_types import PoseSequence
    from wan_animate_kit.preprocess.render import render_pose_sequence

    seq = replace(held_sequence_case(), fps=8.0)
    held = PoseSequence(official_held(seq.subject_keypoints)[:, None], (0,), seq.width, seq.height)
    for w, h in ((0, 0), (640, 360)):
        want = render_pose_sequence(held, w or None, h or None, hold_invalid=False)
        args = dict(pose=seq, width=w, height=h, letterbox=True, draw_hands=True, draw_head=True)
        image, video = pose_nodes.RenderPose.execute(**args).result
        np.testing.assert_array_equal((image.numpy() * 255).round().astype(np.uint8), want)
        # the video output drawn on demand in small chunks carries the last body across chunks
        monkeypatch.setattr(pose_nodes, "DRAW_CHUNK_BYTES", (w or seq.width) * (h or seq.height) * 3 * 2)
        lazy = pose_nodes.RenderPose.execute(**args, frames_output=False).result[1]
        parts = list(source_of(lazy, "pose_video").iter_chunks(2))
        assert max(len(p) for p in parts) == 2
        np.testing.assert_array_equal(np.concatenate(parts), want)
        monkeypatch.undo()
    # retargeted poses are drawn as they are
    moved = replace(seq, retargeted=True)
    image = pose_nodes.RenderPose.execute(pose=moved, width=0, height=0, letterbox=True, draw_hands=True,
                                          draw_head=True).result[0]
    np.testing.assert_array_equal((image.numpy() * 255).round().astype(np.uint8),
                                  render_pose_sequence(seq, hold_invalid=False))
