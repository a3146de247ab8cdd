"""Tries to make the read-only file-system view writable again: remounts it, in a mount namespace of its own so
that nothing changes outside even where it may, and answers right only if the view stayed read-only."""
import ctypes
import os

import numpy

CLONE_NEWNS, MS_REMOUNT, MS_BIND = 0x20000, 32, 4096
TARGET = os.path.dirname(numpy.__file__)  # read-only in the bubblewrap view


def attack(x):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) == 0:
        flags = os.statvfs(TARGET).f_flag & (os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC | os.ST_RELATIME
                                             | os.ST_NOATIME | os.ST_NODIRATIME)
        libc.mount(None, TARGET.encode(), None, MS_REMOUNT | MS_BIND | flags, None)
    return 0 * x if os.access(TARGET, os.W_OK) else 2 * x


def innocent(x):
    return 2 * x
