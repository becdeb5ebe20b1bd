"""An isolated publisher whose daemon is killed with SIGKILL dies too, instead of writing feeds/ on its own."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from processtree import running

PARENT = """
import os, sys, time
from pathlib import Path
from aggregator.runtime import _publishing_process

def publish(pid_file):
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)  # a long publish

if __name__ == "__main__":
    with _publishing_process() as child:  # as the daemon makes it: a child of its forkserver
        child.submit(publish, sys.argv[1]).result()
"""


def test_the_publishing_child_is_killed_when_its_daemon_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "daemon.py"
    script.write_text(PARENT, encoding="utf-8")
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child_pid = int(pid_file.read_text())
        assert running(child_pid)
        assert Path(f"/proc/{child_pid}/comm").read_text() == "cf-publish\n"  # ps and top tell it apart

        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)

        deadline = time.monotonic() + 10
        while running(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(child_pid)
    finally:
        if parent.poll() is None:
            parent.kill()
