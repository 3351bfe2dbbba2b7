"""STARTTLS: offered with a certificate, clean (nothing pipelined in
plaintext after STARTTLS is executed), and EHLO must be repeated."""
import os
import smtplib
import ssl
import subprocess

import pytest

from harness import RawSMTP, make_cert, make_message, wait_until


@pytest.fixture
def tls_postern(make_postern, capture, workdir):
    cert, key = make_cert(workdir.join("tls"))
    return make_postern(capture.addr, conf={"proxy.tls_cert": cert, "proxy.tls_key": key})


def test_starttls_offered_and_works_smtplib(tls_postern, capture):
    s = smtplib.SMTP("127.0.0.1", tls_postern.port, timeout=15)
    s.ehlo("tls.test")
    assert s.has_extn("starttls")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s.starttls(context=ctx)
    code, _ = s.ehlo("tls.test")
    assert code == 250 and not s.has_extn("starttls")   # not offered twice
    assert s.sendmail("a@example.org", ["b@example.org"], make_message("tls")) == {}
    s.quit()
    (m,) = capture.wait_messages(1)
    assert b"Subject: tls" in m.data


def test_swaks_tls(tls_postern, capture):
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % tls_postern.port, "--tls",
                        "--from", "a@example.org", "--to", "b@example.org",
                        "--header", "Subject: swaks-tls", "--timeout", "20"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert b"Subject: swaks-tls" in capture.wait_messages(1)[0].data


def test_plaintext_pipelined_after_starttls_is_discarded(tls_postern, capture):
    with RawSMTP(tls_postern.port) as c:
        c.ehlo()
        c.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n"
               b"RCPT TO:<victim@example.org>\r\nDATA\r\n")
        r = c.reply()
        assert r.code == 220, r
        leftover = c.starttls()
        assert leftover == b"", "plaintext replies after 220 STARTTLS: %r" % leftover
        # The injected commands must not have been executed: a fresh
        # session state, where MAIL needs a new EHLO.
        r = c.cmd("MAIL FROM:<real@example.org>")
        assert r.code == 503 and r.enhanced == "5.5.1", r
        r = c.ehlo("after.tls.test")
        assert "STARTTLS" not in [l[4:].upper() for l in r.lines]
        t = c.transaction("real@example.org", ["b@example.org"], make_message("post-tls"))
        assert t["final"].code == 250, t
    (m,) = capture.wait_messages(1)
    lines = capture.all_lines()
    assert not any(b"injected@evil.test" in l or b"victim@" in l for l in lines), lines
    assert m.mail_from.startswith(b"MAIL FROM:<real@example.org>")


def test_starttls_not_offered_without_cert(postern):
    with RawSMTP(postern.port) as c:
        c.ehlo()
        r = c.cmd("STARTTLS")
        assert r.code in (454, 502, 503), r


def test_starttls_with_parameter_is_syntax_error(tls_postern):
    with RawSMTP(tls_postern.port) as c:
        c.ehlo()
        assert c.cmd("STARTTLS now").code == 501


def _peer_cert(port):
    s = smtplib.SMTP("127.0.0.1", port, timeout=15)
    s.ehlo("tls.test")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s.starttls(context=ctx)
    der = s.sock.getpeercert(binary_form=True)
    s.quit()
    return der


def _der(cert_path):
    with open(cert_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def test_sighup_reads_renewed_certificate(make_postern, capture, workdir):
    """A renewed certificate under the same file names (certbot) is used by
    new handshakes after SIGHUP; a broken renewal keeps the running one."""
    cert, key = make_cert(workdir.join("tls"), cn="first.test")
    p = make_postern(capture.addr, conf={"proxy.tls_cert": cert, "proxy.tls_key": key})
    assert _peer_cert(p.port) == _der(cert)
    new_cert, new_key = make_cert(workdir.join("tls2"), cn="second.test")
    os.replace(new_cert, cert)
    os.replace(new_key, key)
    p.reload()
    wait_until(lambda: "configuration" in p.log() and _peer_cert(p.port) == _der(cert),
               20, what="the renewed certificate in use")
    with open(key, "w") as f:
        f.write("not a key\n")
    p.reload()
    wait_until(lambda: "keeping the running TLS certificate" in p.log(), 20,
               what="the broken key refused")
    assert _peer_cert(p.port) == _der(cert)
