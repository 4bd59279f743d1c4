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
    return MaskShape.execute(mask=mask, **args).result


def test_official_shaping_gives_the_dilated_bounding_box_and_fills_empty_frames(host):
    m = torch.zeros(3, 64, 80)
    m[0, 20:30, 30:40] = 1
    m[0, 40, 50] = 1  # a second blob widens the box
    m[2, 10:12, 10:12] = 1  # frame 1 is empty
    hard, soft, report = shape(m)
    assert hard.shape == (3, 64, 80) and soft.shape == (3, 64, 80)
    on = np.argwhere(hard[0].numpy() > 0.5)
    # 3 iterations of a 7x7 dilation grow by 9 px on each side; 1x1 blocks = full bounding rectangle
    assert on[:, 0].min() == 20 - 9 and on[:, 0].max() == 40 + 9
    assert on[:, 1].min() == 30 - 9 and on[:, 1].max() == 50 + 9
    assert hard[0].sum() == (49 - 11 + 1) * (59 - 21 + 1)
    assert torch.equal(hard[1], hard[0]) or torch.equal(hard[1], hard[2])
    assert "1 empty frame" in report
    assert 0 < soft[0].min() + 1 and ((soft[0] > 0) & (soft[0] < 1)).any()  # feathered edge exists


def test_head_growth_needs_a_pose(host):
    with pytest.raises(ValueError, match="pose"):
        shape(torch.ones(1, 8, 8), head_growth=1.0)


def test_environment_video_is_black_inside_the_mask_only(host):
    from wan_animate_kit.nodes.mask import EnvironmentVideo

    imgs = torch.rand(2, 32, 48, 3) * 0.9 + 0.05
    m = torch.zeros(2, 16, 24)
    m[:, 4:8, 6:12] = 1  # half-size mask is resized to the frames
    env, mask, over = EnvironmentVideo.execute(images=imgs, mask=m).result
    assert mask.shape == (2, 32, 48)
    inside = mask > 0.5
    assert torch.all(env[inside] == 0)
    assert torch.equal(env[~inside], imgs[~inside])
    assert over.shape == imgs.shape and not torch.equal(over[inside], imgs[inside])
    with pytest.raises(ValueError, match="mask"):
        EnvironmentVideo.execute(images=imgs, mask=torch.zeros(3, 32, 48))
