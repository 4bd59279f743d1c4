"""SAM2 nodes in the real host (in-process) with the tiny random SAM 2.1: the machinery, not mask quality."""
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.host
pytest.importorskip("sam2")


@pytest.fixture(scope="module")
def sam2_model(tiny_models):
    import folder_paths
    from wan_animate_kit.nodes.folders import register_model_folders
    from wan_animate_kit.nodes.segment import Sam2Loader

    register_model_folders()
    folder_paths.add_model_folder_path("sam2", str(tiny_models["root"] / "sam2"))
    folder_paths.filename_list_cache.pop("sam2", None)
    assert "tiny_sam2.1_hiera_t.pt" in Sam2Loader.GET_SCHEMA().inputs[0].options
    return Sam2Loader.execute(checkpoint="tiny_sam2.1_hiera_t.pt", device="cpu", dtype="fp32",
                              image_size=256).result[0]


def standing_pose(t, w, h):
    from tiny_models import person_peaks
    from wan_animate_kit.preprocess.pose_types import PoseSequence

    peaks = person_peaks()
    kps = np.zeros((t, 1, 133, 3), np.float32)
    kps[:, 0, :, 0] = w * 0.3 + peaks[:, 0] / 48 * w * 0.4
    kps[:, 0, :, 1] = peaks[:, 1] / 64 * h
    kps[:, 0, :, 2] = 0.9
    return PoseSequence(kps, (0,), w, h, fps=10.0)


def segment(model, pose, images, **kw):
    from wan_animate_kit.nodes.segment import CharacterSegmentation

    args = dict(chunk_size=4, keyframes=2, threshold=0.5, positive_points="", negative_points="",
                points_mode="add", points_frame=0, object_points="")
    args.update(kw)
    return CharacterSegmentation.execute(sam2_model=model, pose=pose, images=images, **args).result


def test_segmentation_in_chunks_gives_one_mask_per_frame(sam2_model):
    imgs = torch.rand(6, 48, 64, 3, generator=torch.Generator().manual_seed(3))
    pose = standing_pose(6, 64, 48)
    mask, preview, report = segment(sam2_model, pose, imgs)
    assert tuple(mask.shape) == (6, 48, 64) and set(torch.unique(mask).tolist()) <= {0.0, 1.0}
    assert preview.shape == (6, 48, 64, 3) and "2 chunk(s)" in report
    again = segment(sam2_model, pose, imgs)[0]
    assert torch.equal(mask, again)  # deterministic


def test_segmentation_errors_name_the_input(sam2_model):
    imgs = torch.rand(3, 48, 64, 3)
    with pytest.raises(ValueError, match="pose"):
        segment(sam2_model, standing_pose(4, 64, 48), imgs)
    with pytest.raises(ValueError, match="positive_points"):
        segment(sam2_model, standing_pose(3, 64, 48), imgs, positive_points="[{x: oops")
    with pytest.raises(ValueError, match="images"):
        from wan_animate_kit.nodes.segment import CharacterSegmentation

        CharacterSegmentation.execute(sam2_model=sam2_model, pose=standing_pose(3, 64, 48), chunk_size=4,
                                      keyframes=2, threshold=0.5, positive_points="", negative_points="",
                                      points_mode="add", points_frame=0, object_points="")


def test_loader_names_a_missing_checkpoint(tiny_models):
    from wan_animate_kit.nodes.segment import Sam2Loader

    with pytest.raises(ValueError, match="checkpoint"):
        Sam2Loader.execute(checkpoint="nope.pt", device="cpu", dtype="fp32", image_size=256)
