"""The retarget node in the real host (in-process), on synthetic skeletons."""
import pytest
import torch

from test_retarget import character, moving_driver, seq  # the unit tests' skeleton builders

pytestmark = pytest.mark.host


def run(**kw):
    from wan_animate_kit.nodes.retarget import PoseRetarget

    args = dict(mode="official", width=0, height=0, anchor_frame=-1, ratio_min=0.5, ratio_max=2.0,
                head_scale=1.0, torso_scale=1.0, arms_scale=1.0, legs_scale=1.0, keep_feet_on_ground=True)
    args.update(kw)
    return PoseRetarget.execute(**args)


def test_node_outputs_retargeted_pose_preview_and_report(host):
    driving = seq(moving_driver(5))
    reference = seq([character()], width=480, height=640)
    image = torch.rand(1, 640, 480, 3)
    out = run(driving_pose=driving, reference_pose=reference, reference_image=image)
    pose, preview, report = out.result
    assert pose.retargeted and (pose.width, pose.height) == (480, 640) and pose.num_frames == 5
    assert tuple(preview.shape) == (1, 640, 480, 3) and preview.dtype == torch.float32
    assert "anchor frame" in report
    # the preview shows the skeletons over the dimmed image: some pixels are pure skeleton colours
    assert (preview[0] > 0.99).any()


def test_node_rejects_half_connected_tpose_and_bad_ratio_range(host):
    driving = seq(moving_driver(3))
    reference = seq([character()], width=480, height=640)
    image = torch.rand(1, 640, 480, 3)
    with pytest.raises(ValueError, match="driving_tpose"):
        run(driving_pose=driving, reference_pose=reference, reference_image=image, reference_tpose=reference)
    with pytest.raises(ValueError, match="ratio_min"):
        run(driving_pose=driving, reference_pose=reference, reference_image=image, ratio_min=1.0, ratio_max=0.9)


def test_node_names_the_reference_when_it_has_no_person(host):
    from wan_animate_kit.preprocess.pose_types import empty_sequence

    driving = seq(moving_driver(3))
    with pytest.raises(ValueError, match="reference"):
        run(driving_pose=driving, reference_pose=empty_sequence(1, 480, 640), reference_image=torch.rand(1, 640, 480, 3))


def test_node_defaults_to_the_official_retargeting(host):
    import numpy as np

    from wan_animate_kit.nodes.retarget import PoseRetarget
    from wan_animate_kit.preprocess.retarget import retarget

    defaults = {i.id: getattr(i, "default", None) for i in PoseRetarget.GET_SCHEMA().inputs}
    assert defaults["mode"] == "official" and defaults["anchor_frame"] == -1
    assert all(defaults[f"{p}_scale"] == 1.0 for p in ("head", "torso", "arms", "legs"))
    driving = seq(moving_driver(4))
    reference = seq([character()], width=480, height=640)
    image = torch.rand(1, 640, 480, 3)
    for mode in ("official", "improved"):
        pose = run(driving_pose=driving, reference_pose=reference, reference_image=image, mode=mode).result[0]
        want = retarget(driving, reference, mode=mode, out_width=480, out_height=640).poses
        np.testing.assert_array_equal(pose.subject_keypoints, want.subject_keypoints)
    official = run(driving_pose=driving, reference_pose=reference, reference_image=image).result[0]
    own = run(driving_pose=driving, reference_pose=reference, reference_image=image, mode="improved").result[0]
    assert not np.allclose(official.subject_keypoints, own.subject_keypoints)


def test_node_offers_improved_and_still_takes_the_old_name_default(host):
    """'default' (the improved mode's old name) from a saved workflow or an API prompt runs the
    improved mode; the host passes combo values through unchecked, so the node checks them."""
    import numpy as np

    from wan_animate_kit.nodes.retarget import PoseRetarget

    mode = next(i for i in PoseRetarget.GET_SCHEMA().inputs if i.id == "mode")
    assert list(mode.options) == ["official", "improved"]
    assert "improved" in mode.tooltip and "'default'" in mode.tooltip
    driving = seq(moving_driver(4))
    reference = seq([character()], width=480, height=640)
    image = torch.rand(1, 640, 480, 3)
    old = run(driving_pose=driving, reference_pose=reference, reference_image=image, mode="default").result
    new = run(driving_pose=driving, reference_pose=reference, reference_image=image, mode="improved").result
    np.testing.assert_array_equal(old[0].subject_keypoints, new[0].subject_keypoints)
    assert old[2].startswith("mode improved")
    with pytest.raises(ValueError, match="input 'mode'"):
        run(driving_pose=driving, reference_pose=reference, reference_image=image, mode="fancy")


def test_preview_shows_the_anchor_frame_with_the_held_body(host):
    """A failed driving body (all at negative x) is retargeted as the previous frame's body (official
    hold); the preview's blue driving skeleton is that held body too, not the failed one."""
    import numpy as np

    from wan_animate_kit.nodes.common import to_uint8
    from wan_animate_kit.nodes.retarget import retarget_preview
    from wan_animate_kit.preprocess.keypoints import hold_invalid_bodies
    from wan_animate_kit.preprocess.render import sequence_keypoints_for_canvas

    frames = [f.copy() for f in moving_driver(4)]
    frames[2][:23, 0] -= 2000  # the body of frame 2 failed
    driving = seq(frames)
    reference = seq([character()], width=480, height=640)
    image = torch.rand(1, 640, 480, 3)
    pose, preview, _ = run(driving_pose=driving, reference_pose=reference, reference_image=image, mode="improved",
                           anchor_frame=2).result
    held = driving.with_subject_keypoints(hold_invalid_bodies(driving.subject_keypoints))
    want = retarget_preview(to_uint8(image)[0], sequence_keypoints_for_canvas(reference, 480, 640)[0, 0],
                            sequence_keypoints_for_canvas(held, 480, 640)[2, 0], pose.subject_keypoints[2], 480, 640)
    np.testing.assert_array_equal(to_uint8(preview)[0], want)


def test_node_names_the_tpose_input_that_is_bad(host):
    from wan_animate_kit.preprocess.pose_types import empty_sequence

    driving = seq(moving_driver(3))
    reference = seq([character()], width=480, height=640)
    image = torch.rand(1, 640, 480, 3)
    with pytest.raises(ValueError, match="input 'reference_tpose'"):
        run(driving_pose=driving, reference_pose=reference, reference_image=image,
            reference_tpose=empty_sequence(1, 480, 640), driving_tpose=seq(moving_driver(1)))
    with pytest.raises(ValueError, match="input 'driving_tpose'"):
        run(driving_pose=driving, reference_pose=reference, reference_image=image,
            reference_tpose=reference, driving_tpose=empty_sequence(1, 640, 480))


def test_node_names_anchor_frame_when_it_is_outside_the_video(host):
    from wan_animate_kit.nodes.common import InputError

    driving = seq(moving_driver(3))
    reference = seq([character()], width=480, height=640)
    with pytest.raises(InputError) as err:
        run(driving_pose=driving, reference_pose=reference, reference_image=torch.rand(1, 640, 480, 3), anchor_frame=7)
    assert err.value.input_name == "anchor_frame" and "outside the 3 driving frames" in str(err.value)
