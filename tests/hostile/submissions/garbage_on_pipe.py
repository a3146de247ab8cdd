"""Writes garbage onto the grader's response pipe: every pipe it may write to but its stdout and stderr."""
import fcntl
import os
import stat


def attack(x):
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            writable = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY
            if fd > 2 and writable and stat.S_ISFIFO(os.fstat(fd).st_mode):
                os.write(fd, b"\xff" * 5000)
        except OSError:
            pass  # the directory's own descriptor
    return 2 * x


def innocent(x):
    return 2 * x
