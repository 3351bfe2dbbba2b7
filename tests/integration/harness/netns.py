"""Running a test in a fresh network (and mount) namespace.

Public: IN_NETNS, netns_argv(), trap_system_resolver().

A test marked `@pytest.mark.netns` is re-executed by conftest.py as its own
pytest process inside `unshare -n -m sh -c 'ip link set lo up && exec ...'`:
only a private loopback exists there, so nothing the test starts can reach
any network, and every server it needs (unbound, Postfix, capture, Postern)
is started inside the same namespace by the test's fixtures. The mount
namespace lets a test replace /etc/resolv.conf for itself alone.
"""
import os
import subprocess
import tempfile

from .unbound import BlackHole

IN_NETNS = os.environ.get("POSTERN_NETNS") == "1"


def netns_argv(argv):
    """argv wrapped to run in a fresh net+mount namespace with lo up."""
    return ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c",
            'ip link set lo up && exec "$@"', "postern-netns"] + list(argv)


def trap_system_resolver():
    """Inside a netns only: bind-mount a resolv.conf naming 127.0.0.1 and
    listen on 127.0.0.1:53 with a BlackHole. Anything that asks the system
    resolver (glibc res_*, getaddrinfo) instead of dns.resolver is counted in
    the returned BlackHole's .queries. Returns (blackhole, undo)."""
    if not IN_NETNS:
        raise RuntimeError("trap_system_resolver() only runs in a netns test")
    fd, path = tempfile.mkstemp(prefix="resolv-")
    with os.fdopen(fd, "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    os.chmod(path, 0o644)
    subprocess.run(["mount", "--bind", path, "/etc/resolv.conf"], check=True)
    bh = BlackHole(port=53)

    def undo():
        bh.close()
        subprocess.run(["umount", "/etc/resolv.conf"], check=False)
        os.unlink(path)
    return bh, undo
