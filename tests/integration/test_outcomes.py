"""True outcomes: every transaction is recorded with how it ended, and with
the MTA's own words when the MTA had the last word.

A real Postfix behind Postern refuses at each stage on purpose (a sender
REJECTed at MAIL with smtpd_delay_reject = no, recipients refused at RCPT,
a header refused and a sender deferred at end of data); the capture
backend drops the connection mid-DATA; a backend that is not there at all
is a port nobody listens on. For each, the same fact must show in the
transaction's log line (stage=<where> <outcome>="<reply>"), in
/api/verdicts (outcome, stage, mta_reply), and in the counters
(/metrics postern_outcomes_total, /api/stats live.outcomes and the
outcome:<o> totals) -- and nowhere as "accept".

Greylisting: a deferral is recorded and counted whether the client then
QUITs, RSETs (and tries again in the same session) or just drops.

Headers: a client's X-Spam-Flag: NO, X-Spam-Score: -100 (folded too) and
X-Postern-* never reach the backend; the capture backend shows the exact
bytes, which are Postern's headers followed by the client's message minus
exactly those fields.
"""
import re
import smtplib
import socket
import urllib.parse

import pytest

from harness import LOOPBACK, Postfix, Postern, free_port, smtp_client, wait_until
from harness.client import RawSMTP
from webapi import TOKEN, Http

QUIET = {"spf.enabled": "no", "dkim.enabled": "no", "dmarc.enabled": "no",
         "web.api_token": TOKEN}
OUTCOMES = ["accept", "quarantine", "reject", "tempfail", "backend-reject",
            "backend-tempfail", "backend-lost", "abandoned"]


@pytest.fixture(scope="module")
def refusing_postfix(moddir):
    """A Postfix that refuses at every stage (XCLIENT authorisation given
    explicitly: these tests do not depend on the harness default)."""
    pf = Postfix(moddir.join("postfix"),
                 reject_rcpts=["rejected@example.org", "gone@example.org"],
                 defer_senders=["defer@sender.test"], reject_header="X-Test-Reject",
                 main_extra={
                     "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
                     "smtpd_delay_reject": "no",
                     "smtpd_sender_restrictions":
                         "check_sender_access inline:{ refused@sender.test=REJECT }"})
    try:
        yield pf.start()
    finally:
        pf.stop()


@pytest.fixture(scope="module")
def gw(moddir, unbound, refusing_postfix):
    p = Postern(moddir.join("postern"), refusing_postfix.addr, unbound.addr, conf=QUIET)
    try:
        yield Gate(p.start())
        p.stop()
    finally:
        p.kill()


class Gate:
    """A running Postern and what a test reads from it."""

    def __init__(self, p):
        self.p = p
        self.http = Http(p.web_port, token=TOKEN)

    def counters(self):
        """(from /metrics, /api/stats live.outcomes, /api/stats totals)."""
        def metrics():
            st, _, body = self.http.request("GET", "/metrics")
            return st == 200 and body.decode()
        text = wait_until(metrics, 15, what="/metrics")
        m = {k: int(v) for k, v in re.findall(
            r'^postern_outcomes_total\{outcome="([^"]+)"\} (\d+)$', text, re.M)}
        st, _, s = self.http.request("GET", "/api/stats")
        assert st == 200, s
        return m, s["live"]["outcomes"], {k[8:]: v for k, v in s["totals"].items()
                                          if k.startswith("outcome:")}

    def record(self, sender):
        """The one /api/verdicts row of sender's transaction."""
        def rows():
            st, _, body = self.http.request(
                "GET", "/api/verdicts?q=" + urllib.parse.quote(sender))
            got = [r for r in body["verdicts"] if r["mail_from"] == sender] if st == 200 else []
            return got or None
        got = wait_until(rows, 15, what="the verdict row of %s" % sender)
        assert len(got) == 1, got
        return got[0]

    def log_line(self, sender):
        pat = re.compile(r"from=<%s> nrcpt=.*" % re.escape(sender))   # the transaction's line
        return wait_until(lambda: pat.search(self.p.log()), 15,
                          what="the log line of %s" % sender).group(0)


def expect(gate, before, sender, outcome, stage, mta_reply, verdict="accept", reply=""):
    """sender's transaction ended as outcome at stage with the MTA's reply
    (a prefix): in the row, the log line and every counter -- one more of
    that outcome, and no other counter moved."""
    row = gate.record(sender)
    assert (row["outcome"], row["stage"], row["verdict"]) == (outcome, stage, verdict), row
    assert row["mta_reply"].startswith(mta_reply), row
    assert row["backend_reply"] == row["mta_reply"]
    assert row["reply"].startswith(reply) and bool(row["reply"]) == bool(reply), row
    line = gate.log_line(sender)
    assert " verdict=%s " % verdict in line, line
    said = mta_reply or reply
    assert ' stage=%s %s="%s' % (stage, outcome, said) in line, line
    after = gate.counters()
    for got, was in zip(after, before):
        for o in OUTCOMES:
            assert got.get(o, 0) - was.get(o, 0) == (1 if o == outcome else 0), (o, was, got)
    return row


def test_accepted_means_the_mta_said_250(gw):
    before = gw.counters()
    with smtp_client(gw.p.port) as s:
        s.sendmail("ok@sender.test", ["bob@example.org"], b"Subject: fine\r\n\r\nhi\r\n")
    expect(gw, before, "ok@sender.test", "accept", "end-of-data", "250 2.0.0 Ok: queued as ")


def test_backend_refuses_mail(gw):
    before = gw.counters()
    with smtp_client(gw.p.port) as s:
        s.ehlo("client.sender.test")
        assert s.mail("refused@sender.test")[0] == 250     # ours: MAIL goes with the RCPT
        code, text = s.rcpt("bob@example.org")
        assert code == 554 and b"Sender address rejected" in text
    expect(gw, before, "refused@sender.test", "backend-reject", "mail",
           "554 5.7.1 <refused@sender.test>: Sender address rejected")


def test_backend_refuses_every_rcpt_then_rset(gw):
    before = gw.counters()
    with smtp_client(gw.p.port) as s:
        s.ehlo("client.sender.test")
        assert s.mail("norcpt@sender.test")[0] == 250
        assert s.rcpt("rejected@example.org")[0] == 550
        assert s.rcpt("gone@example.org")[0] == 550
        assert s.rset()[0] == 250
    # the last refusal is the transaction's
    row = expect(gw, before, "norcpt@sender.test", "backend-reject", "rcpt",
                 "550 5.1.1 <gone@example.org>: Recipient address rejected: no such user")
    assert row["rcpts"] == ["gone@example.org"]


def test_backend_rejects_at_end_of_data(gw):
    before = gw.counters()
    with smtp_client(gw.p.port) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("content@sender.test", ["bob@example.org"],
                       b"Subject: x\r\nX-Test-Reject: yes\r\n\r\nhi\r\n")
        assert e.value.smtp_code == 550
    row = expect(gw, before, "content@sender.test", "backend-reject", "end-of-data",
                 "550 5.7.1 test rejection")
    assert row["size"] > 0


def test_backend_tempfails_at_end_of_data(gw):
    before = gw.counters()
    with smtp_client(gw.p.port) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("defer@sender.test", ["bob@example.org"], b"Subject: x\r\n\r\nhi\r\n")
        assert e.value.smtp_code == 451
    expect(gw, before, "defer@sender.test", "backend-tempfail", "end-of-data",
           "451 4.3.0 <defer@sender.test>: Sender address rejected: test deferral")


def test_backend_reset_after_a_refused_end_of_data(gw):
    """Postfix keeps the MAIL transaction open after an end-of-data
    restriction refused it: the next transaction on that backend
    connection must start with RSET, or it meets 503 "nested MAIL"."""
    with smtp_client(gw.p.port) as s:
        with pytest.raises(smtplib.SMTPDataError):
            s.sendmail("defer@sender.test", ["bob@example.org"], b"Subject: 1\r\n\r\nhi\r\n")
        assert s.sendmail("after-defer@sender.test", ["bob@example.org"],
                          b"Subject: 2\r\n\r\nhi\r\n") == {}
    assert gw.record("after-defer@sender.test")["outcome"] == "accept"


def test_partly_refused_recipients_then_quit_is_abandoned(gw):
    """A recipient got through and the client left before DATA: nobody
    refused the transaction, the client gave it up."""
    before = gw.counters()
    with smtp_client(gw.p.port) as s:
        s.ehlo("client.sender.test")
        assert s.mail("leaves@sender.test")[0] == 250
        assert s.rcpt("rejected@example.org")[0] == 550
        assert s.rcpt("bob@example.org")[0] == 250
    expect(gw, before, "leaves@sender.test", "abandoned", "rcpt", "")


@pytest.fixture
def lone(make_postern):
    """A Postern of its own, for a backend built to fail."""
    def make(backend, conf=None):
        return Gate(make_postern(backend, conf=dict(QUIET, **(conf or {}))))
    return make


def test_backend_drops_mid_data(lone, make_capture):
    cap = make_capture(drop_after_data_bytes=100)
    g = lone(cap.addr)
    before = g.counters()
    with smtp_client(g.p.port) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("dropped@sender.test", ["bob@example.org"],
                       b"Subject: x\r\n\r\n" + b"line of text\r\n" * 50)
        assert e.value.smtp_code == 451
    expect(g, before, "dropped@sender.test", "backend-lost", "end-of-data", "")
    assert not cap.accepted()


def test_backend_tempfails_every_rcpt_then_drop(lone, make_capture):
    cap = make_capture(rcpt_replies={"later@": "450 4.2.1 <later@example.org>: try later"})
    g = lone(cap.addr)
    before = g.counters()
    c = RawSMTP(g.p.port)
    c.cmd("EHLO client.sender.test")
    assert c.cmd("MAIL FROM:<rcpt4xx@sender.test>").code == 250
    assert c.cmd("RCPT TO:<later@example.org>").code == 450
    c.sock.close()
    expect(g, before, "rcpt4xx@sender.test", "backend-tempfail", "rcpt",
           "450 4.2.1 <later@example.org>: try later")
    wait_until(lambda: "backend-tempfail: RCPT to=<later@example.org>: 450" in g.p.log(),
               15, what="the RCPT line")


def test_backend_refuses_the_data_command(lone, make_capture):
    cap = make_capture(data_cmd_reply="554 5.3.2 not now, not ever")
    g = lone(cap.addr)
    before = g.counters()
    with smtp_client(g.p.port) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("nodata@sender.test", ["bob@example.org"], b"Subject: x\r\n\r\nhi\r\n")
        assert e.value.smtp_code == 554
        expect(g, before, "nodata@sender.test", "backend-reject", "data",
               "554 5.3.2 not now, not ever")
        # the backend's transaction is still open there: the next MAIL on
        # that connection comes after an RSET
        with pytest.raises(smtplib.SMTPDataError):
            s.sendmail("nodata-2@sender.test", ["bob@example.org"], b"Subject: y\r\n\r\nhi\r\n")
    lines = [l for l in cap.all_lines() if l.split(b" ")[0] in (b"MAIL", b"RSET", b"DATA")]
    i = next(k for k, l in enumerate(lines) if l.startswith(b"MAIL FROM:<nodata-2@"))
    assert lines[i - 1] == b"RSET", lines


def test_backend_lost_before_answering_the_rset_before_mail(lone, make_capture):
    # The leg still holds the first transaction (the client's RSET is
    # passed on lazily), so the second RCPT goes as RSET, MAIL, RCPT; the
    # backend leaves without a word: its MAIL was never answered, so the
    # transaction ended at stage mail, as when only the MAIL is unanswered.
    cap = make_capture(drop_on=b"RSET")
    g = lone(cap.addr)
    c = RawSMTP(g.p.port)
    c.cmd("EHLO client.sender.test")
    assert c.cmd("MAIL FROM:<first@sender.test>").code == 250
    assert c.cmd("RCPT TO:<bob@example.org>").code == 250
    assert c.cmd("RSET").code == 250
    g.record("first@sender.test")
    before = g.counters()
    assert c.cmd("MAIL FROM:<second@sender.test>").code == 250
    r = c.cmd("RCPT TO:<bob@example.org>")
    assert r.code == 451 and "backend connection lost" in r.lines[-1], r.lines
    c.sock.close()
    expect(g, before, "second@sender.test", "backend-lost", "mail", "")
    assert [l.split(b" ")[0] for l in cap.sessions[-1].lines][-3:] == \
        [b"MAIL", b"RCPT", b"RSET"]


def leg_gone_after_mail(g, cap, sender):
    """A session whose MAIL the client has 250 for (the leg is open, the
    MAIL waits for the first RCPT), and then the backend closes the leg."""
    c = RawSMTP(g.p.port)
    c.cmd("EHLO client.sender.test")
    assert c.cmd("MAIL FROM:<%s>" % sender).code == 250
    cap.stop()
    wait_until(lambda: "backend %s: connection closed" % cap.addr in g.p.log(), 15,
               what="Postern to see the leg close")
    return c


def test_backend_leg_lost_before_rcpt_is_opened_again(lone, make_capture):
    # nothing of the transaction was there: the RCPT opens a new leg,
    # introduces the client again and sends MAIL and RCPT on it
    cap = make_capture()
    g = lone(cap.addr)
    c = leg_gone_after_mail(g, cap, "moved@sender.test")
    again = make_capture(port=cap.port)
    assert c.cmd("RCPT TO:<bob@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: moved\r\n\r\nhi\r\n.\r\n")
    assert c.reply().code == 250
    c.sock.close()
    m = again.wait_messages(1)[0]
    assert m.mail_from.startswith(b"MAIL FROM:<moved@sender.test>"), m.mail_from
    verbs = [l.split(b" ")[0] for l in m.session.lines]
    assert verbs[0] == b"EHLO" and verbs[-3:] == [b"MAIL", b"RCPT", b"DATA"], verbs
    assert g.record("moved@sender.test")["outcome"] == "accept"


def test_backend_gone_before_rcpt_is_lost_at_connect(lone, make_capture):
    cap = make_capture()
    g = lone(cap.addr)
    before = g.counters()
    c = leg_gone_after_mail(g, cap, "stranded@sender.test")
    r = c.cmd("RCPT TO:<bob@example.org>")
    assert (r.code, r.enhanced) == (451, "4.4.1"), r.lines
    assert c.cmd("RCPT TO:<bob@example.org>").code == 503    # back in HELO
    c.sock.close()
    expect(g, before, "stranded@sender.test", "backend-lost", "connect", "")


def test_backend_421_to_mail_loses_the_leg_mid_group(lone, make_capture):
    # a 421 closes the leg with the group's RCPT unanswered
    cap = make_capture(mail_reply="421 4.3.0 capture.test closing")
    g = lone(cap.addr)
    before = g.counters()
    c = RawSMTP(g.p.port)
    c.cmd("EHLO client.sender.test")
    assert c.cmd("MAIL FROM:<closing@sender.test>").code == 250
    r = c.cmd("RCPT TO:<bob@example.org>")
    assert (r.code, r.enhanced) == (451, "4.4.2"), r.lines
    assert c.cmd("RCPT TO:<bob@example.org>").code == 503    # back in HELO
    c.sock.close()
    expect(g, before, "closing@sender.test", "backend-lost", "rcpt", "closed mid-group")


def test_backend_not_there(lone):
    g = lone("%s:%d" % (LOOPBACK, free_port()))
    before = g.counters()
    with smtp_client(g.p.port) as s:
        s.ehlo("client.sender.test")
        code, text = s.mail("nobackend@sender.test")
        assert code == 451 and b"backend not available" in text
    row = expect(g, before, "nobackend@sender.test", "backend-lost", "connect", "")
    assert row["mta_reply"], row     # what went wrong, e.g. connection refused


# ---- greylisting ------------------------------------------------------------

GREY = {"greylist.enabled": "yes", "greylist.delay": "300", "greylist.auto_allow": "0"}
GREY_REPLY = "450 4.7.1 Greylisted, try again in 300 seconds"


def grey_counts(g):
    st, _, body = g.http.request("GET", "/metrics")
    m = re.search(r'^postern_checks_total\{check="grey",result="defer"\} (\d+)$',
                  body.decode(), re.M)
    return int(m.group(1)) if m else 0


@pytest.mark.parametrize("then", ["quit", "rset", "drop"])
def test_greylist_deferral_recorded_whatever_follows(lone, capture, then):
    g = lone(capture.addr, GREY)
    before, grey0 = g.counters(), grey_counts(g)
    sender = "grey-%s@sender.test" % then
    c = RawSMTP(g.p.port)
    assert c.cmd("EHLO client.sender.test").code == 250
    assert c.cmd("MAIL FROM:<%s>" % sender).code == 250
    r = c.cmd("RCPT TO:<bob@example.org>")
    assert (r.code, r.lines[-1]) == (450, GREY_REPLY)
    if then == "quit":
        assert c.cmd("QUIT").code == 221
    elif then == "rset":
        assert c.cmd("RSET").code == 250
        # a second transaction in the same session is a record of its own
        assert c.cmd("MAIL FROM:<again-%s>" % sender).code == 250
        assert c.cmd("RCPT TO:<carol@example.org>").code == 450
    c.sock.close()
    row = expect(g, before, sender, "tempfail", "rcpt", "", verdict="tempfail",
                 reply=GREY_REPLY) if then != "rset" else None
    if then == "rset":
        first = g.record(sender)
        second = g.record("again-" + sender)
        for r in (first, second):
            assert (r["outcome"], r["stage"], r["reply"], r["mta_reply"]) == \
                ("tempfail", "rcpt", GREY_REPLY, "")
        after = g.counters()
        assert after[0]["tempfail"] - before[0].get("tempfail", 0) == 2
        assert grey_counts(g) - grey0 == 2
    else:
        assert [c["result"] for c in row["checks"] if c["check"] == "grey"] == ["defer"]
        assert grey_counts(g) - grey0 == 1
    assert not capture.all_lines() or b"RCPT" not in b" ".join(capture.all_lines())


# ---- headers a sender cannot forge -------------------------------------------

FORGED = [b"X-Spam-Flag: NO\r\n", b"X-Spam-Score: -100\r\n",
          b"x-spam-status:\r\n\tNo, score=-100 (folded)\r\n", b"X-Postern-Released: by me\r\n"]


@pytest.mark.parametrize("tag", [False, True])
def test_forged_spam_headers_never_reach_the_backend(lone, capture, tag):
    # tag_score 0: the message scores 0.0, so it is tagged (X-Spam-Flag: YES)
    g = lone(capture.addr, {"policy.tag_score": "0"} if tag else {})
    body = b"X-Spam-Flag: NO, says the body, and stays\r\n"
    msg = (b"From: a@sender.test\r\nTo: bob@example.org\r\n" + FORGED[0] +
           b"Subject: trust me\r\n" + b"".join(FORGED[1:]) + b"\r\n" + body)
    with smtp_client(g.p.port) as s:
        s.sendmail("forger@sender.test", ["bob@example.org"], msg)
    got = capture.wait_messages(1)[0].data
    # exact bytes: our header block, then the client's message without
    # exactly the forged fields
    clean = msg
    for f in FORGED:
        clean = clean.replace(f, b"", 1)
    assert got.endswith(clean), got
    ours = got[:-len(clean)]
    assert re.fullmatch(rb"(Received: [^\r]*\r\n(\t[^\r]*\r\n)*)?"
                        rb"Authentication-Results: [^\r]*\r\n(\t[^\r]*\r\n)*"
                        + (rb"X-Spam-Flag: YES\r\n" if tag else b"") +
                        rb"X-Spam-Score: 0\.0\r\n", ours), ours
    head = got.split(b"\r\n\r\n", 1)[0].lower()
    assert b"-100" not in head and b"spam-flag: no" not in head
    assert b"x-postern" not in head
    assert head.count(b"x-spam-score:") == 1
    assert head.count(b"x-spam-flag:") == (1 if tag else 0)
    row = g.record("forger@sender.test")
    assert (row["verdict"], row["outcome"]) == ("tag" if tag else "accept", "accept")


def test_dropped_client_mid_data_is_abandoned(lone, capture):
    g = lone(capture.addr)
    before = g.counters()
    c = RawSMTP(g.p.port)
    c.cmd("EHLO client.sender.test")
    c.cmd("MAIL FROM:<halfway@sender.test>")
    assert c.cmd("RCPT TO:<bob@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: half\r\n\r\nonly half of it")
    c.sock.shutdown(socket.SHUT_RDWR)
    c.sock.close()
    expect(g, before, "halfway@sender.test", "abandoned", "data", "")
    assert not capture.accepted()
