"""Loopback networking helpers shared by every integration test.

Public: free_port(), wait_port(), wait_until(), TempDir.
Only loopback addresses are ever used (127.0.0.0/8): tests never touch
another network.
"""
import os
import shutil
import socket
import tempfile
import time

LOOPBACK = "127.0.0.1"
# Ports handed out in this process: a port is never given twice, even if the
# first user has not bound it yet (two fixtures asking back to back).
_given = set()


def free_port(kind=socket.SOCK_STREAM, host=LOOPBACK):
    """A loopback port free for both TCP and UDP right now (unbound binds
    both), never handed out before by this process. Bounded: 200 tries."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port in _given:
            continue
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        try:
            with socket.socket(socket.AF_INET, other) as s2:
                s2.bind((host, port))
        except OSError:
            continue
        _given.add(port)
        return port
    raise RuntimeError("no free loopback port after 200 tries")


def wait_until(pred, timeout=10.0, interval=0.05, what="condition"):
    """Poll pred() until it returns a true value (returned), or raise
    TimeoutError after `timeout` seconds. The only way tests wait."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def port_open(port, host=LOOPBACK):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(port, host=LOOPBACK, timeout=15.0, proc=None):
    """Wait until something accepts TCP on host:port. If `proc` (a Popen)
    exits meanwhile, fail at once instead of waiting out the timeout."""
    def ready():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening on %d"
                               % (proc.returncode, port))
        return port_open(port, host)
    wait_until(ready, timeout, what="port %s:%d" % (host, port))


class TempDir:
    """A private directory removed on cleanup() (also usable as a context
    manager). Set POSTERN_KEEP_TMP=1 to keep it for post-mortems."""

    def __init__(self, prefix="postern-test-"):
        self.path = tempfile.mkdtemp(prefix=prefix)
        os.chmod(self.path, 0o755)  # postfix's unprivileged daemons walk into it

    def join(self, *parts):
        return os.path.join(self.path, *parts)

    def cleanup(self):
        if os.environ.get("POSTERN_KEEP_TMP"):
            return
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def __str__(self):
        return self.path
