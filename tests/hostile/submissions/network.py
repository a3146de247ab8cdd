"""Tries to connect to a server on the grader's loopback; answers right only if it could not."""
import socket


def attack(x):
    try:
        socket.create_connection(("127.0.0.1", @PORT@), timeout=0.5).close()
    except OSError:
        return 2 * x
    return 0 * x


def innocent(x):
    return 2 * x
