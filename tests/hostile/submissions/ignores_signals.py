"""Ignores SIGTERM and SIGINT, then sleeps past the timeout."""
import signal
import time


def attack(x):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    time.sleep(1000)


def innocent(x):
    return 2 * x
