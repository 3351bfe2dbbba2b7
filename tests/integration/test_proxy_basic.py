"""The transparent SMTP proxy core: relaying, XCLIENT, 8-bit, SMTPUTF8,
sizes and the backend's own answers (issue "The transparent SMTP proxy
core"). Backends: the capture server (exact bytes) and Postfix."""

import pytest

from harness import RawSMTP, make_message, smtp_client, split_added

CLIENT_IP = "127.0.0.2"   # differs from Postern's own 127.0.0.1 towards the backend


def _caps(reply):
    return [l[4:].split(" ")[0].upper() for l in reply.lines[1:]]


def test_banner_and_ehlo_capabilities(make_postern, capture):
    p = make_postern(capture.addr, conf={"proxy.max_message_size": 123456})
    with RawSMTP(p.port) as c:
        assert c.banner.code == 220 and "postern.test" in c.banner.text
        r = c.ehlo()
        caps = _caps(r)
        for want in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"):
            assert want in caps, r
        assert "SIZE 123456" in [l[4:] for l in r.lines]
        assert "STARTTLS" not in caps          # no certificate configured
        assert c.cmd("QUIT").code == 221


def test_one_recipient_exact_bytes(postern, capture):
    sent = make_message("one", body=b"line 1\r\n.leading dot\r\n..two dots\r\n\r\nend\r\n")
    with RawSMTP(postern.port, source=CLIENT_IP) as c:
        c.ehlo()
        t = c.transaction("a@example.org", ["b@example.org"], sent)
        assert t["final"].code == 250, t
    (m,) = capture.wait_messages(1)
    assert m.mail_from.startswith(b"MAIL FROM:<a@example.org>")
    assert m.rcpts == [b"RCPT TO:<b@example.org>"]
    names, _ = split_added(m.data, sent)
    assert "authentication-results" in names and "x-spam-score" in names
    ar = m.header("Authentication-Results")[0]
    assert ar.startswith("postern.test;"), ar
    assert b"\r\n..leading dot\r\n...two dots\r\n" in m.raw   # stuffed again on the wire


def test_many_recipients_capture(postern, capture):
    rcpts = ["r%02d@example.org" % i for i in range(60)]
    s = smtp_client(postern.port)
    assert s.sendmail("a@example.org", rcpts, make_message("many")) == {}
    s.quit()
    (m,) = capture.wait_messages(1)
    assert m.rcpts == [b"RCPT TO:<%s>" % r.encode() for r in rcpts]


def test_one_and_many_recipients_postfix(make_postern, postfix):
    p = make_postern(postfix.addr)
    s = smtp_client(p.port, source=CLIENT_IP)
    assert s.sendmail("one@example.org", ["x@example.org"], make_message("pf1")) == {}
    rcpts = ["m%02d@example.org" % i for i in range(20)]
    assert s.sendmail("many@example.org", rcpts, make_message("pf20")) == {}
    s.quit()
    log = postfix.wait_log("from=<many@example.org>, size=")
    assert "from=<one@example.org>, size=" in log
    assert "nrcpt=20 (queue active)" in log


def test_xclient_shows_real_client_at_postfix(make_postern, postfix):
    p = make_postern(postfix.addr)
    s = smtp_client(p.port, source=CLIENT_IP)
    assert s.sendmail("xclient@example.org", ["x@example.org"], make_message("xc")) == {}
    s.quit()
    log = postfix.wait_log("from=<xclient@example.org>")
    qid = [l for l in log.splitlines() if "from=<xclient@example.org>" in l][0].split(": ")[1]
    client = [l for l in log.splitlines() if "%s: client=" % qid in l]
    assert client and "[%s]" % CLIENT_IP in client[0], client


def test_xclient_to_capture_then_ehlo_again(postern, capture):
    s = smtp_client(postern.port, source=CLIENT_IP)
    s.ehlo("helo.client.test")
    assert s.sendmail("a@example.org", ["b@example.org"], make_message("xc2")) == {}
    s.quit()
    (m,) = capture.wait_messages(1)
    sess = m.session
    assert sess.xclient, sess.lines
    assert b"ADDR=%s" % CLIENT_IP.encode() in sess.xclient[0]
    # After XCLIENT's new greeting, the backend must be greeted again.
    i = sess.lines.index(sess.xclient[0])
    assert any(l.upper().startswith(b"EHLO") for l in sess.lines[i + 1:]), sess.lines


def test_xforward_when_no_xclient(make_postern, make_capture):
    cap = make_capture(xclient=False, xforward=True)
    p = make_postern(cap.addr)
    s = smtp_client(p.port, source=CLIENT_IP)
    assert s.sendmail("a@example.org", ["b@example.org"], make_message("xf")) == {}
    s.quit()
    (m,) = cap.wait_messages(1)
    assert not m.session.xclient
    assert any(b"ADDR=%s" % CLIENT_IP.encode() in l for l in m.session.xforward), m.session.lines


def test_plain_backend_without_xclient(make_postern, make_capture):
    cap = make_capture(xclient=False, xforward=False)
    p = make_postern(cap.addr)
    s = smtp_client(p.port)
    assert s.sendmail("a@example.org", ["b@example.org"], make_message("plain")) == {}
    s.quit()
    (m,) = cap.wait_messages(1)
    assert not any(l.upper().startswith((b"XCLIENT", b"XFORWARD")) for l in m.session.lines)


def test_8bit_body_passes_unchanged(postern, capture):
    body = "Grüße aus Köln — ½ € ✓\r\n".encode() + bytes(range(0x80, 0x100)).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"
    sent = make_message("8bit", body=body, headers=["Content-Type: text/plain; charset=utf-8",
                                                     "Content-Transfer-Encoding: 8bit"])
    with RawSMTP(postern.port) as c:
        c.ehlo()
        t = c.transaction("a@example.org", ["b@example.org"], sent, " BODY=8BITMIME")
        assert t["final"].code == 250, t
    (m,) = capture.wait_messages(1)
    assert b"BODY=8BITMIME" in m.mail_from.upper()
    split_added(m.data, sent)


def test_smtputf8_addresses(postern, capture):
    frm, to = "jörg@exämple.test", "δοκιμή@παράδειγμα.δοκιμή"
    sent = ("From: <%s>\r\nTo: <%s>\r\nSubject: ünïcode\r\n\r\nhallo\r\n" % (frm, to)).encode()
    with RawSMTP(postern.port) as c:
        c.ehlo()
        r = c.cmd(("MAIL FROM:<%s> SMTPUTF8" % frm).encode())
        assert r.code == 250, r
        r = c.cmd(("RCPT TO:<%s>" % to).encode())
        assert r.code == 250, r
        assert c.cmd("DATA").code == 354
        c.send(sent + b".\r\n")
        assert c.reply().code == 250
    (m,) = capture.wait_messages(1)
    assert m.mail_from.startswith(("MAIL FROM:<%s>" % frm).encode())
    assert b"SMTPUTF8" in m.mail_from.upper()
    assert m.rcpts == [("RCPT TO:<%s>" % to).encode()]
    split_added(m.data, sent)


def test_utf8_address_without_smtputf8_is_refused(postern, capture):
    with RawSMTP(postern.port) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<jörg@exämple.test>".encode())
        assert 500 <= r.code < 600, r     # RFC 6531 3.4: 553 5.6.7 or similar
    assert not capture.messages


SIZE_LIMIT = 20000


def test_size_just_under_limit_is_relayed(make_postern, capture):
    p = make_postern(capture.addr, conf={"proxy.max_message_size": SIZE_LIMIT})
    sent = make_message("under", size=SIZE_LIMIT - 200)
    with RawSMTP(p.port) as c:
        c.ehlo()
        t = c.transaction("a@example.org", ["b@example.org"], sent, " SIZE=%d" % len(sent))
        assert t["final"].code == 250, t
    (m,) = capture.wait_messages(1)
    split_added(m.data, sent)


def test_size_over_limit_at_end_of_data(make_postern, capture):
    p = make_postern(capture.addr, conf={"proxy.max_message_size": SIZE_LIMIT})
    sent = make_message("over", size=SIZE_LIMIT + 200)
    with RawSMTP(p.port) as c:
        c.ehlo()
        t = c.transaction("a@example.org", ["b@example.org"], sent)
        assert t["final"].code == 552 and t["final"].enhanced == "5.3.4", t
        # the session survives and the next message goes through
        t = c.transaction("a@example.org", ["b@example.org"], make_message("after"))
        assert t["final"].code == 250, t
    msgs = capture.wait_messages(1)
    assert len(msgs) == 1 and b"Subject: after" in msgs[0].data


def test_size_over_limit_declared_at_mail(make_postern, capture):
    p = make_postern(capture.addr, conf={"proxy.max_message_size": SIZE_LIMIT})
    with RawSMTP(p.port) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<a@example.org> SIZE=%d" % (SIZE_LIMIT + 1))
        assert r.code == 552 and r.enhanced == "5.3.4", r
        assert c.cmd("MAIL FROM:<a@example.org> SIZE=%d" % SIZE_LIMIT).code == 250


def _backend_step(c):
    """The reply to the first command that needs the backend: MAIL, or RCPT
    when a proxy opens the backend only there."""
    r = c.cmd("MAIL FROM:<a@example.org>")
    return c.cmd("RCPT TO:<b@example.org>") if r.code == 250 else r


def test_backend_down_gives_451_441(make_postern):
    from harness import free_port
    p = make_postern("127.0.0.1:%d" % free_port())   # nothing listens there
    with RawSMTP(p.port) as c:
        c.ehlo()
        r = _backend_step(c)
        assert r.code == 451 and r.enhanced == "4.4.1", r
        assert c.cmd("DATA").code >= 400


@pytest.mark.parametrize("backend", ["capture", "postfix"])
def test_backend_rejects_one_recipient(make_postern, make_capture, postfix, backend):
    if backend == "capture":
        cap = make_capture(rcpt_replies={"rejected@": "550 5.1.1 <rejected@example.org>: no such user"})
        addr = cap.addr
    else:
        cap, addr = None, postfix.addr
    p = make_postern(addr)
    with RawSMTP(p.port, source=CLIENT_IP) as c:
        c.ehlo()
        t = c.transaction("rr-%s@example.org" % backend,
                          ["ok@example.org", "rejected@example.org", "ok2@example.org"],
                          make_message("rr"))
        codes = [r.code for r in t["rcpts"]]
        assert codes == [250, 550, 250], t["rcpts"]
        assert t["rcpts"][1].enhanced == "5.1.1"
        assert t["final"].code == 250
    if cap:
        (m,) = cap.wait_messages(1)
        assert m.rcpts == [b"RCPT TO:<ok@example.org>", b"RCPT TO:<ok2@example.org>"]
    else:
        assert "nrcpt=2 " in postfix.wait_log("from=<rr-postfix@example.org>, size=")


def test_all_recipients_rejected_then_data_refused(make_postern, make_capture):
    cap = make_capture(rcpt_replies={"@": "550 5.1.1 nobody here"})
    p = make_postern(cap.addr)
    with RawSMTP(p.port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@example.org>").code == 250
        assert c.cmd("RCPT TO:<x@example.org>").code == 550
        r = c.cmd("DATA")
        assert r.code in (503, 554), r
    assert not cap.messages


@pytest.mark.parametrize("backend", ["capture", "postfix"])
def test_backend_4xx_at_end_of_data(make_postern, make_capture, postfix, backend):
    if backend == "capture":
        addr = make_capture(data_reply="451 4.3.0 backend says later").addr
    else:
        addr = postfix.addr     # defer@example.org -> 451 at end of data
    p = make_postern(addr)
    with RawSMTP(p.port) as c:
        c.ehlo()
        t = c.transaction("defer@example.org", ["b@example.org"], make_message("eod4"))
        assert 400 <= t["final"].code < 500, t


def test_backend_5xx_at_end_of_data(make_postern, postfix):
    p = make_postern(postfix.addr)
    with RawSMTP(p.port) as c:
        c.ehlo()
        t = c.transaction("a@example.org", ["b@example.org"],
                          make_message("eod5", headers=["X-Test-Reject: yes"]))
        assert 500 <= t["final"].code < 600, t


def test_backend_drops_mid_data_gives_451_442(make_postern, make_capture):
    cap = make_capture(drop_after_data_bytes=500)
    p = make_postern(cap.addr)
    with RawSMTP(p.port) as c:
        c.ehlo()
        t = c.transaction("a@example.org", ["b@example.org"], make_message("drop", size=5000))
        assert t["final"].code == 451 and t["final"].enhanced == "4.4.2", t
    assert not cap.accepted()


def test_backend_slow_at_end_of_data_gives_4xx(make_postern, make_capture):
    cap = make_capture(data_delay=20)
    p = make_postern(cap.addr, conf={"proxy.timeout_data_term": 2})
    with RawSMTP(p.port, timeout=30) as c:
        c.ehlo()
        t = c.transaction("a@example.org", ["b@example.org"], make_message("slow"))
        assert 400 <= t["final"].code < 500, t   # never 250 without the backend's 250


def test_backend_refuses_service_at_banner(make_postern, make_capture):
    cap = make_capture(banner="554 5.3.2 not today")
    p = make_postern(cap.addr)
    with RawSMTP(p.port) as c:
        c.ehlo()
        r = _backend_step(c)
        assert 400 <= r.code < 500, r            # the sender retries later
    assert not cap.messages


def test_backend_answer_to_mail_is_passed_back(make_postern, make_capture):
    """The backend's refusal of MAIL reaches the client: at MAIL, or -- when
    Postern sends MAIL pipelined with the first RCPT -- at that RCPT."""
    cap = make_capture(mail_reply="452 4.3.1 insufficient system storage")
    p = make_postern(cap.addr)
    with RawSMTP(p.port) as c:
        c.ehlo()
        r = _backend_step(c)
        assert r.code == 452 and r.enhanced == "4.3.1", r
        assert c.cmd("DATA").code in (503, 554)     # nothing to send
    assert not cap.messages


def test_connections_per_ip_limit_421(make_postern, capture):
    p = make_postern(capture.addr, conf={"proxy.max_connections_per_ip": 2})
    held = [RawSMTP(p.port, source=CLIENT_IP) for _ in range(2)]
    try:
        assert all(h.banner.code == 220 for h in held)
        with RawSMTP(p.port, source=CLIENT_IP) as third:
            assert third.banner.code == 421 and third.banner.enhanced == "4.7.0", third.banner
        with RawSMTP(p.port, source="127.0.0.3") as other:   # another address is fine
            assert other.banner.code == 220
    finally:
        for h in held:
            h.close()


def test_harness_config_passes_configtest(make_postern, capture):
    p = make_postern(capture.addr, start=False)
    rc, out = p.configtest()
    assert rc == 0, out


def test_listen_on_ipv4_and_ipv6_loopback(make_postern, capture):
    from harness import free_port
    v6 = free_port()    # free on ::1 too, outside the ephemeral range
    p = make_postern(capture.addr, start=False)
    p.settings["proxy.listen"] = "127.0.0.1:%d, [::1]:%d" % (p.port, v6)
    p.start()
    with RawSMTP(p.port) as c:
        assert c.banner.code == 220
    with RawSMTP(v6, host="::1") as c:
        assert c.banner.code == 220
        c.ehlo()
        t = c.transaction("a@example.org", ["b@example.org"], make_message("v6"))
        assert t["final"].code == 250, t
    assert b"Subject: v6" in capture.wait_messages(1)[0].data


@pytest.mark.parametrize("spool_memory", [4096, 262144])
def test_large_message_exact_bytes_through_memory_and_file_spool(make_postern, capture, spool_memory):
    """1.5 MB with dot lines and 8-bit text: identical after the spool,
    whether it stayed in memory or spilled to proxy.spool_dir."""
    import random
    rnd = random.Random(spool_memory)
    lines = []
    for i in range(15000):
        kind = rnd.randrange(4)
        if kind == 0:
            lines.append(b"." * rnd.randrange(1, 4) + b"dot line %d" % i)
        elif kind == 1:
            lines.append("ümlaut ✓ %d".encode() % i)
        else:
            lines.append(bytes(rnd.choice(b"abcdefghij ") for _ in range(rnd.randrange(0, 120))))
    sent = make_message("big", body=b"\r\n".join(lines) + b"\r\n")
    p = make_postern(capture.addr, conf={"proxy.spool_memory": spool_memory,
                                         "proxy.max_message_size": 4 * 1024 * 1024})
    with RawSMTP(p.port, timeout=60) as c:
        c.ehlo()
        t = c.transaction("a@example.org", ["b@example.org"], sent, " BODY=8BITMIME SIZE=%d" % len(sent))
        assert t["final"].code == 250, t
    (m,) = capture.wait_messages(1, timeout=60)
    split_added(m.data, sent)
