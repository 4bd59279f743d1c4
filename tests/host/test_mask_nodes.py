"""Mask shaping and environment-video nodes in the real host (in-process)."""
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.host


def shape(mask, **kw):
    from wan_animate_kit.nodes.mask import MaskShape

    args = dict(kernel=7, iterations=3, block=True, block_rows=1, block_cols=1, head_growth=0.0, feather=4.0,
                fill_empty=True)
    args.update(kw)
    hard, soft, report, masks = MaskShape.execute(mask=mask, **args).result
    # the compact output holds the hard masks, and compact masks in give the same outputs as a MASK
    assert torch.equal(torch.from_numpy(masks.read(0, masks.num_frames)).float() / 255, hard)
    if not hasattr(mask, "iter_chunks"):
        again = MaskShape.execute(mask=packed(mask), **args).result
        assert torch.equal(again[0], hard) and torch.equal(again[1], soft) and again[2] == report
    return hard, soft, report


def packed(mask):
    from wan_animate_kit.preprocess.frames import PackedMasks

    out = PackedMasks(mask.shape[-1], mask.shape[-2])
    out.append(mask if mask.ndim == 3 else mask[None])
    return out


def test_official_shaping_gives_the_dilated_bounding_box_and_fills_empty_frames(host):
    m = torch.zeros(3, 64, 80)
    m[0, 20:30, 30:40] = 1
    m[0, 40, 50] = 1  # a second blob widens the box
    m[2, 10:12, 10:12] = 1  # frame 1 is empty
    hard, soft, report = shape(m)
    assert hard.shape == (3, 64, 80) and soft.shape == (3, 64, 80)
    on = np.argwhere(hard[0].numpy() > 0.5)
    # 3 iterations of a 7x7 dilation grow by 9 px on each side; the official 1x1 block is the bounding
    # rectangle less its last row and column, which keep the dilated pixels
    assert on[:, 0].min() == 20 - 9 and on[:, 0].max() == 40 + 9
    assert on[:, 1].min() == 30 - 9 and on[:, 1].max() == 50 + 9
    assert hard[0, 11:49, 21:59].min() == 1 and hard[0, 49, 41:60].min() == 1 and hard[0, 49, :41].max() == 0
    assert torch.equal(hard[1], hard[0]) or torch.equal(hard[1], hard[2])
    even = shape(m, block_grid="even")[0]
    assert even[0].sum() == (49 - 11 + 1) * (59 - 21 + 1)  # the pack's variant: the full rectangle
    assert torch.equal(shape(m, block_grid="official")[0], hard)
    assert "1 empty frame" in report
    assert 0 < soft[0].min() + 1 and ((soft[0] > 0) & (soft[0] < 1)).any()  # feathered edge exists


def test_feather_zero_hands_out_the_hard_mask_once(host):
    m = torch.zeros(2, 32, 32)
    m[:, 8:20, 10:16] = 1
    hard, soft, _ = shape(m, feather=0.0)
    assert soft is hard  # one tensor for both outputs: no second full-length copy
    assert set(torch.unique(hard).tolist()) == {0.0, 1.0}


def test_official_shaping_equals_the_official_chain(host):
    """Default node settings = official dilation (7x7, 3 iterations) + get_aug_mask (w_len = h_len = 1)."""
    import cv2

    rng = np.random.default_rng(4)
    m = torch.from_numpy((rng.random((4, 70, 90)) < 0.004).astype(np.float32))
    m[1, 0, 0] = m[1, 69, 89] = 1  # box touching every border
    m[2] = 0
    m[2, 30, 40] = 1  # one pixel
    from wan_animate_kit.nodes.mask import MaskShape

    defaults = {i.id: getattr(i, "default", None) for i in MaskShape.GET_SCHEMA().inputs}
    assert (defaults["kernel"], defaults["iterations"], defaults["block"], defaults["block_rows"],
            defaults["block_cols"], defaults["block_grid"], defaults["head_growth"]) == (7, 3, True, 1, 1, "official", 0)
    hard = shape(m, feather=0.0)[0].numpy()
    for t in range(4):
        d = cv2.dilate(m[t].numpy().astype(np.uint8), np.ones((7, 7), np.uint8), iterations=3)
        ys, xs = np.nonzero(d)
        want = d.copy()
        # one cell from the first on pixel up to (not including) the last on row / column
        if d[ys.min():ys.max(), xs.min():xs.max()].any():
            want[ys.min():ys.max(), xs.min():xs.max()] = 1
        assert np.array_equal(hard[t], want.astype(np.float32)), t


def test_head_growth_needs_a_pose(host):
    with pytest.raises(ValueError, match="pose"):
        shape(torch.ones(1, 8, 8), head_growth=1.0)
    with pytest.raises(ValueError, match="'block_grid'"):
        shape(torch.ones(1, 8, 8), block_grid="floor")


def test_environment_video_is_black_inside_the_mask_only(host):
    from wan_animate_kit.nodes.mask import EnvironmentVideo

    imgs = torch.rand(2, 32, 48, 3) * 0.9 + 0.05
    m = torch.zeros(2, 16, 24)
    m[:, 4:8, 6:12] = 1  # half-size mask is resized to the frames
    env, mask, over, env_video, over_video, masks = EnvironmentVideo.execute(images=imgs, mask=m).result
    assert torch.equal(torch.from_numpy(masks.read(0, 2)).float() / 255, mask)
    assert mask.shape == (2, 32, 48)
    inside = mask > 0.5
    assert torch.all(env[inside] == 0)
    assert torch.equal(env[~inside], imgs[~inside])
    assert over.shape == imgs.shape and not torch.equal(over[inside], imgs[inside])
    with pytest.raises(ValueError, match="mask"):
        EnvironmentVideo.execute(images=imgs, mask=torch.zeros(3, 32, 48))
    u8 = (env_video.get_components().images * 255).round()
    assert torch.equal(u8, (env * 255).round())  # the VIDEO output: the same frames, made on demand
    assert over_video.get_frame_count() == 2


def test_environment_from_a_video_letterboxed_to_the_output_size(host, tmp_path):
    from comfy_api.latest import InputImpl
    from comfy_execution.graph_utils import ExecutionBlocker
    from media import write_mp4
    from wan_animate_kit.nodes.mask import EnvironmentVideo
    from wan_animate_kit.nodes.pose import OutputSize

    frames = np.full((5, 32, 64, 3), 200, np.uint8)  # 2:1 video into a 64x64 output: 16 px bars top and bottom
    path = write_mp4(tmp_path / "drive.mp4", frames, 10, crf=0)
    video = InputImpl.VideoFromFile(str(path))
    m = torch.zeros(5, 32, 64)
    m[:, 8:24, 16:32] = 1
    out = EnvironmentVideo.execute(video=video, mask=m, width=64, height=64, frames_output=False).result
    assert isinstance(out[0], ExecutionBlocker) and isinstance(out[2], ExecutionBlocker)
    mask, env_video = out[1], out[3]
    assert mask.shape == (5, 64, 64)
    assert mask[:, :16].max() == 0 and mask[:, 48:].max() == 0  # the bars are not character
    assert torch.equal(mask[:, 16 + 8:16 + 24, 16:32], torch.ones(5, 16, 16))  # moved with the frames
    env = env_video.get_components()
    assert env.images.shape == (5, 64, 64, 3) and float(env.frame_rate) == 10
    px = (env.images * 255).round()
    assert px[:, :16].max() == 0 and px[:, 48:].max() == 0  # letterbox bars
    assert px[:, 30, 20].max() == 0 and torch.all(px[:, 30, 40] == 200)  # black inside the mask only
    eager = EnvironmentVideo.execute(video=video, mask=m, width=64, height=64).result
    assert torch.equal(eager[0], env.images)
    # compact masks in, compact masks out, no MASK batch: the same environment video and masks
    lean = EnvironmentVideo.execute(video=video, mask=packed(m), width=64, height=64, frames_output=False,
                                    mask_output=False).result
    assert isinstance(lean[1], ExecutionBlocker) and "mask_output" in lean[1].message
    assert torch.equal(lean[3].get_components().images, env.images)
    assert torch.equal(torch.from_numpy(lean[5].read(0, 5)).float() / 255, mask)
    assert OutputSize.execute(area=64 * 32, divisor=16, video=video).result == (64, 32)
    with pytest.raises(ValueError, match="exactly one"):
        OutputSize.execute(area=64 * 32, divisor=16)
    with pytest.raises(ValueError, match="mask"):
        EnvironmentVideo.execute(video=video, mask=torch.zeros(3, 32, 64))



def test_frames_output_off_makes_no_mask_batch(host):
    from comfy_execution.graph_utils import ExecutionBlocker

    m = torch.zeros(4, 40, 56)
    m[1:, 10:20, 12:30] = 1  # frame 0 is empty: filled from frame 1
    hard, soft, report = shape(m)
    off = __import__("wan_animate_kit.nodes.mask", fromlist=["MaskShape"]).MaskShape.execute(
        mask=packed(m), kernel=7, iterations=3, block=True, block_rows=1, block_cols=1, head_growth=0.0, feather=4.0,
        fill_empty=True, frames_output=False).result
    assert isinstance(off[0], ExecutionBlocker) and isinstance(off[1], ExecutionBlocker) and off[2] == report
    assert "1 empty frame(s) filled" in report
    assert torch.equal(torch.from_numpy(off[3].read(0, 4)).float() / 255, hard)
    assert torch.equal(hard[0], hard[1])
