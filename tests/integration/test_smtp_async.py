"""The asynchronous policy path of the proxy: verdicts come back to the loop
by session id; a verdict whose session is gone is dropped and its
pol_session and spool freed by the loop (STYLE.md habit 12); draining
waits for every job still out.

A zone served by a DNS server that never answers makes SPF (at MAIL) and
DKIM (at DATA) wait for dns.timeout, so a verdict can be made to outlive
its session: a SIGTERM whose drain_timeout is shorter ends the session with
421 4.3.2 while its job is still out. Run with POSTERN_BIN pointing at an
ASan+UBSan build to have a use-after-free or leak fail these tests (the
harness refuses a log with sanitizer reports, and the exit code changes)."""
import signal

from harness import RawSMTP, make_message, stuff, wait_until

DNS_TIMEOUT_MS = 3000
DKIM_SLOW = ("DKIM-Signature: v=1; a=rsa-sha256; d=slow.test; s=sel; c=relaxed/relaxed;"
             " h=from:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA")


def _slow_postern(make_postern, make_unbound, capture, **conf):
    u = make_unbound(blackhole_zones=["slow.test."])
    settings = {"dns.timeout": DNS_TIMEOUT_MS, "policy.workers": 4,
                "proxy.drain_timeout": 1}
    settings.update(conf)
    return make_postern(capture.addr, resolver=u.addr, conf=settings), u


def test_verdict_for_a_session_ended_by_drain_is_dropped(make_postern, make_unbound, capture):
    p, u = _slow_postern(make_postern, make_unbound, capture)
    clients = []
    for _ in range(3):
        c = RawSMTP(p.port, timeout=20)
        c.ehlo()
        c.send(b"MAIL FROM:<someone@slow.test>\r\n")
        clients.append(c)
    wait_until(lambda: u.blackhole.queries >= 3, timeout=10, what="the SPF lookups")
    p.signal(signal.SIGTERM)
    for c in clients:   # the deadline passes while the verdicts are out
        r = c.reply()
        assert (r.code, r.enhanced) == (421, "4.3.2"), r
        assert c.closed()
        c.close()
    # exit 0 and a clean log only once the dropped verdicts came back
    assert p.stop(check=True) == 0
    assert p.log().count("reason=shutdown") == 3
    assert capture.sessions == []       # MAIL never got as far as the backend


def test_verdict_at_data_dropped_with_its_file_spool(make_postern, make_unbound, capture):
    # a small spool_memory puts the message in a file, mmapped for policy;
    # the job keeps it alive after the session is gone
    p, u = _slow_postern(make_postern, make_unbound, capture,
                         **{"proxy.spool_memory": 1024})
    c = RawSMTP(p.port, timeout=20)
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(stuff(make_message("slow dkim", size=40000, headers=[DKIM_SLOW])))
    wait_until(lambda: u.blackhole.queries >= 1, timeout=10, what="the DKIM key lookup")
    p.signal(signal.SIGTERM)
    r = c.reply()
    assert (r.code, r.enhanced) == (421, "4.3.2"), r
    c.close()
    assert p.stop(check=True) == 0
    assert capture.messages == []       # the client never heard 250: not delivered


def test_client_leaving_during_mail_verdict_costs_the_backend_no_mail(
        make_postern, make_unbound, capture):
    p, u = _slow_postern(make_postern, make_unbound, capture,
                         **{"proxy.drain_timeout": 30})
    c = RawSMTP(p.port, timeout=20)
    c.ehlo()
    c.send(b"MAIL FROM:<someone@slow.test>\r\n")
    c.close()
    # the session ends once its verdict is back and the close is seen
    wait_until(lambda: "reason=lost connection" in p.log(), timeout=30,
               what="the session to end")
    # MAIL goes to the backend only with an accepted RCPT: none came
    assert not any(l.startswith(b"MAIL") for s in capture.sessions for l in s.lines)
    with RawSMTP(p.port) as c2:
        c2.ehlo()
        r = c2.transaction("a@example.org", ["b@example.org"], make_message("after"))
        assert r["final"].code == 250, r
    assert len(capture.messages) == 1
    assert p.stop(check=True) == 0
