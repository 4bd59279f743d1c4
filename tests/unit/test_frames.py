"""The frames layer (preprocess/frames.py): every source hands out the same uint8 / float frames."""
import io
import zlib

import numpy as np
import pytest
import torch

from wan_animate_kit.preprocess.frames import (ArrayFrames, FileFrames, FrameSource, PackedMasks, RecipeFrames,
                                               as_source, chunk_frames, is_source, map_chunks, to_float, to_uint8)


def test_uint8_and_float_are_one_exact_pair():
    levels = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(to_float(levels), levels.float() / 255)
    assert np.array_equal(to_uint8(to_float(levels)), levels.numpy())  # every level survives the round trip
    # rounding half to even, clamping, alpha dropped, numpy and torch alike
    x = torch.tensor([[[[0.5 / 255, 1.5 / 255, 2.5 / 255, -0.2]]]]).expand(1, 1, 1, 4).clone()
    x[..., 3] = 1.7
    want = np.array([[[[0, 2, 2]]]], np.uint8)
    assert np.array_equal(to_uint8(x), want) and np.array_equal(to_uint8(x.numpy()), want)
    assert np.array_equal(to_uint8(np.array([True, False])), np.array([255, 0], np.uint8))
    with pytest.raises(ValueError, match="uint8 or float"):
        to_uint8(np.array([1, 2], np.int32))


def test_array_frames_give_image_values_back_exactly():
    imgs = torch.rand(7, 5, 6, 4, generator=torch.Generator().manual_seed(0))
    src = ArrayFrames(imgs, fps=12.0, name="images")
    assert isinstance(src, FrameSource) and is_source(src) and not src.is_mask
    assert (src.num_frames, src.size, src.fps) == (7, (6, 5), 12.0)
    assert torch.equal(src.get_float([4, 1, 1]), imgs[[4, 1, 1], ..., :3])  # unrounded floats
    assert np.array_equal(src.get([2, 3]), to_uint8(imgs[2:4, ..., :3]))
    chunks = list(src.iter_chunks(3))
    assert [len(c) for c in chunks] == [3, 3, 1] and np.array_equal(np.concatenate(chunks), to_uint8(imgs))
    assert src.read(5, 99).shape == (2, 5, 6, 3) and src.read(9, 12).shape == (0, 5, 6, 3)
    with pytest.raises(IndexError):
        src.get([7])
    with pytest.raises(ValueError, match="frames"):
        ArrayFrames(torch.zeros(2, 3))


def test_a_single_mask_repeats_for_every_frame():
    m = torch.zeros(1, 4, 4)
    m[0, 1:3, 1:3] = 1
    src = as_source(m, "character_mask", repeat_single=True, length=9)
    assert src.is_mask and src.num_frames == 9
    assert torch.equal(src.get_float([0, 8, 5]), m.expand(3, 4, 4))
    assert as_source(src) is src


def test_packed_masks_are_small_and_read_back_exactly():
    rng = np.random.default_rng(1)
    masks = np.zeros((5, 72, 128), bool)
    masks[0, 10:60, 30:90] = True
    masks[2] = rng.random((72, 128)) > 0.5  # noise does not compress but still reads back
    masks[4, 0, 127] = True
    packed = PackedMasks(128, 72, fps=25.0)
    packed.append(masks[:2])
    packed.append(torch.from_numpy(masks[2:].astype(np.float32)))  # float MASK: on >= 0.5
    assert packed.num_frames == 5 and packed.size == (128, 72) and packed.is_mask and packed.fps == 25.0
    assert np.array_equal(packed.get(range(5)), masks.astype(np.uint8) * 255)
    assert np.array_equal(np.concatenate(list(packed.iter_chunks(2))), masks.astype(np.uint8) * 255)
    assert torch.equal(packed.get_float([4, 0]), torch.from_numpy(masks[[4, 0]].astype(np.float32)))
    assert packed.empty_frames() == [1, 3]
    # bit-packed and compressed: far below a byte a pixel for a person-like blob
    assert len(zlib.decompress(packed._frames[0])) == 128 * 72 // 8
    assert len(packed._frames[0]) < 200
    with pytest.raises(ValueError, match="128x72"):
        packed.append(np.zeros((1, 72, 64), bool))
    ones = PackedMasks(128, 72)
    ones.append(masks.astype(np.uint8))  # a 0 / 1 uint8 mask is not read as all off
    ones.append(masks[:1].astype(np.uint8) * 200)
    assert np.array_equal(ones.get(range(6)), np.concatenate([masks, masks[:1]]).astype(np.uint8) * 255)
    again = PackedMasks.from_source(packed, chunk=2)
    assert np.array_equal(again.get(range(5)), packed.get(range(5)))


def _counting_recipe(frames, passes, step=4, **kw):
    def chunks():
        passes.append(1)
        for s in range(0, len(frames), step):
            yield frames[s:s + step]
    return RecipeFrames(chunks, len(frames), frames.shape[2], frames.shape[1], **kw)


def test_recipe_reads_forward_in_one_pass_and_restarts_only_to_go_back():
    frames = np.arange(13 * 2 * 3 * 3, dtype=np.int64).reshape(13, 2, 3, 3).astype(np.uint8)
    passes = []
    src = _counting_recipe(frames, passes, fps=30.0, name="pose_video")
    for idx in ([0, 1, 2, 3, 4], [4, 5, 6, 7, 8], [8, 9, 10, 11, 12, 11, 10]):
        assert np.array_equal(src.get(idx), frames[idx])
        assert len(src._window) <= 9  # only a window is held
    assert len(passes) == 1
    assert np.array_equal(src.get([1, 2]), frames[[1, 2]]) and len(passes) == 2  # going back: a new pass
    assert np.array_equal(np.concatenate(list(src.iter_chunks())), frames)


def test_a_recipe_that_makes_the_wrong_frames_is_a_clear_bug():
    frames = np.zeros((5, 2, 3, 3), np.uint8)
    short = RecipeFrames(lambda: iter([frames[:3]]), 5, 3, 2, name="skeleton")
    with pytest.raises(RuntimeError, match="made 3 frames, 5 expected"):
        list(short.iter_chunks())
    wrong = RecipeFrames(lambda: iter([frames.astype(np.float32)]), 5, 3, 2, name="skeleton")
    with pytest.raises(RuntimeError, match="float32"):
        list(wrong.iter_chunks())
    with pytest.raises(ValueError, match="at least one frame"):
        RecipeFrames(lambda: iter([]), 0, 3, 2)


def test_map_chunks_is_a_recipe_over_another_source():
    imgs = torch.rand(6, 4, 4, 3, generator=torch.Generator().manual_seed(2))
    firsts = []

    def invert(chunk, first):
        firsts.append(first)
        return 255 - chunk

    inv = map_chunks(ArrayFrames(imgs, fps=8.0), invert, chunk=4)
    assert isinstance(inv, RecipeFrames) and inv.fps == 8.0 and inv.num_frames == 6
    assert np.array_equal(inv.get(range(6)), 255 - to_uint8(imgs)) and firsts == [0, 4]
    as_mask = map_chunks(inv, lambda c, _: c[..., 0], is_mask=True)
    assert as_mask.is_mask and as_mask.get([5]).shape == (1, 4, 4)


def _mp4_bytes(frames):
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
        vs.options = {"crf": "0"}
        for img in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return buf


def test_file_frames_decode_chunks_and_count_frames():
    frames = np.zeros((11, 16, 16, 3), np.uint8)
    for i in range(11):
        frames[i] = 20 * i
    buf = _mp4_bytes(frames)
    src = FileFrames(lambda: buf, 16, 16, fps=10.0, name="video")
    src.probe()
    assert src.num_frames == 11  # counted by decoding: no count was given
    parts = list(src.iter_chunks(4))
    assert [len(p) for p in parts] == [4, 4, 3]
    got = np.concatenate(parts)
    assert got.shape == (11, 16, 16, 3) and np.abs(got.astype(int) - frames).max() <= 2
    assert not np.shares_memory(parts[0], parts[1])  # every chunk is its own array
    assert np.array_equal(src.get([3, 4, 10]), got[[3, 4, 10]])
    assert torch.equal(src.get_float([2]), torch.from_numpy(got[[2]]).float() / 255)


def test_unreadable_files_raise_the_callers_error():
    class NamedError(ValueError):
        pass

    def error(problem, fix):
        return NamedError(f"Node: input 'video': {problem} -> {fix}")

    junk = FileFrames(lambda: io.BytesIO(b"not a video at all" * 50), 16, 16, name="video", error=error)
    with pytest.raises(NamedError, match="input 'video': could not be read as a video"):
        junk.probe()
    with pytest.raises(NamedError, match="could not be decoded to the end"):
        list(junk.iter_chunks(4))


def test_going_back_restarts_the_pass_without_holding_the_frames_before():
    frames = np.arange(40, dtype=np.uint8)[:, None, None, None].repeat(2, 1).repeat(3, 2).repeat(3, 3)
    passes = []
    src = _counting_recipe(frames, passes, step=4)
    assert np.array_equal(src.get([30, 31]), frames[[30, 31]])
    assert np.array_equal(src.get([28, 29]), frames[[28, 29]]) and len(passes) == 2  # back: a new pass
    assert len(src._window) <= 2 + 4  # the frames before 28 were dropped while the pass went on


def test_gather_float_reads_each_frame_once_in_order():
    from wan_animate_kit.preprocess.frames import gather_float

    frames = np.arange(20, dtype=np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3)
    passes, seen = [], []
    src = _counting_recipe(frames, passes, step=3)
    real = src.get_float
    src.get_float = lambda idx: seen.append(list(idx)) or real(idx)
    idx = [12, 13, 14, 15, 16, 17, 18, 19, 18, 17, 16]  # forward, then mirrored padding
    got = gather_float(src, idx, lambda f: f * 2, chunk=3)
    assert torch.equal(got, torch.from_numpy(frames[idx]).float() / 255 * 2)
    assert seen == [[12, 13, 14], [15, 16, 17], [18, 19]] and len(passes) == 1


def test_held_float_reads_a_forward_source_once_and_keeps_uint8():
    from wan_animate_kit.preprocess.frames import held_float

    frames = np.arange(20, dtype=np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3) * 7
    passes, seen = [], []
    src = _counting_recipe(frames, passes, step=3)
    real = src.get
    src.get = lambda idx: seen.append(list(idx)) or real(idx)
    idx = [12, 13, 14, 15, 16, 17, 18, 19, 18, 17, 16]  # forward, then mirrored padding
    reader = held_float(src, idx, chunk=3)
    assert seen == [[12, 13, 14], [15, 16, 17], [18, 19]] and len(passes) == 1  # read now, once, in order
    for pos in ([0, 1, 2], [8, 9, 10], [10, 3], list(range(11))):
        want = torch.from_numpy(frames[[idx[p] for p in pos]]).float() / 255
        assert torch.equal(reader(pos), want)
    assert len(seen) == 3 and len(passes) == 1  # later reads come from the kept frames
    # an in-memory source is read on demand, with its own float values
    image = torch.rand(20, 2, 2, 3, generator=torch.Generator().manual_seed(0))
    arr = ArrayFrames(image)
    reader = held_float(arr, idx)
    assert torch.equal(reader([9, 0]), image[[17, 12]])


def test_chunk_frames_bound_a_chunk_by_bytes():
    assert chunk_frames(1280, 720, 16) == 9  # 24 MiB of 720p RGB
    assert chunk_frames(512, 512, 32) == 32  # face crops: the count asked for
    assert chunk_frames(8192, 8192, 16) == 1  # a frame over the budget: one at a time
    assert chunk_frames(1280, 720, 16, channels=1) == 16
    assert chunk_frames(64, 64, 4, budget=64 * 64 * 3 * 2) == 2


def test_release_freed_memory_hands_freed_pages_back():
    """Blocks freed between blocks that stay are holes the C heap keeps resident; trimming gives
    their pages back (glibc)."""
    import ctypes
    import os
    import sys

    from wan_animate_kit.preprocess.heap import release_freed_memory

    if not sys.platform.startswith("linux"):
        assert release_freed_memory() is False
        return
    if not release_freed_memory():
        pytest.skip("this C library has no malloc_trim")

    def rss_mib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = []
    for _ in range(1600):  # 64 KiB blocks: from the heap under any mmap threshold
        p = libc.malloc(64 * 1024)
        ctypes.memset(p, 1, 64 * 1024)
        blocks.append(p)
    for p in blocks[::2]:  # every other one: 50 MiB of holes between blocks that stay
        libc.free(p)
    before = rss_mib()
    assert release_freed_memory() is True
    after = rss_mib()
    for p in blocks[1::2]:
        libc.free(p)
    assert before - after > 40, (before, after)  # of the 50 MiB freed
