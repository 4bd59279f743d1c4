"""Freed memory handed back to the operating system between the chunks of long loops.

The C heap (glibc's malloc, which numpy, PyAV, onnxruntime and torch's CPU tensors allocate from)
keeps the pages of freed blocks resident until it is asked to return them: it trims only the free
space at the top of its heaps, and large blocks stop being mmapped once a block of their size has been
freed (glibc's dynamic mmap threshold). A loop that allocates and frees frame-sized arrays chunk after
chunk, with small long-lived results in between (a tracked pose, packed masks), therefore grows the
process's resident memory with the length of the video although what it keeps alive does not: 1000
frames of 1280x720 through pose extraction held about 2 GB of freed pages.

:func:`release_freed_memory` asks glibc to give every whole free page back (``malloc_trim(0)``,
man 3 malloc_trim); it costs milliseconds, so the loops call it once per chunk. On other C libraries
and systems it does nothing.
"""
from __future__ import annotations

import ctypes
import sys
from typing import Callable

_trim: Callable[[int], int] | None | bool = None  # None: not looked up yet; False: not available


def _lookup() -> Callable[[int], int] | bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        return False


def release_freed_memory() -> bool:
    """Give the C heap's free pages back to the OS; True when that was possible here."""
    global _trim
    if _trim is None:
        _trim = _lookup()
    if _trim is False:
        return False
    _trim(0)
    return True
