"""Test zones as data: a list of (name, type, rdata) records served by the
harness's private unbound (harness.Unbound) on a free loopback port, with
every other name NXDOMAIN and the "timeout" zones forwarded to a
harness.BlackHole that never answers. Nothing here reaches beyond loopback.

    with Zone(records) as z:      # records: list of (name, type, rdata)
        z.port, z.write_conf(path, **postern_keys)

TXT rdata may be a str, bytes (any octets) or a list of character-strings;
names may hold spaces and other odd characters (RFC 7208 test cases do).
"""
import ipaddress
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TIME_SCALE, BlackHole, Unbound, free_port  # noqa: E402,F401

POSTERN = os.environ.get("POSTERN_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "postern")


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
        self.unbound = None
        self.blackhole = None

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="postern-dns-")
        self.blackhole = BlackHole()
        data = []
        for name, rtype, rdata in self.records:
            if rtype == "TXT":
                rdata = txt_rdata(rdata)
            data.append("%s. 300 IN %s %s" % (name_presentation(name.rstrip(".")), rtype, rdata))
        self.unbound = Unbound(
            os.path.join(self.dir, "dns"), local_data=data,
            local_zones={z: "static" for z in tuple(self.zones) + tuple(self.reverse)},
            blackhole_zones=list(self.timeout_zones), blackhole=self.blackhole,
            # answers in the order written (the PTR and MX limit cases)
            extra="  rrset-roundrobin: no\n  minimal-responses: yes")
        try:
            self.unbound.start()
        except Exception:
            self.__exit__()
            raise
        self.port = self.unbound.port
        return self

    def write_conf(self, path, **sections):
        """A postern config pointing dns.resolver at this unbound; extra
        keys as section={key: value}."""
        # 1 s keeps the timeout cases quick; a slower build scales it (a
        # real answer arriving late would flip a verdict).
        sec = {"dns": {"resolver": self.unbound.addr, "timeout": str(int(1000 * TIME_SCALE))},
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
        if self.unbound is not None:
            self.unbound.stop()
        if self.blackhole is not None:
            self.blackhole.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
