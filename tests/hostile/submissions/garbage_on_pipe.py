"""Writes garbage onto the grader's response pipe."""
import os


def attack(x):
    argv = open("/proc/self/cmdline", "rb").read().split(b"\0")
    fd = int(argv[[a.endswith(b"worker.py") for a in argv].index(True) + 2])
    os.write(fd, b"\xff" * 5000)
    return 2 * x


def innocent(x):
    return 2 * x
