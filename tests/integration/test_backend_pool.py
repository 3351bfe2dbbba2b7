"""Backend connections reused across client sessions (proxy.backend_pool):
an idle leg goes to the loop's pool when its session ends, and the next
session's MAIL takes it, introducing its own client with XCLIENT (or
XFORWARD) -- never the last client's. A leg the backend closed while idle
is dropped and a fresh one connected, with no 4xx to the client.

One I/O thread in every test: each loop has its own pool, and sequential
sessions must meet the same one."""

from harness import RawSMTP, make_message, wait_until

ONE_LOOP = {"proxy.threads": 1}


def _session(port, source, sender, helo="client.test", quit=True):
    """One client session with one message; returns the final reply after
    Postern closed the connection (so its leg is back in the pool)."""
    with RawSMTP(port, source=source) as c:
        c.ehlo(helo)
        t = c.transaction(sender, ["rcpt@example.org"], make_message(sender))
        if quit:
            assert c.cmd("QUIT").code == 221
        else:
            c.close()
            return t["final"]
        assert c.closed(), "Postern did not close after QUIT"
    return t["final"]


def _addr(xclient_line):
    return [w for w in xclient_line.split(b" ") if w.startswith(b"ADDR=")]


def test_two_sessions_share_one_backend_connection(make_postern, capture):
    p = make_postern(capture.addr, conf=ONE_LOOP)
    assert _session(p.port, "127.0.0.2", "first@example.org").code == 250
    assert _session(p.port, "127.0.0.3", "second@example.org", helo="other.test").code == 250
    msgs = capture.wait_messages(2)
    assert len(capture.sessions) == 1, [s.lines for s in capture.sessions]
    (sess,) = capture.sessions
    assert msgs[0].session is sess and msgs[1].session is sess
    # each message introduced by its own XCLIENT, in order, before its MAIL
    assert [_addr(x) for x in sess.xclient] == [[b"ADDR=127.0.0.2"], [b"ADDR=127.0.0.3"]]
    assert b"HELO=other.test" in sess.xclient[1]
    verbs = [l.split(b" ")[0].split(b":")[0].upper() for l in sess.lines]
    second_xclient = [i for i, v in enumerate(verbs) if v == b"XCLIENT"][1]
    assert verbs[second_xclient + 1] == b"EHLO"       # a new greeting: EHLO again
    assert b"MAIL" in verbs[second_xclient + 2:]
    assert b"QUIT" not in verbs                       # the leg stayed open between them
    assert not sess.closed


def test_pool_off_means_a_connection_per_session(make_postern, capture):
    p = make_postern(capture.addr, conf=dict(ONE_LOOP, **{"proxy.backend_pool": 0}))
    assert _session(p.port, "127.0.0.2", "first@example.org").code == 250
    assert _session(p.port, "127.0.0.3", "second@example.org").code == 250
    capture.wait_messages(2)
    wait_until(lambda: len(capture.sessions) == 2 and capture.sessions[0].closed,
               what="two backend connections, the first closed")
    assert capture.sessions[0].lines[-1] == b"QUIT"
    assert [_addr(s.xclient[0]) for s in capture.sessions] == [[b"ADDR=127.0.0.2"],
                                                               [b"ADDR=127.0.0.3"]]


def test_unfinished_transaction_is_reset_before_reuse(make_postern, capture):
    p = make_postern(capture.addr, conf=ONE_LOOP)
    with RawSMTP(p.port, source="127.0.0.2") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<half@example.org>").code == 250
        assert c.cmd("RCPT TO:<rcpt@example.org>").code == 250
        assert c.cmd("QUIT").code == 221      # no DATA: MAIL is open at the backend
        assert c.closed()
    # A leg whose RSET is still unanswered is not taken from the pool (the
    # next session opens its own), so let the reset reach the backend first:
    # under load the next client could otherwise win that race.
    wait_until(lambda: b"RSET" in capture.sessions[0].lines, what="the pooled leg's RSET")
    assert _session(p.port, "127.0.0.3", "next@example.org").code == 250
    (m,) = capture.wait_messages(1)
    assert len(capture.sessions) == 1, [s.lines for s in capture.sessions]
    assert m.mail_from == b"MAIL FROM:<next@example.org>"
    lines = capture.sessions[0].lines
    assert lines.index(b"RSET") < lines.index(capture.sessions[0].xclient[1])


def test_backend_closed_idle_leg_falls_back_to_new_connection(make_postern, make_capture):
    cap = make_capture()
    port = cap.port
    p = make_postern(cap.addr, conf=ONE_LOOP)
    assert _session(p.port, "127.0.0.2", "before@example.org").code == 250
    cap.wait_messages(1)
    cap.stop()                                  # closes the idle leg Postern holds
    cap2 = make_capture(port=port)
    final = _session(p.port, "127.0.0.3", "after@example.org")
    assert final is not None and final.code == 250, final
    (m,) = cap2.wait_messages(1)
    assert m.mail_from == b"MAIL FROM:<after@example.org>"
    assert [_addr(x) for x in cap2.sessions[0].xclient] == [[b"ADDR=127.0.0.3"]]
    assert "backend not available" not in p.log()


def test_postfix_logs_each_pooled_client(make_postern, make_postfix):
    # a loopback-only smtpd that authorises XCLIENT for every address, as
    # README.md suggests to keep the pool useful
    postfix = make_postfix(xclient_hosts="all")
    p = make_postern(postfix.addr, conf=ONE_LOOP)
    start = len(postfix.maillog())
    assert _session(p.port, "127.0.0.2", "pool1@example.org").code == 250
    assert _session(p.port, "127.0.0.3", "pool2@example.org").code == 250
    log = postfix.wait_until_after(start, "from=<pool2@example.org>")[start:]
    lines = log.splitlines()

    def client_of(sender):
        qid = [l for l in lines if "from=<%s>" % sender in l][0].split(": ")[1]
        return [l for l in lines if "%s: client=" % qid in l][0]
    assert "[127.0.0.2]" in client_of("pool1@example.org")
    assert "[127.0.0.3]" in client_of("pool2@example.org")
    # one TCP connection from Postern carried both sessions
    assert len([l for l in lines if " connect from " in l]) == 1, log


def test_xforward_introduces_each_pooled_client(make_postern, make_capture):
    cap = make_capture(xclient=False, xforward=True)
    p = make_postern(cap.addr, conf=ONE_LOOP)
    assert _session(p.port, "127.0.0.2", "xf1@example.org").code == 250
    assert _session(p.port, "127.0.0.3", "xf2@example.org").code == 250
    msgs = cap.wait_messages(2)
    (sess,) = cap.sessions
    assert [_addr(x) for x in sess.xforward] == [[b"ADDR=127.0.0.2"], [b"ADDR=127.0.0.3"]]
    lines = sess.lines
    assert lines.index(sess.xforward[1]) < lines.index(msgs[1].mail_from)
    assert lines.index(sess.xforward[1]) > lines.index(msgs[0].mail_from)


def test_no_xclient_no_xforward_received_names_each_client(make_postern, make_capture):
    """A backend that cannot be told who the client is: no connection is
    reused (nothing could introduce the next client on it), one warning
    says so, and Postern's Received: names each client."""
    cap = make_capture(xclient=False, xforward=False)
    p = make_postern(cap.addr, conf=ONE_LOOP)
    assert _session(p.port, "127.0.0.2", "plain1@example.org").code == 250
    assert _session(p.port, "127.0.0.3", "plain2@example.org").code == 250
    assert _session(p.port, "127.0.0.4", "plain3@example.org").code == 250
    m1, m2, m3 = cap.wait_messages(3)
    assert len(cap.sessions) == 3 and m1.session is not m2.session
    assert p.log().count("proxy.backend_pool unused") == 1, p.log()
    assert "offers neither XCLIENT nor XFORWARD" in p.log()
    r1, r2 = m1.header("Received")[0], m2.header("Received")[0]
    assert "127.0.0.2" in r1 and "127.0.0.3" not in r1, r1
    assert "127.0.0.3" in r2 and "127.0.0.2" not in r2, r2
