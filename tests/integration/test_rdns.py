"""The client's verified name (policy/rdns.c): PTR, then the name's address
must point back (forward-confirmed), as Postfix's smtpd does. The name
reaches the backend in XCLIENT NAME=, so Postfix logs it, and the
client_name rule target sees it.

Real parts: Debian's unbound serving the reverse and forward zones, a
private Postfix behind Postern, `postern check`, smtplib from 127.0.0.2."""
import json
import os
import subprocess

import pytest

from harness import POSTERN_BIN
from harness.client import smtp_client
from harness.mail import make_message

ZONES = {"test.": "static", "127.in-addr.arpa.": "static"}
DATA = [
    "client.example.test. A 127.0.0.2",
    "2.0.0.127.in-addr.arpa. PTR client.example.test.",
    # a PTR that names a host which does not point back
    "3.0.0.127.in-addr.arpa. PTR liar.example.test.",
    "liar.example.test. A 192.0.2.99",
]


@pytest.fixture
def dns(make_unbound):
    return make_unbound(local_zones=ZONES, local_data=DATA)


def check(p, ip):
    r = subprocess.run([POSTERN_BIN, "check", "-c", p.conf_path, "--ip", ip],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("ip,result,name", [
    ("127.0.0.2", "pass", "client.example.test"),
    ("127.0.0.3", "fail", "unknown"),     # PTR does not point back
    ("127.0.0.4", "none", "unknown"),     # no PTR at all
])
def test_verified_name(make_postern, capture, dns, ip, result, name):
    p = make_postern(capture.addr, resolver=dns.addr, start=False)
    p.write_config()
    d = check(p, ip)
    assert d["rdns"]["result"] == result, d
    assert d["client_name"] == name, d


def test_verified_name_reaches_postfix_in_xclient(make_postern, postfix, dns):
    p = make_postern(postfix.addr, resolver=dns.addr)
    s = smtp_client(p.port, source="127.0.0.2")
    assert s.sendmail("rdns@example.org", ["x@example.org"], make_message("rdns")) == {}
    s.quit()
    log = postfix.wait_log("from=<rdns@example.org>")
    qid = [l for l in log.splitlines() if "from=<rdns@example.org>" in l][0].split(": ")[1]
    client = [l for l in log.splitlines() if "%s: client=" % qid in l]
    assert client and "client=client.example.test[127.0.0.2]" in client[0], client


def test_client_name_rule_target_sees_verified_name(make_postern, capture, dns):
    p = make_postern(capture.addr, resolver=dns.addr, start=False)
    p.write_config()
    path = os.path.join(p.dir, "rules.txt")
    with open(path, "w") as f:
        f.write("named | client_name | /^client\\.example\\.test$/ | score 1.5\n")
    r = subprocess.run([POSTERN_BIN, "rules", "import", path, "-c", p.conf_path],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    d = check(p, "127.0.0.2")
    assert any(x["check"] == "rule" and "named" in x.get("reason", "")
               for x in d["results"]), d
    d = check(p, "127.0.0.3")
    assert not any(x["check"] == "rule" for x in d["results"]), d
