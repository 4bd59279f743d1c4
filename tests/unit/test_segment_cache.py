"""Segment cache housekeeping: only folders the pack marked are ever pruned (the cache root may be a
shared folder), by age and by a total size cap, oldest first, never the running job."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from wan_animate_kit.models import segment_cache as sc
from wan_animate_kit.models.segment_cache import SegmentCache

DAY = 24 * 3600


def _job(root, name, size=0, age=0.0, marked=True):
    """A job folder as the pack writes it (marker + one file of ``size`` bytes), ``age`` seconds old."""
    d = root / name
    d.mkdir()
    if marked:
        (d / sc.MARKER).write_text(sc.MARKER_TEXT)
    if size:
        (d / "seg00000_x.npy").write_bytes(b"\0" * size)
    t = time.time() - age
    os.utime(d, (t, t))
    return d


def _used(path):
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def test_prune_by_age_removes_only_marked_folders(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tmp_path = tmp_path / "root"
    tmp_path.mkdir()
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"keep me")
    old = time.time() - 8 * DAY
    os.utime(foreign, (old, old))
    stale = _job(tmp_path, "a" * 32, size=10, age=8 * DAY)
    fresh = _job(tmp_path, "b" * 32, size=10, age=DAY)
    forged = _job(tmp_path, "c" * 32, size=10, age=8 * DAY, marked=False)
    (forged / sc.MARKER).write_text("something else\n")  # a marker file with other text is not ours
    loose = tmp_path / "notes.txt"
    loose.write_text("x")
    os.utime(loose, (old, old))
    outside = _job(elsewhere, "d" * 32, age=8 * DAY)  # marked, old, but reached only through a link
    link = tmp_path / ("e" * 32)
    link.symlink_to(outside, target_is_directory=True)

    cache = SegmentCache("f" * 32, root=str(tmp_path), max_bytes=10 ** 9)
    assert not stale.exists()  # marked and older than a week
    assert outside.exists() and (outside / sc.MARKER).exists()
    assert fresh.exists() and (foreign / "holiday.jpg").read_bytes() == b"keep me"
    assert forged.exists() and loose.exists() and link.is_symlink()
    assert (tmp_path / ("f" * 32) / sc.MARKER).read_text() == sc.MARKER_TEXT
    assert cache.enabled


def test_size_cap_removes_oldest_marked_first_never_the_running_job(tmp_path):
    foreign = tmp_path / "big_foreign"
    foreign.mkdir()
    (foreign / "data.bin").write_bytes(b"\1" * 5000)  # never counted, never removed
    jobs = [_job(tmp_path, f"{i:032x}", size=1000, age=age) for i, age in enumerate((400, 300, 200, 100))]
    marker = len(sc.MARKER_TEXT.encode())
    cap = 2 * (1000 + marker) + marker  # the running job (marker only) + the two newest
    cache = SegmentCache("f" * 32, root=str(tmp_path), max_bytes=cap)
    assert [j.exists() for j in jobs] == [False, False, True, True]
    assert foreign.exists()
    kept = [d for d in tmp_path.iterdir() if sc.is_cache_entry(str(d))]
    assert sum(_used(d) for d in kept) <= cap

    # The running job grows past the cap: the others go, its own folder stays.
    cache.save(0, "k", np.zeros((4, 8, 8, 3), np.uint8))
    cache.save(1, "k", np.zeros((40, 32, 32, 3), np.uint8))
    assert not jobs[2].exists() and not jobs[3].exists()
    assert os.path.isdir(cache.dir) and cache.saved == [0, 1]
    assert cache.load(1, "k", (40, 32, 32, 3)) is not None
    assert foreign.exists()


def test_cap_zero_keeps_only_the_running_job(tmp_path):
    other = _job(tmp_path, "1" * 32, size=10)
    SegmentCache("2" * 32, root=str(tmp_path), max_bytes=0)
    assert not other.exists() and (tmp_path / ("2" * 32)).is_dir()


@pytest.mark.parametrize("text, gb", [("", 20.0), ("0.5", 0.5), ("0", 0.0), ("100", 100.0), ("abc", 20.0),
                                      ("-1", 20.0), ("nan", 20.0), ("inf", 20.0)])
def test_cap_from_environment(monkeypatch, text, gb):
    monkeypatch.setenv(sc.MAX_GB_ENV, text)
    assert sc.max_cache_bytes() == int(gb * 1024 ** 3)
    assert SegmentCache("x", enabled=False).max_bytes == int(gb * 1024 ** 3)


def test_finish_removes_only_its_own_folder(tmp_path):
    foreign = tmp_path / "keep"
    foreign.mkdir()
    cache = SegmentCache("9" * 32, root=str(tmp_path), max_bytes=10 ** 9)
    cache.save(0, "k", np.ones((2, 4, 4, 3), np.uint8))
    cache.finish()
    assert not os.path.exists(cache.dir) and foreign.is_dir()
