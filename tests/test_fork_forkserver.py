"""The daemon's forkserver is a fork of the daemon, made before it reads anything, so that the parse
workers and publishers share the daemon's loaded modules instead of a third copy of them.

Each case runs in a fresh interpreter of its own: the forkserver is one per process, and pytest's
may already be running.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from processtree import ends_within

REPO = Path(__file__).resolve().parents[1]

FORKED = """
import json, os, sys, tempfile, time
from multiprocessing import forkserver, resource_tracker
from aggregator.processes import fork_forkserver, parse_pool

held = tempfile.NamedTemporaryFile(prefix="daemon-data-")  # as the daemon's database would be
forked = fork_forkserver()
server = forkserver._forkserver._forkserver_pid
pool = parse_pool(1)
worker = pool.submit(os.getpid).result()
print(json.dumps({
    "forked": forked,
    "pid": os.getpid(),
    "again": fork_forkserver(),
    "server": server,
    "server_parent": int(open(f"/proc/{server}/stat").read().rsplit(")", 1)[1].split()[1]),
    "server_cmdline": open(f"/proc/{server}/cmdline").read(),
    "own_cmdline": open("/proc/self/cmdline").read(),
    "worker_parent": pool.submit(os.getppid).result(),
    "worker_name": open(f"/proc/{worker}/comm").read().strip(),
    "held": held.name,
    "server_files": [os.readlink(f"/proc/{server}/fd/{fd}") for fd in os.listdir(f"/proc/{server}/fd")],
    "sum": pool.submit(sum, [1, 2, 3]).result(),
    "tracker": (tracker := resource_tracker._resource_tracker._pid),
    "tracker_parent": int(open(f"/proc/{tracker}/stat").read().rsplit(")", 1)[1].split()[1]),
    "tracker_name": open(f"/proc/{tracker}/comm").read().strip(),
    "tracker_files": sorted(os.readlink(f"/proc/{tracker}/fd/{fd}") for fd in os.listdir(f"/proc/{tracker}/fd")),
    "tracker_cmdline": open(f"/proc/{tracker}/cmdline").read(),
    "tracker_fd": os.readlink(f"/proc/self/fd/{resource_tracker.getfd()}"),
}), flush=True)
pool.shutdown()
"""

THREADED = """
import threading, time
from multiprocessing import forkserver, resource_tracker
from aggregator.processes import fork_forkserver, parse_pool

threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
print(fork_forkserver(), forkserver._forkserver._forkserver_pid)
pool = parse_pool(1)
print(pool.submit(sum, [4, 5]).result())
server = forkserver._forkserver._forkserver_pid
print("from multiprocessing.forkserver import main" in open(f"/proc/{server}/cmdline").read())
tracker = resource_tracker._resource_tracker._pid
print("from multiprocessing.resource_tracker import main" in open(f"/proc/{tracker}/cmdline").read())
pool.shutdown()
"""


def _run(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_forkserver_is_a_fork_of_the_process_and_its_children_work() -> None:
    (line,) = _run(FORKED)
    seen = json.loads(line)
    assert seen["forked"] is True
    assert seen["again"] is False  # one forkserver: a second call leaves it be
    assert seen["server_cmdline"] == seen["own_cmdline"]  # not a new ``python -c ... forkserver.main``
    assert seen["server_parent"] != seen["server"]
    assert seen["worker_parent"] == seen["server"]
    assert seen["worker_name"] == "cf-parse"
    assert seen["sum"] == 6
    # Nothing the process had open but its standard streams (a database, a socket) stays open in it.
    assert seen["held"] not in seen["server_files"]
    assert any(name.startswith("socket:") for name in seen["server_files"])  # its own listening socket
    assert ends_within(seen["server"])  # it ended with the process that forked it


def test_the_resource_tracker_is_a_fork_that_reads_only_its_pipe_and_ends_with_the_process() -> None:
    (line,) = _run(FORKED)
    seen = json.loads(line)
    assert seen["tracker_name"] == "cf-tracker"
    assert seen["tracker_cmdline"] == seen["own_cmdline"]  # not a new ``python -c ... resource_tracker``
    assert seen["tracker_parent"] == seen["pid"]
    assert seen["tracker_fd"].startswith("pipe:")
    # Standard streams (stdin and stdout closed by the tracker) and the read end of the pipe the process writes to.
    assert seen["tracker_fd"] in seen["tracker_files"]
    assert seen["held"] not in seen["tracker_files"]
    assert not any(name.startswith("socket:") for name in seen["tracker_files"])
    assert ends_within(seen["tracker"])


def test_a_process_with_threads_starts_its_forkserver_the_usual_way() -> None:
    assert _run(THREADED)[0] == "False None"
    assert _run(THREADED)[1:] == ["9", "True", "True"]
