"""Loopback networking helpers shared by every integration test.

Public: free_port(), listen_range(), wait_port(), wait_until(), read_log(),
terminate(), TempDir, TIME_SCALE.
Only loopback addresses are ever used (127.0.0.0/8): tests never touch
another network.
"""
import collections
import errno
import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

LOOPBACK = "127.0.0.1"
# Ports handed out in this process: a port is never given twice, even if the
# first user has not bound it yet (two fixtures asking back to back). The
# newest PORT_LOCKS_HELD also hold an flock on a file in PORT_LOCK_DIR, so two
# test runs on one machine (or a run and its netns children) never pick the
# same port either; older ones belong to servers long stopped.
_given = set()
_locks = collections.deque()   # open lock-file descriptors, oldest first
PORT_LOCK_DIR = os.path.join(tempfile.gettempdir(), "postern-test-ports")
PORT_LOCKS_HELD = 256
PORT_TRIES = 200
PORT_LOW = 10000   # below: well-known and registered services
# Every bounded wait is an upper limit, never a speed assertion: a slower
# build (ASan: POSTERN_TEST_TIME_SCALE=3) or a busy machine may stretch them.
TIME_SCALE = max(1.0, float(os.environ.get("POSTERN_TEST_TIME_SCALE") or 1))


def listen_range():
    """Where test servers listen: below the kernel's ephemeral range, so an
    outgoing connection (Postern to a backend, a client to Postern) can never
    take a port between our pick and the server's bind. None when the
    ephemeral range leaves no room; then the kernel picks (bind to 0)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if eph_low - 1 - PORT_LOW < 1000:
        return None
    return PORT_LOW, eph_low - 1


def _candidate(kind, host, rng):
    if rng is None:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    return random.randint(*rng)


def _bindable(port, host):
    """Nothing has this port, TCP or UDP, right now (unbound binds both),
    on host nor on ::1 (a test may listen on both loopbacks; a machine
    without IPv6 skips that check)."""
    for fam, addr in ((socket.AF_INET, host), (socket.AF_INET6, "::1")):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            try:
                with socket.socket(fam, kind) as s:
                    s.bind((addr, port))
            except OSError as e:
                if fam == socket.AF_INET6 and e.errno in (errno.EADDRNOTAVAIL,
                                                          errno.EAFNOSUPPORT):
                    break
                return False
    return True


def _reserve(port):
    """Take the cross-process lock for port; False if another process has it."""
    os.makedirs(PORT_LOCK_DIR, exist_ok=True)
    fd = os.open(os.path.join(PORT_LOCK_DIR, str(port)), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _given.add(port)
    _locks.append(fd)
    if len(_locks) > PORT_LOCKS_HELD:
        os.close(_locks.popleft())
    return True


def free_port(kind=socket.SOCK_STREAM, host=LOOPBACK):
    """A loopback port free for both TCP and UDP right now, outside the
    ephemeral range, never handed out before by this process nor held by
    another test process. `kind` is kept for callers; both are checked.
    Bounded: PORT_TRIES tries."""
    rng = listen_range()
    for _ in range(PORT_TRIES):
        port = _candidate(kind, host, rng)
        if port in _given or not _bindable(port, host):
            continue
        if _reserve(port):
            return port
    raise RuntimeError("no free loopback port after %d tries" % PORT_TRIES)


def wait_until(pred, timeout=10.0, interval=0.05, what="condition"):
    """Poll pred() until it returns a true value (returned), or raise
    TimeoutError after `timeout` seconds (times TIME_SCALE). The only way
    tests wait."""
    timeout *= TIME_SCALE
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def read_log(path):
    """A server's log file as text ("" before it exists); bytes that are
    not UTF-8 are replaced, never fatal."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def terminate(proc, timeout=10.0):
    """SIGTERM to a Popen still running, wait up to timeout (times
    TIME_SCALE), then SIGKILL. Returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout * TIME_SCALE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


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
