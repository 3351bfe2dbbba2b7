"""Run a client in a network namespace of its own that reaches one server,
and nothing else.

Public: NsRelay, run_isolated().

A tool that might look things up on the Internet (testssl.sh: DNS, CRLs,
OCSP responders) runs inside `unshare --net` with only a loopback there;
that loopback's 127.0.0.1:PORT is relayed through a Unix socket to the real
server's port in the test's namespace. Whatever else the tool tries to
reach, it cannot: there is no route. The relay copies bytes both ways and
changes nothing in them (TLS runs end to end).

Run as a script, this file is the relay's inner half:
    nsrelay.py PORT UNIXPATH -- ARGV...
listens on 127.0.0.1:PORT, connects each client to UNIXPATH, runs ARGV and
exits with its status.
"""
import os
import socket
import subprocess
import sys
import threading

from .net import TIME_SCALE


def _pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve(listener, connect):
    """Accept until the listener closes; each connection relayed to a new
    connect() both ways."""
    while True:
        try:
            c, _ = listener.accept()
        except OSError:
            return
        try:
            up = connect()
        except OSError:
            c.close()
            continue
        for x, y in ((c, up), (up, c)):
            threading.Thread(target=_pump, args=(x, y), daemon=True).start()


class NsRelay:
    """The outer half: a Unix socket at path, relayed to host:port."""

    def __init__(self, path, port, host="127.0.0.1"):
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.thread = threading.Thread(
            target=_serve, daemon=True,
            args=(self.listener, lambda: socket.create_connection((host, port), 10)))
        self.thread.start()

    def close(self):
        self.listener.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def run_isolated(argv, port, unix_dir, timeout, **kw):
    """Run argv in a fresh network namespace where 127.0.0.1:port is the
    server at 127.0.0.1:port here; nothing else is reachable. Returns the
    CompletedProcess (stdout and stderr captured as text)."""
    path = os.path.join(unix_dir, "relay-%d.sock" % port)
    relay = NsRelay(path, port)
    try:
        inner = [sys.executable, "-m", "harness.nsrelay", str(port), path, "--"] + list(argv)
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
        return subprocess.run(
            ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "nsrelay"] + inner,
            capture_output=True, text=True, timeout=timeout * TIME_SCALE, env=env, **kw)
    finally:
        relay.close()


def _main(args):
    port, path, sep, argv = int(args[0]), args[1], args[2], args[3:]
    assert sep == "--" and argv
    lis = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lis.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lis.bind(("127.0.0.1", port))
    lis.listen(64)

    def up():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        return s
    threading.Thread(target=_serve, args=(lis, up), daemon=True).start()
    rc = subprocess.call(argv)
    lis.close()
    return rc


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
