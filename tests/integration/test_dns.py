"""The resolver (dns/) end to end: `postern check` against a real unbound,
inside a network namespace with nothing but loopback, so any question sent
anywhere but the configured dns.resolver (system resolver, root servers)
would fail and show.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_dns.py
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dnszone import POSTERN, Zone  # noqa: E402

RECORDS = [
    ("ok.d.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all"),
    ("mx.d.test", "TXT", "v=spf1 mx -all"),
    ("mx.d.test", "MX", "10 mail.d.test."),
    ("mail.d.test", "A", "192.0.2.9"),
    ("mail.d.test", "AAAA", "2001:db8::9"),
]


def run_check(conf, ip, mail_from):
    p = subprocess.run([POSTERN, "check", "-c", conf, "--ip", ip, "--helo", "mail.d.test",
                        "--from", mail_from, "--only", "spf"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["spf"]


def scenario():
    """Run inside the namespace: returns {name: result}."""
    out = {}
    with Zone(RECORDS, timeout_zones=("timeout.test.",)) as z:
        d = tempfile.mkdtemp()
        try:
            conf = z.write_conf(os.path.join(d, "p.conf"), dns={"timeout": "500"})
            out["pass"] = run_check(conf, "192.0.2.1", "a@ok.d.test")["result"]
            out["fail"] = run_check(conf, "198.51.100.1", "a@ok.d.test")["result"]
            out["mx6"] = run_check(conf, "2001:db8::9", "a@mx.d.test")["result"]
            out["none"] = run_check(conf, "192.0.2.1", "a@nothing.d.test")["result"]
            # a name outside every test zone: our unbound says NXDOMAIN; a
            # leak to the Internet would time out instead
            out["outside"] = run_check(conf, "192.0.2.1", "a@example.com")["result"]
            out["timeout"] = run_check(conf, "192.0.2.1", "a@x.timeout.test")["result"]
            # the resolver the config names is the only one asked: point it
            # at a port nobody serves and everything is temperror
            dead = z.write_conf(os.path.join(d, "dead.conf"),
                                dns={"resolver": "127.0.0.1:9", "timeout": "300"})
            out["dead"] = run_check(dead, "192.0.2.1", "a@ok.d.test")["result"]
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return out


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                    reason="needs root and util-linux unshare")
def test_resolver_in_loopback_only_namespace():
    p = subprocess.run(["unshare", "-n", "sh", "-c",
                        'ip link set lo up && exec "$0" "$1" --inside',
                        sys.executable, os.path.abspath(__file__)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got == {"pass": "pass", "fail": "fail", "mx6": "pass", "none": "none",
                   "outside": "none", "timeout": "temperror", "dead": "temperror"}


def test_namespace_has_no_other_route():
    """The proof above only holds if the namespace really has no way out."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and util-linux unshare")
    p = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up && ip route show"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.strip() == ""


if __name__ == "__main__" and "--inside" in sys.argv:
    print(json.dumps(scenario()))
