"""Malicious pickles for the loading tests: what a hostile weights file would run when unpickled."""

from __future__ import annotations

import os
import pathlib
import pickle


class MkdirPayload:
    """Pickles as a call of os.mkdir(target): a test proves nothing ran by ``target`` not existing."""

    def __init__(self, target: pathlib.Path):
        self.target = target

    def __reduce__(self):
        return os.mkdir, (str(self.target),)


def eval_pickle(code: str) -> bytes:
    """A pickle (protocol 0) that calls ``eval(code)``: a GLOBAL of builtins.eval, then a REDUCE."""
    return b"cbuiltins\neval\n(" + pickle.dumps(code, protocol=0)[:-1] + b"tR."
