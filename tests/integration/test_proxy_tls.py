"""STARTTLS: offered with a certificate, clean (nothing pipelined in
plaintext after STARTTLS is executed), and EHLO must be repeated. The
profile (proxy.tls_*: versions, ciphers, server order, and how to widen
it), session tickets under rotating keys, and OCSP stapling. testssl's
verdict on the whole is in test_tls_testssl.py."""
import os
import smtplib
import ssl
import subprocess
import warnings

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


# ---- the TLS profile, session tickets, OCSP stapling -------------------

def _tls_session(port, ctx, session=None):
    """EHLO, STARTTLS, handshake with ctx (and a session to resume), EHLO
    again. Returns (ssl socket wrapper RawSMTP, ssl object) or raises
    ssl.SSLError when the handshake fails."""
    c = RawSMTP(port)
    c.ehlo()
    assert c.cmd("STARTTLS").code == 220
    c.sock = ctx.wrap_socket(c.sock, server_hostname="postern.test", session=session)
    c.ehlo("after.tls.test")    # TLS 1.3 tickets arrive after the handshake
    return c


def _client_ctx(maxv=None, minv=None, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():     # TLS 1.0/1.1 are deprecated: the point
        warnings.simplefilter("ignore", DeprecationWarning)
        if minv:
            ctx.minimum_version = minv
        if maxv:
            ctx.maximum_version = maxv
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def _handshake_fails(port, ctx):
    try:
        c = _tls_session(port, ctx)
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    c.close()
    return False


TLS12 = ssl.TLSVersion.TLSv1_2


def test_default_profile_refuses_cbc_static_rsa_and_old_versions(tls_postern):
    port = tls_postern.port
    # CBC with and without ECDHE, and static RSA key exchange even with GCM
    for weak in ("AES128-SHA", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384",
                 "AES128-GCM-SHA256", "AES256-GCM-SHA384"):
        assert _handshake_fails(port, _client_ctx(maxv=TLS12, ciphers=weak)), weak
    old = _client_ctx(minv=ssl.TLSVersion.TLSv1, maxv=ssl.TLSVersion.TLSv1_1,
                      ciphers="ALL:@SECLEVEL=0")
    assert _handshake_fails(port, old)
    c = _tls_session(port, _client_ctx(maxv=TLS12, ciphers="ECDHE-RSA-AES256-GCM-SHA384"))
    assert c.sock.cipher()[0] == "ECDHE-RSA-AES256-GCM-SHA384"
    c.close()
    assert tls_postern.alive()


def test_server_picks_the_cipher(tls_postern):
    """proxy.tls_ciphers lists AES128-GCM before AES256-GCM: a client that
    prefers AES256 still gets AES128."""
    ctx = _client_ctx(maxv=TLS12,
                      ciphers="ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256")
    c = _tls_session(tls_postern.port, ctx)
    assert c.sock.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"
    c.close()


def test_widened_for_old_senders(make_postern, capture, workdir):
    """The docs' recipe for old senders: TLS 1.0 with CBC, at security level 0."""
    cert, key = make_cert(workdir.join("tls"))
    p = make_postern(capture.addr, conf={
        "proxy.tls_cert": cert, "proxy.tls_key": key,
        "proxy.tls_protocols": "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3",
        "proxy.tls_ciphers": "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES:AES:@SECLEVEL=0"})
    ctx = _client_ctx(minv=ssl.TLSVersion.TLSv1, maxv=ssl.TLSVersion.TLSv1,
                      ciphers="ECDHE-RSA-AES128-SHA:@SECLEVEL=0")
    c = _tls_session(p.port, ctx)
    assert c.sock.version() == "TLSv1"
    t = c.transaction("old@example.org", ["b@example.org"], make_message("old-sender"))
    assert t["final"].code == 250, t
    c.close()
    assert b"Subject: old-sender" in capture.wait_messages(1)[0].data


@pytest.mark.parametrize("conf, why", [
    ({"proxy.tls_protocols": "TLSv1.1 TLSv1.3"}, "proxy.tls_protocols"),
    ({"proxy.tls_protocols": "SSLv3"}, "proxy.tls_protocols"),
])
def test_bad_protocol_range_is_a_config_error(make_postern, capture, workdir, conf, why):
    cert, key = make_cert(workdir.join("tls"))
    p = make_postern(capture.addr, start=False,
                     conf=dict(conf, **{"proxy.tls_cert": cert, "proxy.tls_key": key}))
    rc, out = p.configtest()
    assert rc == 1 and why in out, out


@pytest.mark.parametrize("key, value", [
    ("proxy.tls_ciphers", "NO-SUCH-CIPHER"),
    ("proxy.tls_ciphersuites", "TLS_NO_SUCH_SUITE"),
    ("proxy.tls_groups", "nosuchcurve"),
])
def test_bad_cipher_setting_fails_configtest_and_start(make_postern, capture, workdir, key, value):
    cert, key_file = make_cert(workdir.join("tls"))
    p = make_postern(capture.addr, start=False,
                     conf={"proxy.tls_cert": cert, "proxy.tls_key": key_file, key: value})
    rc, out = p.configtest()
    assert rc == 1 and key in out, out
    with pytest.raises(RuntimeError) as e:
        p.start()
    assert key in str(e.value)


def _clock(workdir):
    path = workdir.join("clock")
    with open(path, "w") as f:
        f.write("0\n")
    return path


def _set_clock(path, offset):
    with open(path, "w") as f:
        f.write("%d\n" % offset)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_session_ticket_keys_rotate(make_postern, capture, workdir, version):
    """A ticket resumes the session under the key that sealed it and under
    the next one (a fresh ticket comes back); two rotations later it no
    longer does: a full handshake, and the session goes on."""
    cert, key = make_cert(workdir.join("tls"))
    clock = _clock(workdir)
    rot = 3600
    p = make_postern(capture.addr, env={"POSTERN_CLOCK_FILE": clock},
                     conf={"proxy.tls_cert": cert, "proxy.tls_key": key,
                           "proxy.tls_ticket_rotation": rot})
    ctx = _client_ctx(minv=version, maxv=version)
    c = _tls_session(p.port, ctx)
    first = c.sock.session
    assert first is not None and first.has_ticket
    c.close()
    c = _tls_session(p.port, ctx, session=first)
    assert c.sock.session_reused
    c.close()
    _set_clock(clock, rot)              # the next key seals, the first still opens
    c = _tls_session(p.port, ctx, session=first)
    assert c.sock.session_reused
    c.close()
    _set_clock(clock, 3 * rot)          # both keys replaced since
    c = _tls_session(p.port, ctx, session=first)
    assert not c.sock.session_reused
    assert c.cmd("NOOP").code == 250
    c.close()


def test_no_tickets_when_rotation_is_zero(make_postern, capture, workdir):
    cert, key = make_cert(workdir.join("tls"))
    p = make_postern(capture.addr, conf={"proxy.tls_cert": cert, "proxy.tls_key": key,
                                         "proxy.tls_ticket_rotation": 0})
    ctx = _client_ctx(maxv=TLS12)
    c = _tls_session(p.port, ctx)
    s = c.sock.session
    c.close()
    assert not s.has_ticket
    c = _tls_session(p.port, ctx, session=s)
    assert not c.sock.session_reused
    c.close()


def _ca_and_leaf(d, serial="1234"):
    """A CA, a leaf it signed that names an OCSP responder, and the chain
    file (leaf then CA). Returns dict of paths."""
    os.makedirs(d, exist_ok=True)
    f = {k: os.path.join(d, k) for k in ("ca.pem", "ca.key", "leaf.pem", "leaf.key",
                                           "leaf.csr", "ext.cnf", "chain.pem")}
    run = lambda *a: subprocess.run(list(a), check=True, capture_output=True, timeout=60)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f["ca.key"],
        "-out", f["ca.pem"], "-days", "3", "-subj", "/CN=Postern Test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=keyCertSign,cRLSign,digitalSignature")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f["leaf.key"],
        "-out", f["leaf.csr"], "-subj", "/CN=postern.test")
    with open(f["ext.cnf"], "w") as fp:
        fp.write("authorityInfoAccess = OCSP;URI:http://127.0.0.1:9/\n"
                 "subjectAltName = DNS:postern.test\n")
    run("openssl", "x509", "-req", "-in", f["leaf.csr"], "-CA", f["ca.pem"], "-CAkey",
        f["ca.key"], "-set_serial", "0x" + serial, "-out", f["leaf.pem"], "-days", "3",
        "-extfile", f["ext.cnf"])
    with open(f["chain.pem"], "w") as out:
        for k in ("leaf.pem", "ca.pem"):
            with open(f[k]) as i:
                out.write(i.read())
    f["serial"] = serial
    return f


def _ocsp_response(f, out, status="V"):
    """What the CA's responder would say about the leaf (offline: openssl
    ocsp with an index file), DER in out."""
    idx = out + ".index"
    with open(idx, "w") as fp:
        fp.write("%s\t301231000000Z\t%s\t%s\tunknown\t/CN=postern.test\n"
                 % (status, "261201000000Z" if status == "R" else "", f["serial"]))
    subprocess.run(["openssl", "ocsp", "-index", idx, "-rsigner", f["ca.pem"], "-rkey",
                    f["ca.key"], "-CA", f["ca.pem"], "-issuer", f["ca.pem"], "-cert",
                    f["leaf.pem"], "-no_nonce", "-respout", out, "-ndays", "1"],
                   check=True, capture_output=True, timeout=60)
    return out


def _stapled(port):
    """openssl s_client -status over STARTTLS: the stapled response text, or
    None when the server sent none."""
    r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                        "127.0.0.1:%d" % port, "-status", "-servername", "postern.test"],
                       input="QUIT\n", capture_output=True, text=True, timeout=60)
    if "OCSP response: no response sent" in r.stdout:
        return None
    assert "OCSP Response Data" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    return r.stdout


def test_ocsp_response_is_stapled_and_reloaded(make_postern, capture, workdir):
    f = _ca_and_leaf(workdir.join("pki"))
    ocsp = _ocsp_response(f, workdir.join("ocsp.der"))
    p = make_postern(capture.addr, conf={"proxy.tls_cert": f["chain.pem"],
                                         "proxy.tls_key": f["leaf.key"],
                                         "proxy.tls_ocsp_file": ocsp})
    out = _stapled(p.port)
    assert out is not None and "Cert Status: good" in out, out
    # A renewed certificate whose response is not there yet: no staple
    # (never a wrong one), and the new certificate is in use all the same.
    g = _ca_and_leaf(workdir.join("pki2"), serial="5678")
    os.replace(g["chain.pem"], f["chain.pem"])
    os.replace(g["leaf.key"], f["leaf.key"])
    p.reload()
    wait_until(lambda: "not about proxy.tls_cert" in p.log(), 20, what="the reload")
    assert _stapled(p.port) is None
    _ocsp_response(g, ocsp)             # the admin's refresh job, then SIGHUP
    p.reload()
    wait_until(lambda: _stapled(p.port) is not None, 20, what="the new response stapled")
    assert "Serial Number: 5678" in _stapled(p.port)


def test_ocsp_revoked_or_stale_is_not_stapled(make_postern, capture, workdir):
    f = _ca_and_leaf(workdir.join("pki"))
    revoked = _ocsp_response(f, workdir.join("revoked.der"), status="R")
    p = make_postern(capture.addr, conf={"proxy.tls_cert": f["chain.pem"],
                                         "proxy.tls_key": f["leaf.key"],
                                         "proxy.tls_ocsp_file": revoked})
    assert "status is not good" in p.log()
    assert _stapled(p.port) is None
    p.stop()
    good = _ocsp_response(f, workdir.join("good.der"))
    clock = _clock(workdir)
    p = make_postern(capture.addr, env={"POSTERN_CLOCK_FILE": clock},
                     conf={"proxy.tls_cert": f["chain.pem"], "proxy.tls_key": f["leaf.key"],
                           "proxy.tls_ocsp_file": good})
    assert _stapled(p.port) is not None
    _set_clock(clock, 2 * 86400)        # past its next update
    assert _stapled(p.port) is None


def test_ocsp_file_that_is_not_a_response_stops_the_start(make_postern, capture, workdir):
    f = _ca_and_leaf(workdir.join("pki"))
    p = make_postern(capture.addr, start=False,
                     conf={"proxy.tls_cert": f["chain.pem"], "proxy.tls_key": f["leaf.key"],
                           "proxy.tls_ocsp_file": f["leaf.pem"]})
    with pytest.raises(RuntimeError) as e:
        p.start()
    assert "proxy.tls_ocsp_file" in str(e.value)


def test_tickets_survive_a_reload(make_postern, capture, workdir):
    """The ticket keys belong to the process: a SIGHUP (a renewed
    certificate) does not void the tickets out there."""
    cert, key = make_cert(workdir.join("tls"))
    p = make_postern(capture.addr, conf={"proxy.tls_cert": cert, "proxy.tls_key": key})
    ctx = _client_ctx()
    c = _tls_session(p.port, ctx)
    ticket = c.sock.session
    c.close()
    p.reload()
    wait_until(lambda: "configuration" in p.log() and "loaded" in p.log(), 20,
               what="the reload")
    c = _tls_session(p.port, ctx, session=ticket)
    assert c.sock.session_reused
    c.close()
