"""A stage run speculatively on the I/O loop gives what a run on a worker
gives, and an undone speculation leaves nothing behind.

pol_run_here() runs a stage with DNS answers from the cache only and keeps
it when nothing was missing; otherwise the session is put back and a worker
runs the stage again (policy/policy.c, docs/policy.md). These tests hold
that to "the same result as a fresh evaluation on a worker": under a DNS
budget that checks before SPF spend, across RSET and several transactions
of one session, after speculations that were undone (a sender refused
after SPF ran, a DNS list not cached), and when a rule sends the stage to a
worker whatever the cache holds.
"""
import re
import subprocess
import time

from harness.capture import Capture
from policyenv import POSTERN, PolicyEnv, smtp_session, stage_counts

TOKEN = "p" * 40
CHAIN = 8


def chain_records():
    """cK.pr.test needs K TXT lookups: an include chain down to c1."""
    recs = ['c1.pr.test. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"']
    for k in range(2, CHAIN + 1):
        recs.append('c%d.pr.test. 300 IN TXT "v=spf1 include:c%d.pr.test -all"' % (k, k - 1))
    return recs


RECORDS = chain_records() + [
    'fail.pr.test. 300 IN TXT "v=spf1 -all"',
    'late.pr.test. 300 IN TXT "v=spf1 -all"',
    '_dmarc.c1.pr.test. 300 IN TXT "v=DMARC1; p=reject"',
    '_dmarc.rej.test. 300 IN TXT "v=DMARC1; p=reject"',
    '_dmarc.late.test. 300 IN TXT "v=DMARC1; p=reject"',
]


def env(conf=""):
    return PolicyEnv(RECORDS, conf="[greylist]\nenabled = no\n[spf]\nenabled = yes\n"
                     "fail_score = 1\n[web]\napi_token = %s\n" % TOKEN + conf).start()


def counted(e, client):
    """Run client(smtp) in one SMTP session (EHLO done, QUIT after):
    (stages run inline, stages sent to a worker, the smtp object)."""
    before = stage_counts(e.p.web_port, TOKEN)
    s = smtp_session(e.port)
    s.ehlo("client.pr.test")
    client(s)
    s.quit()
    after = stage_counts(e.p.web_port, TOKEN)
    return after[0] - before[0], after[1] - before[1], s


def mail(sender):
    """A client sending one short message from sender."""
    return lambda s: s.sendmail(sender, ["b@example.net"], b"Subject: x\r\n\r\nbody\r\n")


def spf_results(log):
    """{sender: [spf result of each logged transaction, in order]}."""
    got = {}
    for m in re.finditer(r"from=<([\w.@-]+)>.* spf=(\w+) ", log):
        got.setdefault(m.group(1), []).append(m.group(2))
    return got


def test_spf_reuse_under_budget_spent_before_spf():
    """The DNS-list check runs before SPF at MAIL and spends one question
    of the session's budget: for each include chain length, the run on the
    I/O loop (cached) must give what the run on a worker (cold) gave --
    pass while the budget lasts, temperror past it, and at the exact edge
    too."""
    sink = Capture().start()
    e = env("[rbl]\nrhsbl_zones = dbl.pr.test*1\n[dns]\nsession_budget = 10\n")

    def session(sender):
        return counted(e, mail(sender))

    try:
        e.serve(sink)
        session("warm@warm.pr.test")        # CONNECT, HELO answers; quarantine tick
        for k in range(1, CHAIN + 1):
            cold = session("x@c%d.pr.test" % k)
            warm = session("y@c%d.pr.test" % k)
            assert warm[0] - cold[0] == 1, (k, cold, warm)   # MAIL inline the second time
        assert e.stop_serving() == 0
        got = spf_results(e.log())
        results = []
        for k in range(1, CHAIN + 1):
            x, y = got["x@c%d.pr.test" % k], got["y@c%d.pr.test" % k]
            assert x == y, (k, x, y)
            results.append(x[0])
        # the budget cut the chain somewhere in the middle
        assert results[0] == "pass" and results[-1] == "temperror", results
    finally:
        e.stop()
        sink.stop()


def test_nothing_leaks_into_the_next_transaction():
    """One session, several transactions: each sender gets its own SPF and
    DMARC result, after RSET and after a completed transaction, whether
    the next sender's answers are cached (inline) or not (a worker)."""
    import smtplib
    sink = Capture().start()
    e = env("[dmarc]\nenabled = yes\n[rbl]\nrhsbl_zones = dbl.pr.test*1\n")
    # refused at MAIL by the access list, which runs before SPF: SPF
    # never runs for it
    assert e.access("add", "deny", "sender", "d@c1.pr.test")[0] == 0
    plain = b"From: x@plain.test\r\nSubject: a\r\n\r\nbody\r\n"    # no DMARC record
    aligned = b"From: x@c1.pr.test\r\nSubject: b\r\n\r\nbody\r\n"  # SPF c1 aligns
    rej = b"From: z@rej.test\r\nSubject: c\r\n\r\nbody\r\n"         # p=reject, unaligned
    late = b"From: z@late.test\r\nSubject: d\r\n\r\nbody\r\n"

    def send(s, sender, msg):
        try:
            s.sendmail(sender, ["b@example.net"], msg)
            return 250
        except smtplib.SMTPDataError as ex:
            return ex.smtp_code

    try:
        e.serve(sink)
        s = smtp_session(e.port)
        s.ehlo("client.pr.test")
        assert send(s, "a@c1.pr.test", plain) == 250            # cold: a worker
        assert send(s, "b@fail.pr.test", plain) == 250          # spf=fail scores 1 only
        assert send(s, "c@c1.pr.test", plain) == 250            # cached: inline
        assert s.mail("d@c1.pr.test")[0] == 550                 # refused first
        # never seen: the DNS list's answer is not cached, so the
        # speculation is undone after it and the stage goes to a worker --
        # nothing of it may be taken for f's
        assert send(s, "f@late.pr.test", plain) == 250
        assert s.mail("d@c1.pr.test")[0] == 550
        s.rset()
        assert send(s, "e@fail.pr.test", plain) == 250          # cached: inline
        assert s.mail("c@c1.pr.test")[0] == 250                 # run, then
        s.rset()                                                # dropped
        assert send(s, "b@fail.pr.test", plain) == 250
        assert send(s, "g@c1.pr.test", aligned) == 250          # DMARC pass, cold
        assert send(s, "h@c1.pr.test", rej) == 550              # DMARC fail, cold
        assert send(s, "i@c1.pr.test", aligned) == 250          # cached: inline
        assert send(s, "j@c1.pr.test", rej) == 550              # cached: inline
        assert send(s, "k@c1.pr.test", aligned) == 250
        assert send(s, "l@c1.pr.test", late) == 550             # cold, after a pass
        s.quit()
        assert e.stop_serving() == 0
        log = e.log()
        got = spf_results(log)
        want = {"a@c1.pr.test": ["pass"], "b@fail.pr.test": ["fail", "fail"],
                "c@c1.pr.test": ["pass"], "e@fail.pr.test": ["fail"],
                "f@late.pr.test": ["fail"]}
        for sender, results in want.items():
            assert got[sender][-len(results):] == results, (sender, got.get(sender))
        dmarc = dict(re.findall(r"from=<([\w.@-]+)>.* dmarc=(\w+) ", log))
        for sender in want:
            assert dmarc[sender] == "none", dmarc
        for sender in "gik":
            assert dmarc[sender + "@c1.pr.test"] == "pass", dmarc
        for sender in "hjl":
            assert dmarc[sender + "@c1.pr.test"] == "fail", dmarc
        # what the undone speculations logged (a list "did not answer"
        # because its answer was not cached yet) was dropped with them
        assert "not in the cache" not in log
    finally:
        e.stop()
        sink.stop()


def test_worker_after_cached_spf_evaluates_afresh(tmp_path):
    """The rules edited while a session runs send its next MAIL to a worker
    (the rule check reads the new set) although SPF's answers are all
    cached: the worker evaluates SPF itself, with the result the I/O loop
    would have given."""
    sink = Capture().start()
    e = env()
    try:
        rules = tmp_path / "rules.txt"
        rules.write_text("never | mail_from | /@never\\.example$/ | score 1\n")

        def import_rules():
            r = subprocess.run([POSTERN, "rules", "import", str(rules), "-c", e.conf],
                               capture_output=True, text=True, timeout=60, env=e.env())
            assert r.returncode == 0, r.stderr
        import_rules()
        e.serve(sink)

        def envelope(sender):
            # the session's first transaction keeps the set read at
            # CONNECT; the second one asks again, after the edit
            def client(s):
                assert s.mail("first@c1.pr.test")[0] == 250
                s.rset()
                import_rules()
                # another process's edit reaches the daemon through the
                # edit version it polls every 500 ms (docs/cluster.md)
                time.sleep(1.5)
                assert s.mail(sender)[0] == 250
                s.rset()
            return client

        counted(e, mail("warm@c1.pr.test"))
        counted(e, mail("warm@fail.pr.test"))
        # SPF's answers are cached, yet the second MAIL (the rules) goes
        # to a worker; CONNECT, HELO and the first MAIL stay inline
        assert counted(e, envelope("w@c1.pr.test"))[1] == 1
        counted(e, mail("warm@c1.pr.test"))     # CONNECT re-reads the access lists
        assert counted(e, envelope("w@fail.pr.test"))[1] == 1
        counted(e, mail("x@c1.pr.test"))
        counted(e, mail("y@fail.pr.test"))
        assert e.stop_serving() == 0
        got = spf_results(e.log())
        assert got["x@c1.pr.test"] == ["pass"], got
        assert got["y@fail.pr.test"] == ["fail"], got
        assert got["w@c1.pr.test"] == ["pass"], got
        assert got["w@fail.pr.test"] == ["fail"], got
    finally:
        e.stop()
        sink.stop()


def test_dns_lists_reuse_under_budget_spent_by_rdns():
    """At CONNECT the rDNS check runs before the DNS lists and spends some
    of the session's budget: the lists asked inline (every answer cached)
    must be the ones asked on a worker (cold) -- the same listings, the
    same lists left unasked, each logged once."""
    from harness.net import wait_until
    recs = ["1.0.0.127.l%d.pr.test. 300 IN A 127.0.0.2" % i for i in (1, 2, 3)]
    sink = Capture().start()
    e = PolicyEnv(RECORDS + recs, conf="[greylist]\nenabled = no\n[rbl]\n"
                  "zones = l1.pr.test*0.5, l2.pr.test*0.5, l3.pr.test*0.5\n"
                  "[dns]\nsession_budget = 2\n[web]\napi_token = %s\n" % TOKEN).start()

    def session():
        port = []
        inline, _, s = counted(e, lambda s: port.append(s.sock.getsockname()[1]))
        port = port[0]
        sid = re.search(r"(\w+): connect from \[127\.0\.0\.1\]:%d\b" % port, e.log()).group(1)
        log = "\n".join(l for l in e.log().splitlines() if sid + ":" in l)
        return (inline, [log.count("listed at l%d.pr.test" % i) for i in (1, 2, 3)],
                log.count("not asked: DNS budget spent"))

    def budget(n):
        done = e.log().count("reload: configuration")
        e.p.reload({"dns.session_budget": n})
        wait_until(lambda: e.log().count("reload: configuration") > done or None, 15,
                   what="reload")

    try:
        e.serve(sink)                   # its port probe's CONNECT: rDNS spends
        # the whole budget, no list is asked -- done before the reload, or
        # a loaded machine runs it under the next budget and caches l1
        wait_until(lambda: "not asked: DNS budget spent" in e.log() or None, 15,
                   what="the port probe's CONNECT stage")
        budget(3)
        cold = session()                # a worker: the list rDNS leaves is not cached
        budget(10)
        session()                       # now every list's answer is
        budget(3)
        warm = session()
        assert warm[0] > cold[0], (cold, warm)          # CONNECT inline this time
        assert warm[1:] == cold[1:], (cold, warm)
        # the budget cut the lists: l2 and l3 unasked, said once each
        assert cold[2] == 2 and cold[1] == [1, 0, 0], cold
        assert e.stop_serving() == 0
    finally:
        e.stop()
        sink.stop()
