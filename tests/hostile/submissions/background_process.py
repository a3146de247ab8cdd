"""Starts a long-running process at import and returns correct answers."""
import subprocess
import sys

child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)", "@MARKER@"])


def attack(x):
    return 2 * x


def innocent(x):
    return 2 * x
