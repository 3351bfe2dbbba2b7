"""The resolver (dns/) end to end: `postern check` against a real unbound,
inside a network namespace with nothing but loopback (the harness's netns
marker re-runs each test under `unshare -n`), with the system resolver
trapped: /etc/resolv.conf names 127.0.0.1:53, where a BlackHole counts every
question. With dns.resolver = host:port that trap must stay empty; with
dns.resolver = system it must fill (so the trap is known to work).

Run: /usr/bin/python3 -m pytest -q tests/integration/test_dns.py
"""
import json
import subprocess

import pytest

from dnszone import POSTERN, Zone
from harness import trap_system_resolver

pytestmark = pytest.mark.netns

RECORDS = [
    ("ok.d.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all"),
    ("mx.d.test", "TXT", "v=spf1 mx -all"),
    ("mx.d.test", "MX", "10 mail.d.test."),
    ("mail.d.test", "A", "192.0.2.9"),
    ("mail.d.test", "AAAA", "2001:db8::9"),
]


def spf(conf, ip, mail_from):
    p = subprocess.run([POSTERN, "check", "-c", conf, "--ip", ip, "--helo", "mail.d.test",
                        "--from", mail_from, "--only", "spf"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["spf"]["result"]


@pytest.fixture
def trap():
    bh, undo = trap_system_resolver()
    yield bh
    undo()


def test_only_the_configured_resolver_is_asked(trap, tmp_path):
    with Zone(RECORDS) as z:
        conf = z.write_conf(str(tmp_path / "p.conf"), dns={"timeout": "500"})
        assert spf(conf, "192.0.2.1", "a@ok.d.test") == "pass"
        assert spf(conf, "198.51.100.1", "a@ok.d.test") == "fail"
        assert spf(conf, "2001:db8::9", "a@mx.d.test") == "pass"
        assert spf(conf, "192.0.2.1", "a@nothing.d.test") == "none"
        # outside every test zone: our unbound says NXDOMAIN; a question
        # sent anywhere else would time out instead
        assert spf(conf, "192.0.2.1", "a@example.com") == "none"
        assert spf(conf, "192.0.2.1", "a@x.timeout.test") == "temperror"
        assert z.blackhole.queries > 0          # the timeout zone was asked
        assert trap.queries == 0                # the system resolver never was


def test_system_resolver_is_used_only_when_configured(trap, tmp_path):
    with Zone(RECORDS) as z:
        conf = z.write_conf(str(tmp_path / "p.conf"),
                            dns={"resolver": "system", "timeout": "300"})
        assert spf(conf, "192.0.2.1", "a@ok.d.test") == "temperror"
        assert trap.queries > 0


def test_dead_resolver_is_temperror_not_fallback(trap, tmp_path):
    with Zone(RECORDS) as z:
        conf = z.write_conf(str(tmp_path / "p.conf"),
                            dns={"resolver": "127.0.0.1:9", "timeout": "300"})
        assert spf(conf, "192.0.2.1", "a@ok.d.test") == "temperror"
        assert trap.queries == 0


def test_namespace_has_no_other_route():
    """The proofs above only hold if the namespace has no way out."""
    p = subprocess.run(["ip", "route", "show"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.strip() == ""
