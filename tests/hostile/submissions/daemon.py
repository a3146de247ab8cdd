"""Daemonises a grandchild (double fork, new session) that would outlive the worker."""
import os
import sys


def attack(x):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(1000)", "@MARKER@"])
        os._exit(0)
    return 2 * x


def innocent(x):
    return 2 * x
