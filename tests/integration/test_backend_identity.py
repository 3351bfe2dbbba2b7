"""Every client reaches the MTA as itself (issue 11, backend identity).

Postfix checks XCLIENT authorisation again against the address XCLIENT
just set, so with README.md's `smtpd_authorized_xclient_hosts = 127.0.0.1`
a backend connection stops offering XCLIENT after one introduction. Postern
must then not reuse it: a session on it would run under the last client's
address and HELO (its access checks, rate limits and logs). Only a
connection whose backend offers XCLIENT again goes back to the pool, every
reuse introduces the new client in full, a refused introduction never
carries a session, and after XCLIENT the backend hears the client's own
HELO/EHLO.

Real parts: Debian's Postfix (check_client_access / check_helo_access make
each client's identity visible in its replies and maillog), the capture
backend where the XCLIENT bytes matter, clients bound to 127.0.0.x and ::1.
One I/O thread: sequential sessions meet the same pool.
"""
import http.client
import json
import re
import socket
import time

import pytest

from harness import RawSMTP, make_message, wait_until
from harness.net import TIME_SCALE

ONE_LOOP = {"proxy.threads": 1}
ROUNDS = 3
POSTERN_HOST = "postern.test"   # the harness's proxy.hostname

# (source address, HELO verb, HELO name, what Postfix answers at RCPT)
CLEAN = ("127.0.0.5", "EHLO", "clean5.test", None)
BLOCKED = ("127.0.0.66", "EHLO", "clean66.test", "Client host rejected")
BAD_HELO = ("127.0.0.77", "EHLO", "bad.helo.test", "Helo command rejected")
OLD_HELO = ("127.0.0.8", "HELO", "clean8.test", None)   # RFC 821 client
CLIENTS = (CLEAN, BLOCKED, BAD_HELO, OLD_HELO)

WARN = re.compile(r"warn: RCPT from unknown\[([^\]]+)\]: helo-seen; from=<([^>]*)> "
                  r"to=<[^>]*> proto=(\w+) helo=<([^>]*)>")
REJECT = re.compile(r"reject: RCPT from unknown\[([^\]]+)\]: 554 5\.7\.1 [^;]*; "
                    r"from=<([^>]*)> to=<[^>]*> proto=(\w+) helo=<([^>]*)>")


def _access_postfix(make_postfix, xclient_hosts, extra=None, **kw):
    helo_map = ", ".join("{ %s = WARN helo-seen }" % h for h in
                         [c[2] for c in CLIENTS if c is not BAD_HELO] + [POSTERN_HOST])
    return make_postfix(xclient_hosts=xclient_hosts, main_extra={
        "smtpd_client_restrictions":
            "check_client_access inline:{ { 127.0.0.66 = REJECT blocked client } }",
        "smtpd_helo_restrictions":
            "check_helo_access inline:{ { bad.helo.test = REJECT bad helo }, %s }" % helo_map,
        **(extra or {})}, **kw)


def _session(port, client, sender, host="127.0.0.1"):
    """One session with one message; returns the RCPT and final replies.
    Postern has closed the connection (its backend leg is put back or
    closed) when this returns."""
    source, verb, helo, _ = client
    with RawSMTP(port, host=host, source=source) as c:
        assert c.cmd("%s %s" % (verb, helo)).code == 250
        t = c.transaction(sender, ["rcpt@example.org"], make_message(sender))
        assert c.cmd("QUIT").code == 221
        assert c.closed(), "Postern did not close after QUIT"
    return t["rcpts"][0], t["final"]


def _connects(log):
    return len(re.findall(r"\]: connect from \S+\[127\.0\.0\.1\]", log))


def _rounds(p, tag):
    """ROUNDS rounds of all CLIENTS in turn; returns {sender: client} and
    checks each client's own outcome, with its own address or HELO in the
    refusal."""
    sent = {}
    for r in range(ROUNDS):
        for client in CLIENTS:
            sender = "%s-r%d-%s@example.org" % (tag, r, client[0].replace(".", "-"))
            rcpt, final = _session(p.port, client, sender)
            sent[sender] = client
            if client[3] is None:
                assert rcpt.code == 250 and final is not None and final.code == 250, \
                    (client, rcpt, final)
                continue
            assert rcpt.code == 554 and client[3] in rcpt.text, (client, rcpt)
            assert final is None, (client, final)
            who = "[%s]" % client[0] if client is BLOCKED else "<%s>" % client[2]
            assert who in rcpt.text, (client, rcpt)
    return sent


def _check_maillog(log, sent):
    """Every transaction logged with its own client's address, HELO and
    protocol; none as Postern (127.0.0.1, its hostname)."""
    seen = {}
    for m in list(WARN.finditer(log)) + list(REJECT.finditer(log)):
        addr, sender, proto, helo = m.groups()
        seen[sender] = (addr, proto, helo)
    for sender, (source, verb, helo, _) in sent.items():
        assert sender in seen, "no maillog line for %s:\n%s" % (sender, log[-3000:])
        assert seen[sender] == (source, "ESMTP" if verb == "EHLO" else "SMTP", helo), \
            (sender, seen[sender])
    for line in log.splitlines():
        if "client=" in line or " reject: " in line or " warn: " in line:
            assert "[127.0.0.1]" not in line and "helo=<%s>" % POSTERN_HOST not in line, line


@pytest.mark.parametrize("xclient_hosts", ["postern", "all"])
def test_alternating_clients_each_reach_postfix_as_themselves(
        make_postfix, make_postern, xclient_hosts):
    """Default pool. With README.md's authorisation (127.0.0.1 only) no
    connection can be reused, and one warning says so; with a loopback
    smtpd that authorises every address the pool is reused. Either way
    each client meets Postfix's restrictions as itself."""
    pf = _access_postfix(make_postfix, xclient_hosts)
    p = make_postern(pf.addr, conf=ONE_LOOP)
    start = len(pf.maillog())
    sent = _rounds(p, xclient_hosts)
    last = max(sent)
    log = pf.wait_until_after(start, "from=<%s>" % last)[start:]
    _check_maillog(log, sent)
    sessions = ROUNDS * len(CLIENTS)
    if xclient_hosts == "postern":
        # no reuse: one backend connection per session
        assert _connects(log) == sessions, log
        assert p.log().count("proxy.backend_pool unused") == 1, p.log()
        assert "after XCLIENT the backend no longer offers it" in p.log()
    else:
        # reused: fewer connections than sessions (a leg whose RSET or
        # EHLO is still out when the next session starts is not taken)
        assert 1 <= _connects(log) < sessions, log
        assert "proxy.backend_pool unused" not in p.log()
    assert "backend refused XCLIENT" not in p.log()
    assert "backend probe: %s offers XCLIENT" % pf.addr in p.log()


def test_postfix_without_xclient_for_postern(make_postfix, make_postern):
    """Postern not authorised: Postfix sees every client as Postern. The
    probe says what that means; no connection is reused, so nothing of a
    session lingers into the next, and the one warning says why."""
    pf = _access_postfix(make_postfix, "none")
    p = make_postern(pf.addr, conf=ONE_LOOP)
    start = len(pf.maillog())
    senders = []
    for r in range(ROUNDS):
        for client in (CLEAN, BLOCKED):
            sender = "none-r%d-%s@example.org" % (r, client[0].replace(".", "-"))
            rcpt, final = _session(p.port, client, sender)
            # Postfix cannot tell 127.0.0.66 apart: it is not blocked there
            assert rcpt.code == 250 and final.code == 250, (client, rcpt, final)
            senders.append(sender)
    log = pf.wait_until_after(start, "from=<%s>" % senders[-1])[start:]
    assert _connects(log) == len(senders), log
    warns = {m.group(2): m.groups() for m in WARN.finditer(log)}
    for s in senders:   # always Postern's identity, never a previous client's
        assert warns[s] == ("127.0.0.1", s, "ESMTP", POSTERN_HOST), warns.get(s)
    plog = p.log()
    assert "offers neither XCLIENT nor XFORWARD to Postern" in plog
    assert "must not be in the MTA's relay-permitted networks" in plog
    assert "smtpd_authorized_xclient_hosts = 127.0.0.1" in plog
    assert plog.count("proxy.backend_pool unused") == 1, plog


def test_probe_runs_again_on_reload(make_postfix, make_postern):
    pf = _access_postfix(make_postfix, "none")
    p = make_postern(pf.addr, conf=ONE_LOOP)
    assert p.log().count("offers neither XCLIENT nor XFORWARD") == 1
    p.reload()
    wait_until(lambda: p.log().count("offers neither XCLIENT nor XFORWARD") == 2,
               10, what="a second probe after SIGHUP")


# ---- a backend that refuses the introduction (capture) -----------------------
RDNS_ZONES = {"test.": "static", "127.in-addr.arpa.": "static"}
RDNS_DATA = ["client.example.test. A 127.0.0.2",
             "2.0.0.127.in-addr.arpa. PTR client.example.test."]


@pytest.fixture
def dns(make_unbound):
    return make_unbound(local_zones=RDNS_ZONES, local_data=RDNS_DATA)


def _mail_lines(sess):
    return [l for l in sess.lines if l.upper().startswith(b"MAIL")]


def test_refused_name_is_retried_unavailable_on_a_fresh_connection(
        make_postern, make_capture, dns):
    """Postfix answers 501 for reverse names it finds invalid: the session
    goes on only after the backend took the client as NAME=[UNAVAILABLE],
    on a connection where nothing else was said."""
    def refuse_name(line, sess):
        if b"NAME=client.example.test" in line:
            return "501 5.5.4 Bad NAME syntax: client.example.test"
        return None
    cap = make_capture(xclient_reply=refuse_name)
    p = make_postern(cap.addr, resolver=dns.addr, conf=ONE_LOOP)
    src = ("127.0.0.2", "EHLO", "named.test", None)
    rcpt, final = _session(p.port, src, "named@example.org")
    assert rcpt.code == 250 and final.code == 250
    (m,) = cap.wait_messages(1)
    refused, used = cap.sessions
    assert b"NAME=client.example.test" in refused.xclient[0]
    assert not _mail_lines(refused), refused.lines      # nothing ran there
    assert m.session is used
    assert b"NAME=[UNAVAILABLE]" in used.xclient[0] and b"ADDR=127.0.0.2" in used.xclient[0]
    assert "backend refused XCLIENT for [127.0.0.2]" in p.log()


@pytest.mark.parametrize("source", ["127.0.0.2", "127.0.0.3"])   # named, unnamed
def test_backend_refusing_xclient_gets_the_client_a_4xx(make_postern, make_capture,
                                                         dns, source):
    cap = make_capture(xclient_reply=lambda line, sess:
                       "550 5.7.0 Error: insufficient authorization")
    p = make_postern(cap.addr, resolver=dns.addr, conf=ONE_LOOP)
    with RawSMTP(p.port, source=source) as c:
        c.ehlo("refused.test")
        r = c.cmd("MAIL FROM:<refused@example.org>")
        r = c.cmd("RCPT TO:<rcpt@example.org>") if r.code == 250 else r
        assert r.code // 100 == 4, r
        c.cmd("QUIT")
    wait_until(lambda: all(s.closed for s in cap.sessions), what="backend legs closed")
    assert cap.sessions and not any(_mail_lines(s) for s in cap.sessions), \
        [s.lines for s in cap.sessions]
    # one retry with NAME=[UNAVAILABLE] for the named client, none otherwise
    assert len(cap.sessions) == (2 if source == "127.0.0.2" else 1)


def test_pooled_connection_refusing_the_next_client_is_replaced(make_postern, make_capture):
    """A backend that offered XCLIENT but refuses it for the next client:
    that connection still carries the last client, so the next session
    goes to a fresh one."""
    cap = make_capture(xclient_reply=lambda line, sess:
                       "550 5.7.0 Error: insufficient authorization"
                       if len(sess.xclient) > 1 else None)
    p = make_postern(cap.addr, conf=ONE_LOOP)
    assert _session(p.port, CLEAN, "first@example.org")[1].code == 250
    assert _session(p.port, BLOCKED, "second@example.org")[1].code == 250
    m1, m2 = cap.wait_messages(2)
    first, second = cap.sessions
    assert m1.session is first and m2.session is second
    assert [l for l in first.lines if l.startswith(b"MAIL")] == [m1.mail_from]
    assert b"ADDR=127.0.0.66" in first.xclient[1]     # refused there...
    assert b"ADDR=127.0.0.66" in second.xclient[0]    # ...and introduced here
    assert "on a pooled connection" in p.log()


def test_full_introduction_and_own_helo_on_reuse(make_postern, make_capture):
    """Every reuse sends every attribute the backend names, LOGIN as
    [UNAVAILABLE] and DESTADDR/DESTPORT as where the client connected; the
    greeting after XCLIENT is the client's own EHLO or HELO."""
    cap = make_capture()
    cap.xclient_attrs = "NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT"
    p = make_postern(cap.addr, conf=ONE_LOOP)
    assert _session(p.port, CLEAN, "a@example.org")[1].code == 250
    assert _session(p.port, BLOCKED, "b@example.org")[1].code == 250
    cap.wait_messages(2)
    (sess,) = cap.sessions
    for x, (src, _, helo, _) in zip(sess.xclient, (CLEAN, BLOCKED)):
        words = x.split(b" ")
        assert b"ADDR=" + src.encode() in words and b"HELO=" + helo.encode() in words, x
        for attr in (b"NAME=", b"PORT=", b"PROTO=ESMTP", b"LOGIN=[UNAVAILABLE]",
                     b"DESTADDR=127.0.0.1", b"DESTPORT=%d" % p.port):
            assert any(w.startswith(attr) for w in words), (attr, x)
        after = sess.lines[sess.lines.index(x) + 1]
        assert after == b"EHLO " + helo.encode(), sess.lines


# ---- IPv6 ------------------------------------------------------------------
def _has_ipv6():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_v6 = pytest.mark.skipif(not _has_ipv6(), reason="no ::1 on this machine")
TOKEN = "identity-test-token-" + "y" * 24


def _v6_postern(make_postern, backend, **conf):
    from harness import free_port
    v6 = free_port()
    p = make_postern(backend, start=False,
                     conf=dict(ONE_LOOP, **{"web.api_token": TOKEN}, **conf))
    p.settings["proxy.listen"] = "127.0.0.1:%d, [::1]:%d" % (p.port, v6)
    p.start()
    return p, v6


@needs_v6
def test_ipv6_client_introduced_as_ipv6(make_postern, make_capture):
    cap = make_capture()
    p, v6 = _v6_postern(make_postern, cap.addr)
    with RawSMTP(v6, host="::1") as c:
        c.ehlo("v6.test")
        assert c.transaction("v6@example.org", ["rcpt@example.org"],
                             make_message("v6"))["final"].code == 250
    (m,) = cap.wait_messages(1)
    words = m.session.xclient[0].split(b" ")
    assert b"ADDR=IPV6:::1" in words and b"HELO=v6.test" in words, words


@needs_v6
def test_ipv6_client_reaches_postfix_and_the_api(make_postfix, make_postern):
    # ::1 is outside the harness's mynetworks (127.0.0.0/8): Postfix relays
    # for it only to a domain it serves
    pf = _access_postfix(make_postfix, "postern", ipv6=True,
                         extra={"relay_domains": "example.org"})
    p, v6 = _v6_postern(make_postern, pf.addr)
    start = len(pf.maillog())
    with RawSMTP(v6, host="::1") as c:
        assert c.cmd("EHLO clean5.test").code == 250
        t = c.transaction("v6pf@example.org", ["rcpt@example.org"], make_message("v6pf"))
        assert t["final"] is not None and t["final"].code == 250, \
            (t, p.log()[-2000:], pf.maillog()[-2000:])
    log = pf.wait_until_after(start, "from=<v6pf@example.org>")[start:]
    # the name is what Postern verified (unbound answers for ::1 itself)
    assert re.search(r"RCPT from [\w.]+\[::1\]: helo-seen; from=<v6pf@example.org>", log), log
    assert re.search(r"client=[\w.]+\[::1\]", log), log

    def verdicts():   # the db writer commits in batches
        conn = http.client.HTTPConnection("127.0.0.1", p.web_port, timeout=10)
        conn.request("GET", "/api/verdicts?limit=5",
                     headers={"Authorization": "Bearer " + TOKEN})
        r = conn.getresponse()
        body = r.read().decode()
        assert r.status == 200, body
        return json.loads(body)["verdicts"]
    (v,) = wait_until(verdicts, 10, what="the verdict in /api/verdicts")
    assert "::1" in json.dumps(v), v


def test_helo_client_greets_backend_with_helo_then_pool_asks_with_ehlo(
        make_postern, make_capture):
    """An RFC 821 client: the backend hears HELO with its name after
    XCLIENT (no ESMTP parameters follow). Its reply lists no extensions,
    so before the leg may serve the next client the pool asks with an
    EHLO of its own whether XCLIENT is still offered."""
    cap = make_capture()
    p = make_postern(cap.addr, conf=ONE_LOOP)
    assert _session(p.port, OLD_HELO, "old@example.org")[1].code == 250
    # the leg is idle only once the pool's own EHLO is answered; a client
    # that comes sooner rightly gets a connection of its own
    wait_until(lambda: b"EHLO " + POSTERN_HOST.encode() in cap.sessions[0].lines,
               what="the pool's EHLO")
    # the capture has the EHLO; Postern still has to read its answer, and
    # nothing outside shows when it has (a loaded CI machine once let the
    # next client in first): a bounded pause for that
    time.sleep(0.3 * TIME_SCALE)
    assert _session(p.port, CLEAN, "new@example.org")[1].code == 250
    m1, m2 = cap.wait_messages(2)
    (sess,) = cap.sessions
    lines = sess.lines
    x1, x2 = sess.xclient
    assert lines[lines.index(x1) + 1] == b"HELO clean8.test"
    assert b"PROTO=SMTP" in x1.split(b" ")
    assert m1.mail_from == b"MAIL FROM:<old@example.org>"    # no ESMTP parameters
    between = lines[lines.index(m1.mail_from):lines.index(x2)]
    assert b"EHLO " + POSTERN_HOST.encode() in between, lines
    assert lines[lines.index(x2) + 1] == b"EHLO clean5.test"


@needs_v6
def test_ipv6_client_in_access_list_greylist_and_api(make_postern, make_capture):
    """A real session from ::1: greylisted by its /64 (the API lists the
    network), and once ::1/128 is on the deny list, refused at connect."""
    import subprocess
    from harness import POSTERN_BIN
    cap = make_capture()
    p, v6 = _v6_postern(make_postern, cap.addr, **{"greylist.enabled": "yes",
                                                   "greylist.delay": 300})
    with RawSMTP(v6, host="::1") as c:
        c.ehlo("v6.test")
        assert c.cmd("MAIL FROM:<grey6@example.org>").code == 250
        r = c.cmd("RCPT TO:<rcpt@example.org>")
        assert r.code == 450 and "Greylisted" in r.text, r
    conn = http.client.HTTPConnection("127.0.0.1", p.web_port, timeout=10)
    conn.request("GET", "/api/greylist", headers={"Authorization": "Bearer " + TOKEN})
    resp = conn.getresponse()
    body = resp.read().decode()
    assert resp.status == 200 and "::/64" in body, body
    r = subprocess.run([POSTERN_BIN, "access", "add", "deny", "client", "::1/128",
                        "-c", p.conf_path], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr

    def refused():
        with RawSMTP(v6, host="::1") as c:
            return c.banner.code == 554 and c.banner
    wait_until(refused, 10, what="::1 refused at connect after the deny entry")
    assert not cap.messages


def test_xforward_introduces_every_transaction(make_postern, make_capture):
    """Postfix resets XFORWARD attributes with each transaction: the
    second message of a session must be introduced again, or the MTA logs
    it as Postern's."""
    cap = make_capture(xclient=False, xforward=True)
    p = make_postern(cap.addr, conf=ONE_LOOP)
    with RawSMTP(p.port, source="127.0.0.5") as c:
        c.ehlo("two.test")
        for n in (1, 2):
            sender = "xf%d@example.org" % n
            t = c.transaction(sender, ["rcpt@example.org"], make_message(sender))
            assert t["final"].code == 250, t
        c.cmd("QUIT")
    for m in cap.wait_messages(2):
        lines = m.session.lines
        before = lines[:lines.index(m.mail_from)]
        last_intro = [l for l in before if l.startswith(b"XFORWARD")][-1]
        assert b"ADDR=127.0.0.5" in last_intro.split(b" "), lines
        # nothing of the last transaction between its introduction and MAIL
        assert not any(l.startswith(b"MAIL") for l in before[before.index(last_intro):]), lines
