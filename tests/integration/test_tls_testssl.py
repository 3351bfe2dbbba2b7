"""testssl.sh's verdict on both of Postern's TLS ends with the default
settings: SMTP STARTTLS (OpenSSL, proxy.tls_*) and the dashboard's HTTPS
(libmicrohttpd over GnuTLS, web.tls_priorities).

What must hold on each: no SSLv2/SSLv3/TLS 1.0/TLS 1.1; TLS 1.2 and 1.3; no
CBC suite and no static-RSA key exchange among the offered ciphers; the
server's cipher order; client-initiated renegotiation refused; and no
vulnerability flagged.

One testssl run per target for the whole module (a run takes minutes). It
runs in a network namespace of its own (harness/nsrelay.py) that reaches
Postern's port and nothing else, with --nodns none and without --phone-out:
it cannot look anything up on the Internet.
"""
import json
import os
import re
import subprocess
import time

import pytest

from harness import TIME_SCALE, Postern, free_port, make_cert, wait_port
from harness.nsrelay import run_isolated


# -p protocols, -s cipher categories, -P server order (which, with a server
# order, lists every cipher offered per protocol), -U vulnerabilities
# (renegotiation included). -E would list the ciphers too, at twice the
# time of all the rest together.
TESTSSL = ["testssl", "--quiet", "--color", "0", "--nodns", "none", "--warnings", "off",
           "--connect-timeout", "10", "--openssl-timeout", "10",
           "-p", "-s", "-P", "-U"]
TESTSSL_TIMEOUT = 900
# The first test of each target waits for its run (module fixture): more
# than make's per-test --timeout.
# testssl comes with `make test` (.ci/deps TEST): no skipping without it.
pytestmark = pytest.mark.timeout(TESTSSL_TIMEOUT + 120)
BAD_SEVERITY = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
# Findings every complete run has: their absence means testssl did not get
# through, not that all is well.
MUST_HAVE = ("TLS1_2", "TLS1_3", "cipher_order", "cipherorder_TLSv1_2",
             "cipherorder_TLSv1_3", "secure_client_renego", "LUCKY13", "ROBOT",
             "cipherlist_AVERAGE")


@pytest.fixture(scope="module")
def tls_postern(moddir, unbound):
    cert, key = make_cert(moddir.join("tls"))
    p = Postern(moddir.join("postern"), "127.0.0.1:%d" % free_port(), unbound.addr,
                conf={"proxy.tls_cert": cert, "proxy.tls_key": key,
                      "web.tls_cert": cert, "web.tls_key": key})
    p.start()
    try:
        yield p
    finally:
        p.stop()


def _testssl(moddir, name, port, target_args):
    out = moddir.join("testssl-%s.json" % name)
    if os.path.exists(out):
        os.unlink(out)
    r = run_isolated(TESTSSL + ["--jsonfile", out] + target_args, port, moddir.path,
                     TESTSSL_TIMEOUT)
    assert os.path.exists(out), "testssl wrote no JSON (exit %d):\n%s%s" % (
        r.returncode, r.stdout[-4000:], r.stderr[-2000:])
    with open(out) as f:
        findings = json.load(f)
    ids = {f["id"] for f in findings}
    missing = [i for i in MUST_HAVE if i not in ids]
    assert not missing, "testssl did not get through (%s missing):\n%s" % (
        missing, r.stdout[-4000:])
    return findings


@pytest.fixture(scope="module")
def smtp_findings(tls_postern, moddir):
    return _testssl(moddir, "smtp", tls_postern.port,
                    ["--starttls", "smtp", "127.0.0.1:%d" % tls_postern.port])


@pytest.fixture(scope="module")
def web_findings(tls_postern, moddir):
    return _testssl(moddir, "web", tls_postern.web_port, ["127.0.0.1:%d" % tls_postern.web_port])


@pytest.fixture(params=["smtp", "web"])
def target(request):
    """One TLS end: its name, port, how to reach it with s_client, and
    testssl's findings there."""
    p = request.getfixturevalue("tls_postern")
    smtp = request.param == "smtp"
    return {"name": request.param,
            "port": p.port if smtp else p.web_port,
            "s_client": ["-starttls", "smtp"] if smtp else [],
            "findings": request.getfixturevalue(request.param + "_findings")}


@pytest.fixture
def findings(target):
    return target["findings"]


def _one(findings, fid):
    got = [f for f in findings if f["id"] == fid]
    assert len(got) == 1, "%s: %r" % (fid, got)
    return got[0]["finding"]


def _ciphers(findings, proto):
    """OpenSSL names of the ciphers offered for proto ("TLSv1_2"), in the
    server's order (-P)."""
    return _one(findings, "cipherorder_" + proto).split()


def test_protocols_tls12_and_tls13_only(findings):
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert _one(findings, old).startswith("not offered"), old
    assert _one(findings, "TLS1_2") == "offered"
    assert _one(findings, "TLS1_3").startswith("offered")


def test_no_cbc_nor_weak_cipher_categories(findings):
    for cat in ("NULL", "aNULL", "EXPORT", "LOW", "3DES_IDEA", "AVERAGE"):
        assert _one(findings, "cipherlist_" + cat).startswith("not offered"), cat
    ciphers = _ciphers(findings, "TLSv1_2") + _ciphers(findings, "TLSv1_3")
    assert len(ciphers) >= 4, ciphers
    cbc = [c for c in ciphers if not re.search(r"GCM|CHACHA20_POLY1305|CHACHA20-POLY1305", c)]
    assert not cbc, cbc
    assert "not vulnerable" in _one(findings, "LUCKY13")


def test_forward_secret_key_exchange_only(findings):
    """No static RSA: every TLS 1.2 cipher is ECDHE (TLS 1.3 always is)."""
    tls12 = _ciphers(findings, "TLSv1_2")
    assert tls12
    static = [c for c in tls12 if not c.startswith("ECDHE-")]
    assert not static, static
    assert _one(findings, "ROBOT") == "not vulnerable, no RSA key transport cipher"


def test_server_cipher_order(findings):
    assert _one(findings, "cipher_order") == "server"


def _renegotiation_answer(target):
    """Our own probe: TLS 1.2, then a client-initiated renegotiation ("R" to
    openssl s_client, stdin kept open for a while). Returns what the server
    sent after the client's new ClientHello, as s_client -msg shows it."""
    proc = subprocess.Popen(["openssl", "s_client", "-no_tls1_3", "-msg", "-connect",
                             "127.0.0.1:%d" % target["port"]] + target["s_client"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    time.sleep(2 * TIME_SCALE)      # the first handshake
    proc.stdin.write("R\n")
    proc.stdin.flush()
    time.sleep(3 * TIME_SCALE)      # the server's answer, before stdin ends
    try:
        out, _ = proc.communicate(timeout=20 * TIME_SCALE)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    assert "RENEGOTIATING" in out, out[-3000:]
    return out.split("RENEGOTIATING", 1)[1]


# testssl 3.0.x judges client renegotiation by openssl s_client's exit code;
# a server that answers the renegotiation ClientHello with close_notify and
# closes (GnuTLS under libmicrohttpd) makes s_client exit 0, which its HTTP
# branch reports as this (testssl.sh issues #1725 and #2038).
RENEGO_FALSE_POSITIVE = "VULNERABLE, DoS threat"


def _renegotiation_refused(target):
    """True when the server did no second handshake: no ServerHello came
    back after the client's renegotiation ClientHello."""
    after = _renegotiation_answer(target)
    assert "ClientHello" in after, after
    return "ServerHello" not in after


def _renego_verdict_ok(target):
    verdict = _one(target["findings"], "secure_client_renego")
    if "not vulnerable" in verdict:
        return True
    return (target["name"] == "web" and verdict == RENEGO_FALSE_POSITIVE and
            _renegotiation_refused(target))


def test_client_renegotiation_refused(target):
    assert _renegotiation_refused(target)
    assert _renego_verdict_ok(target), _one(target["findings"], "secure_client_renego")
    assert _one(target["findings"], "secure_renego").startswith("supported")


def test_no_vulnerability_flagged(target):
    bad = [(f["id"], f["severity"], f["finding"]) for f in target["findings"]
           if f["severity"] in BAD_SEVERITY and
           not (f["id"] == "secure_client_renego" and _renego_verdict_ok(target))]
    assert not bad, bad


PROBE = r"""
import socket, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), 5)
print("relayed:", s.recv(64).decode().strip())
for host in ("192.0.2.1", "1.1.1.1"):
    try:
        socket.create_connection((host, 53), 3)
        print("reached", host)
    except OSError as e:
        print("unreachable", host, e.errno)
"""


def test_isolation_reaches_postern_and_nothing_else(tls_postern, moddir):
    """What testssl runs in: Postern's port is there, the world is not."""
    r = run_isolated(["python3", "-c", PROBE, str(tls_postern.port)], tls_postern.port,
                     moddir.path, 60)
    assert r.returncode == 0, r.stderr
    assert "relayed: 220 " in r.stdout, r.stdout
    assert "reached" not in r.stdout and r.stdout.count("unreachable") == 2, r.stdout


def test_renegotiation_probe_sees_a_renegotiation(moddir):
    """The probe above can fail: against a server that renegotiates
    (openssl s_server -client_renegotiation) it says so."""
    cert, key = make_cert(moddir.join("s_server"))
    port = free_port()
    server = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                               "-cert", cert, "-key", key, "-client_renegotiation"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        tg = {"name": "web", "port": port, "s_client": [],
              "findings": [{"id": "secure_client_renego", "finding": RENEGO_FALSE_POSITIVE}]}
        assert not _renegotiation_refused(tg)
        assert not _renego_verdict_ok(tg)
    finally:
        server.kill()
        server.wait(10)
