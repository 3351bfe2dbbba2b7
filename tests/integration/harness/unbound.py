"""A private unbound (Debian's) serving test zones on a loopback port.

Public: Unbound, BlackHole.

    with TempDir() as d:
        bh = BlackHole()                       # a DNS server that never answers
        u = Unbound(d.join("dns"),
                    local_data=['example.org. TXT "v=spf1 -all"'],
                    auth_zones={"dkim.test.": ZONE_FILE_TEXT},
                    blackhole_zones=["slow.test."], blackhole=bh)
        u.start()        # returns once unbound answers
        ...  Postern gets dns.resolver = u.addr ("127.0.0.1:PORT")
        u.stop(); bh.close()

Every name not in the given data is NXDOMAIN: the root zone is `static`, so
unbound never recurses and nothing leaves the machine. Names listed in
blackhole_zones are forwarded to the BlackHole's UDP port, whose socket reads
and drops every query (the "DNS server that times out" case); bh.queries
counts what it swallowed.
"""
import os
import signal
import socket
import subprocess
import threading

import dns.message
import dns.query
import dns.rcode

from .net import LOOPBACK, free_port, listen_range, wait_until


def _quote(s):
    return '"%s"' % s.replace('"', '\\"')


class BlackHole:
    """A UDP (and TCP) socket on a loopback port that accepts DNS queries and
    never answers. Owned by the test; close() it (idempotent)."""

    def __init__(self, port=None, host=LOOPBACK):
        self.host = host
        self.port = port or free_port(socket.SOCK_DGRAM)
        self.queries = 0
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind((host, self.port))
        self._udp.settimeout(0.2)
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._tcp.bind((host, self.port))
        self._tcp.listen(64)  # accepted by the kernel, never read: a stall
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()

    @property
    def addr(self):
        return "%s@%d" % (self.host, self.port)

    def _drain(self):
        while not self._stop.is_set():
            try:
                self._udp.recvfrom(65535)
                self.queries += 1
            except socket.timeout:
                continue
            except OSError:
                return

    def close(self):
        if self._stop.is_set():
            return
        self._stop.set()
        self._t.join(2)
        self._udp.close()
        self._tcp.close()


class Unbound:
    """One unbound process. `local_data` are unbound local-data strings
    (owner TTL? class? type rdata, TXT strings quoted; a long TXT may be
    several "..." strings). `local_zones` maps extra zone names to a
    local-zone type (e.g. {"test.": "static"}). `auth_zones` maps a zone name
    to RFC 1035 zone-file text (needs an SOA). `blackhole_zones` are names
    forwarded to `blackhole` (a BlackHole) so their queries time out.
    `extra` is raw text appended to the server: clause."""

    def __init__(self, directory, local_data=(), local_zones=None,
                 auth_zones=None, blackhole_zones=(), blackhole=None, extra=""):
        self.dir = directory
        os.makedirs(self.dir, exist_ok=True)
        self.local_data = list(local_data)
        self.local_zones = dict(local_zones or {})
        self.auth_zones = dict(auth_zones or {})
        self.blackhole_zones = list(blackhole_zones)
        self.blackhole = blackhole
        if self.blackhole_zones and blackhole is None:
            raise ValueError("blackhole_zones need a BlackHole")
        self.extra = extra
        self.port = free_port()
        self.conf = os.path.join(self.dir, "unbound.conf")
        self.logfile = os.path.join(self.dir, "unbound.log")
        self.proc = None

    @property
    def addr(self):
        """host:port, the form Postern's dns.resolver takes."""
        return "%s:%d" % (LOOPBACK, self.port)

    def _config(self):
        d = self.dir
        L = ["server:",
             "  interface: %s" % LOOPBACK,
             "  port: %d" % self.port,
             "  do-ip6: no",
             "  do-not-query-localhost: no",
             "  chroot: \"\"",
             "  username: \"\"",
             "  directory: %s" % _quote(d),
             "  pidfile: %s" % _quote(os.path.join(d, "unbound.pid")),
             "  use-syslog: no",
             "  logfile: %s" % _quote(self.logfile),
             "  verbosity: 1",
             "  num-threads: 1",
             "  so-reuseport: no",
             "  module-config: \"iterator\"",
             "  qname-minimisation: no",
             "  outgoing-range: 64",
             # Its queries to a BlackHole leave from random ports: keep them
             # out of the range free_port() hands to test servers.
             "  outgoing-port-avoid: \"0-%d\"" % (listen_range() or (0, 1023))[1],
             "  num-queries-per-thread: 512",
             "  access-control: 127.0.0.0/8 allow",
             # Root static: anything not given below is NXDOMAIN, never
             # resolved on the Internet.
             "  local-zone: \".\" static"]
        for name, kind in self.local_zones.items():
            L.append("  local-zone: %s %s" % (_quote(name), kind))
        # Names served by auth-zones or forwarded must escape the static root.
        for name in list(self.auth_zones) + self.blackhole_zones:
            L.append("  local-zone: %s transparent" % _quote(name))
        for rr in self.local_data:
            L.append("  local-data: '%s'" % rr.replace("'", "\\'"))
        if self.extra:
            L.append(self.extra)
        for i, (name, text) in enumerate(self.auth_zones.items()):
            zf = os.path.join(d, "zone%d.db" % i)
            with open(zf, "w") as f:
                f.write(text)
            L += ["auth-zone:", "  name: %s" % _quote(name),
                  "  zonefile: %s" % _quote(zf),
                  "  for-downstream: yes", "  for-upstream: yes",
                  "  fallback-enabled: no"]
        for name in self.blackhole_zones:
            L += ["forward-zone:", "  name: %s" % _quote(name),
                  "  forward-addr: %s" % self.blackhole.addr]
        L += ["remote-control:", "  control-enable: no", ""]
        return "\n".join(L)

    def start(self, timeout=15.0):
        with open(self.conf, "w") as f:
            f.write(self._config())
        chk = subprocess.run(["unbound-checkconf", self.conf],
                             capture_output=True, text=True)
        if chk.returncode != 0:
            raise RuntimeError("unbound-checkconf: %s%s" % (chk.stdout, chk.stderr))
        self._err = open(os.path.join(self.dir, "unbound.stderr"), "w")
        self.proc = subprocess.Popen(["unbound", "-d", "-c", self.conf],
                                     stdout=self._err, stderr=subprocess.STDOUT)
        try:
            wait_until(self._answers, timeout, interval=0.1, what="unbound to answer")
        except BaseException:
            self.stop()   # a start that gives up leaves nothing running
            raise
        return self

    def _answers(self):
        if self.proc.poll() is not None:
            raise RuntimeError("unbound exited %s: %s" % (self.proc.returncode, self.log()))
        q = dns.message.make_query("ready.invalid.", "A")
        try:
            dns.query.udp(q, LOOPBACK, port=self.port, timeout=0.3)
            return True
        except (dns.exception.Timeout, OSError):
            return False

    def query(self, name, rdtype="A", timeout=2.0):
        """Ask our unbound directly (dnspython): the response message."""
        q = dns.message.make_query(name, rdtype)
        return dns.query.udp(q, LOOPBACK, port=self.port, timeout=timeout)

    def log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        self._err.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
