"""A DataLoader worker whose parent hangs up mid-transfer stays silent; other errors still print.

The reference that can disagree is multiprocessing itself: without the hook, its resource
sharer thread prints the reset connection's traceback (the first test shows it does).
"""

from __future__ import annotations

import socket
import sys
import time
from multiprocessing import connection, resource_sharer

import pytest

from virnucpro.data.isolation import quiet_parent_hangups


def _hang_up_mid_handshake() -> None:
    """Ask this process's resource sharer for a descriptor and hang up during the handshake,
    as a parent stopped by Ctrl-C does."""
    with open(__file__, "rb") as handle:
        resource_sharer.DupFd(handle.fileno())  # starts the sharer's listening thread
    address = resource_sharer._resource_sharer._address
    family = connection.address_type(address)
    with socket.socket(getattr(socket, family)) as client:
        client.connect(address)
        client.recv(1)  # the sharer's challenge has begun; leave without answering
    time.sleep(0.5)  # the sharer's thread meets the closed connection


@pytest.fixture
def fresh_hook(monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    yield
    resource_sharer.stop()


def test_without_the_hook_a_hang_up_prints_a_traceback(fresh_hook, capfd):
    _hang_up_mid_handshake()
    assert "resource_sharer.py" in capfd.readouterr().err


def test_with_the_hook_a_hang_up_prints_nothing(fresh_hook, capfd):
    quiet_parent_hangups()
    quiet_parent_hangups()  # each iteration of the dataset calls it: installed once
    _hang_up_mid_handshake()
    assert capfd.readouterr().err == ""


def test_with_the_hook_other_errors_still_print(fresh_hook, capfd):
    quiet_parent_hangups()
    try:
        raise ConnectionResetError("not from the resource sharer")
    except ConnectionResetError:
        sys.excepthook(*sys.exc_info())
    assert "not from the resource sharer" in capfd.readouterr().err
