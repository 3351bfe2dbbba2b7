"""A private unbound for one test module: authoritative (local-data) for the
test zones, on a free loopback port, NXDOMAIN for every other name, and a
"timeout" zone forwarded to a loopback UDP port that never answers.

Nothing here reaches beyond loopback: the root is a static local zone, and
the only forwarders are 127.0.0.1 ports we opened ourselves.

    with Zone(records) as z:      # records: list of (name, type, rdata)
        z.port, z.write_conf(path, **postern_keys)
"""
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time

UNBOUND = "/usr/sbin/unbound"
POSTERN = os.path.join(os.path.dirname(__file__), "..", "..", "build", "postern")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def txt_rdata(value):
    """A TXT value (str, bytes, or a list of strings) in presentation form:
    character-strings of at most 255 bytes, quoted, odd bytes as \\DDD."""
    if isinstance(value, (list, tuple)):
        parts = [p.encode("latin-1") if isinstance(p, str) else p for p in value]
    else:
        raw = value.encode("latin-1") if isinstance(value, str) else value
        parts = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
    out = []
    for p in parts:
        s = ""
        for b in p:
            if b in (0x22, 0x5C) or b < 0x20 or b > 0x7E:
                s += "\\%03d" % b
            else:
                s += chr(b)
        out.append('"%s"' % s)
    return " ".join(out)


def name_presentation(name):
    """A domain name for local-data: spaces and odd bytes as \\DDD."""
    return "".join("\\%03d" % ord(c) if c in ' "\'\\;' or not c.isprintable() else c
                   for c in name)


def reverse_name(ip):
    return ipaddress.ip_address(ip).reverse_pointer


class Zone:
    def __init__(self, records, zones=("test.",), reverse=(), timeout_zones=("timeout.test.",)):
        self.records = records
        self.zones = zones
        self.reverse = reverse
        self.timeout_zones = timeout_zones
        self.dir = None
        self.proc = None
        self.silent = None

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="postern-dns-")
        self.silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.silent.bind(("127.0.0.1", 0))
        silent_port = self.silent.getsockname()[1]
        self.port = free_port()
        lines = [
            "server:",
            "  interface: 127.0.0.1",
            "  port: %d" % self.port,
            "  do-not-query-localhost: no",
            '  chroot: ""',
            '  username: ""',
            '  directory: "%s"' % self.dir,
            '  pidfile: "%s/unbound.pid"' % self.dir,
            "  use-syslog: no",
            '  logfile: "%s/unbound.log"' % self.dir,
            "  num-threads: 1",
            "  rrset-roundrobin: no",
            "  minimal-responses: yes",
            '  local-zone: "." static',
        ]
        for z in self.zones:
            lines.append('  local-zone: "%s" static' % z)
        for z in self.reverse:
            lines.append('  local-zone: "%s" static' % z)
        for z in self.timeout_zones:
            lines.append('  local-zone: "%s" transparent' % z)
        for name, rtype, rdata in self.records:
            if rtype == "TXT":
                rdata = txt_rdata(rdata)
            lines.append("  local-data: '%s. 300 IN %s %s'"
                         % (name_presentation(name.rstrip(".")), rtype, rdata))
        for z in self.timeout_zones:
            lines += ["forward-zone:", '  name: "%s"' % z,
                      "  forward-addr: 127.0.0.1@%d" % silent_port]
        lines += ["forward-zone:", '  name: "."', "  forward-addr: 127.0.0.1@%d" % silent_port]
        conf = os.path.join(self.dir, "unbound.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        chk = subprocess.run(["unbound-checkconf", conf], capture_output=True, text=True)
        if chk.returncode != 0:
            raise RuntimeError("unbound config: " + chk.stdout + chk.stderr)
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()
        return self

    def _wait_ready(self):
        """Bounded wait until unbound answers a UDP query on its port."""
        q = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
             b"\x04test\x00\x00\x06\x00\x01")
        deadline = time.monotonic() + 10
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError("unbound exited: " + self.proc.stderr.read().decode())
                try:
                    s.sendto(q, ("127.0.0.1", self.port))
                    s.recvfrom(512)
                    return
                except OSError:
                    continue
        raise RuntimeError("unbound did not answer within 10 s")

    def write_conf(self, path, **sections):
        """A postern config pointing dns.resolver at this unbound; extra
        keys as section={key: value}."""
        sec = {"dns": {"resolver": "127.0.0.1:%d" % self.port, "timeout": "1000"},
               "proxy": {"hostname": "mx.receiver.test"},
               "log": {"level": "warning"}}
        for k, v in sections.items():
            sec.setdefault(k, {}).update(v)
        with open(path, "w") as f:
            for s, kv in sec.items():
                f.write("[%s]\n" % s)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
        return path

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.silent is not None:
            self.silent.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
