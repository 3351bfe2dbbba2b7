"""Authentication-Results hygiene end to end (RFC 8601 section 5): a message
goes client -> `postern serve` -> a capture backend (aiosmtpd), and we read
the exact bytes delivered. Forged Authentication-Results claiming our
authserv-id (any case, quoted, behind comments, folded) are gone; those of
other hosts stay; exactly one header of ours is on top with the real
verdicts; the DKIM signature still verifies downstream (dkimpy).
"""
import email
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time

import dkim
import pytest
from aiosmtpd.controller import Controller

import authmail as am
from dnszone import Zone, free_port


def wait_until(pred, timeout, what):
    """Poll (bounded) until pred() is true."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting for " + what)
        time.sleep(0.05)


def port_open(port, proc):
    if proc.poll() is not None:
        raise RuntimeError("postern serve exited with %s" % proc.returncode)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class Capture:
    """The backend: stores each message's bytes."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(envelope.original_content or envelope.content)
        return "250 2.0.0 Ok: captured"


@pytest.fixture(scope="module")
def key():
    return am.rsa_key(2048)


@pytest.fixture(scope="module")
def gateway(key):
    recs = [("sel._domainkey.example.org", "TXT", am.dkim_txt(key)),
            ("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")]
    tmp = tempfile.mkdtemp(prefix="postern-authres-")
    with Zone(recs, zones=(), timeout_zones=()) as dns:
        cap = Capture()
        backend = Controller(cap, hostname="127.0.0.1", port=free_port())
        backend.start()
        port = free_port()
        os.makedirs(os.path.join(tmp, "spool"))
        conf = am.write_conf(
            os.path.join(tmp, "postern.conf"), "127.0.0.1:%d" % dns.port,
            # a second [proxy] section adds keys to the first
            "[proxy]\nlisten = 127.0.0.1:%d\nbackend = 127.0.0.1:%d\nspool_dir = %s\n"
            "[db]\npath = %s\n[web]\nlisten = 127.0.0.1:%d\n"
            % (port, backend.port, os.path.join(tmp, "spool"),
               os.path.join(tmp, "postern.db"), free_port()))
        log = open(os.path.join(tmp, "postern.log"), "w")
        proc = subprocess.Popen([am.POSTERN, "serve", "-c", conf], stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: port_open(port, proc), 15, "postern to listen")
            yield {"port": port, "cap": cap, "key": key}
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            log.close()
            backend.stop()
            shutil.rmtree(tmp, ignore_errors=True)


def send(gw, msg, mail_from="alice@example.org"):
    n = len(gw["cap"].messages)
    with smtplib.SMTP("127.0.0.1", gw["port"], timeout=30) as s:
        s.ehlo("client.example.net")
        s.sendmail(mail_from, ["bob@example.net"], msg)
    wait_until(lambda: len(gw["cap"].messages) > n, 15, what="delivery")
    return gw["cap"].messages[n]


FORGED = [
    "Authentication-Results: mx.test.example; dkim=pass header.d=bank.example",
    "authentication-results: MX.TEST.EXAMPLE.; dmarc=pass header.from=bank.example",
    "Authentication-Results: (trust me) \"mx.test.example\"; spf=pass",
    "Authentication-Results:\r\n\tmx.test.example;\r\n\tdkim=pass (folded)",
]
OTHER = "Authentication-Results: relay.example.net; spf=pass smtp.mailfrom=x@y.example"


def ar_fields(raw):
    m = email.message_from_bytes(raw)
    return [v for k, v in m.items() if k.lower() == "authentication-results"]


def test_forged_results_removed_ours_on_top(gateway):
    msg = am.sign(am.message(frm="a@example.org", extra=FORGED + [OTHER]), gateway["key"])
    got = send(gateway, msg, mail_from="")
    head = got.split(b"\r\n\r\n", 1)[0]
    assert b"bank.example" not in head
    assert b"trust me" not in head and b"(folded)" not in head
    ars = ar_fields(got)
    ours = [v for v in ars if v.strip().lower().startswith("mx.test.example")]
    assert len(ours) == 1, ars
    assert "dkim=pass" in ours[0] and "header.d=example.org" in ours[0]
    assert "dmarc=pass" in ours[0] and "header.from=example.org" in ours[0]
    # ours comes before every header the client wrote (after our Received)
    assert ars[0] == ours[0]
    assert head.index(b"Authentication-Results: mx.test.example;") < head.index(b"DKIM-Signature")
    # someone else's claim is left for downstream to judge
    assert any(v.strip().startswith("relay.example.net") for v in ars)


def test_signature_still_verifies_downstream(gateway):
    msg = am.sign(am.message(frm="a@example.org", extra=FORGED), gateway["key"])
    got = send(gateway, msg, mail_from="")
    pub = am.dkim_txt(gateway["key"]).encode()
    assert dkim.verify(got, dnsfunc=lambda name, timeout=5: pub)


def test_unsigned_gets_dkim_none(gateway):
    got = send(gateway, am.message(frm="a@elsewhere.example"),
               mail_from="x@elsewhere.example")
    ours = [v for v in ar_fields(got) if v.strip().startswith("mx.test.example")]
    assert len(ours) == 1 and "dkim=none" in ours[0]
