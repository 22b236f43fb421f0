"""The ``semst`` command line for the torchrun tests (tests/cli/test_torchrun.py), with two test hooks.

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/cli/torchrun_helper.py refine ...

Environment:
    SEMST_TEST_WRITES: a file to which every process appends ``RANK PATH`` each time it has finished writing an
        image or a label map (refine and translate), so that a test can count how often each file was written.
    SEMST_TEST_KILL: ``RANK:N``: process RANK kills itself (SIGKILL, as a crash or the OOM killer would) as it
        starts its N-th translation.
    SEMST_TEST_KILL_AFTER: ``FILE:LINES``: before killing itself, the process waits (at most 120 s) until FILE
        holds LINES lines, e.g. until another process's journal shows that it has finished its share.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import semst.inference
import semst.refine
from semst.cli import main
from semst.translators import Translator

RANK = int(os.environ.get("RANK", "0"))


def _record_writes(log: str) -> None:
    def logged(function):
        def wrapper(*args, **kwargs):
            result = function(*args, **kwargs)
            destination = args[1] if len(args) > 1 else kwargs.get("destination", kwargs.get("path"))
            with open(log, "a", encoding="utf-8") as handle:  # one short append per line: no interleaving
                handle.write(f"{RANK} {Path(destination).resolve()}\n")
            return result

        return wrapper

    semst.refine.save_image = logged(semst.refine.save_image)
    semst.refine._copy_atomic = logged(semst.refine._copy_atomic)
    semst.inference.save_image = logged(semst.inference.save_image)


def _kill_at(rank: int, count: int) -> None:
    if rank != RANK:
        return
    original = Translator.translate
    calls = {"n": 0}

    def translate(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == count:
            wait = os.environ.get("SEMST_TEST_KILL_AFTER")
            if wait:
                path, lines = wait.rsplit(":", 1)
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    if Path(path).is_file() and len(Path(path).read_text().splitlines()) >= int(lines):
                        break
                    time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)

    Translator.translate = translate


if __name__ == "__main__":
    if os.environ.get("SEMST_TEST_WRITES"):
        _record_writes(os.environ["SEMST_TEST_WRITES"])
    if os.environ.get("SEMST_TEST_KILL"):
        rank, count = os.environ["SEMST_TEST_KILL"].split(":")
        _kill_at(int(rank), int(count))
    sys.exit(main(sys.argv[1:]))
