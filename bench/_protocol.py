"""The line protocol between a benchmark and its out-of-database side (a separate process
with its own TensorFlow thread pools): commands on stdin, one per line; replies on stdout as
lines starting with ``@@`` followed by JSON (anything else the process prints is noise)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable


def reply(obj: dict) -> None:
    sys.stdout.write("@@" + json.dumps(obj) + "\n")
    sys.stdout.flush()


def serve(commands: dict[str, Callable[[], dict]]) -> None:
    """Answer commands until ``quit`` or end of input (the worker side)."""
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        if cmd in commands:
            reply(commands[cmd]())
        else:
            reply({"error": f"unknown command {cmd!r}"})


class Worker:
    """The benchmark side: starts the process and reads its first reply (``ready``)."""

    def __init__(self, argv: list[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.info = self._read()

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("@@"):
                msg = json.loads(line[2:])
                if "error" in msg:
                    raise RuntimeError(f"{self.name}: {msg['error']}")
                return msg
        raise RuntimeError(f"{self.name} process ended (exit code {self.proc.wait()})")

    def ask(self, command: str) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
