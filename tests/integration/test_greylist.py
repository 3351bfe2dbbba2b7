"""Greylisting with a clock the test controls (POSTERN_CLOCK_FILE) -- no
sleeping: first attempt, early retry, on-time retry, retry after the
window, auto-allowlisting, expiry and the background cleanup, state across
restarts (every `postern check` is a fresh process; and over SMTP with a
restarted server), networks (/24, /64), SPF-pass senders from
greylist.skip_domains and DNS allow lists skip it; a running server
decides a passed triplet from memory, on its I/O loop, until it expires.
"""
import re
import time

import pytest

from harness import wait_until
from harness.capture import Capture
from policyenv import PolicyEnv, rows, smtp_session, stage_counts

DAY = 86400
RECORDS = [
    'example.org. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"',
    'other.example. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"',
    "9.2.0.192.wl.test. 300 IN A 127.0.0.2",
]
CONF = "[greylist]\nenabled = yes\ndelay = 300\nretry_window = 2d\nexpire = 35d\nauto_allow = 0\n"


@pytest.fixture
def env():
    e = PolicyEnv(RECORDS, conf=CONF, record=True).start()
    yield e
    e.stop()


def rcpt(env, ip="203.0.113.5", mail="a@sender.example", to="b@example.net"):
    d = env.check(ip, helo="mx.sender.example", mail=mail, rcpts=[to])
    return d["verdict"], d.get("reply", "")


def wait_hint(reply):
    """The seconds in "450 4.7.1 Greylisted, try again in N seconds"."""
    m = re.fullmatch(r"450 4\.7\.1 Greylisted, try again in (\d+) seconds", reply)
    assert m, reply
    return int(m.group(1))


def smtp_rcpt(env, to):
    """One RCPT from a@sender.example over SMTP to the running server: its code."""
    s = smtp_session(env.port)
    s.ehlo("client.example")
    s.mail("a@sender.example")
    code = s.rcpt(to)[0]
    s.rset()
    s.quit()
    return code


def test_first_early_ontime(env):
    assert rcpt(env) == ("tempfail", "450 4.7.1 Greylisted, try again in 300 seconds")
    # the test clock is an offset on the real one: allow for real seconds
    # passing between two runs of postern
    env.clock(120)
    v, reply = rcpt(env)
    assert v == "tempfail" and 170 <= wait_hint(reply) <= 180
    env.clock(290)
    assert rcpt(env)[0] == "tempfail"
    env.clock(300)
    assert rcpt(env) == ("accept", "")
    # and from now on, without delay
    env.clock(5 * DAY)
    assert rcpt(env) == ("accept", "")


def test_triplet_parts(env):
    rcpt(env)
    env.clock(400)
    assert rcpt(env)[0] == "accept"
    # same /24, sender case differs: the same triplet
    assert rcpt(env, ip="203.0.113.77", mail="A@Sender.Example")[0] == "accept"
    # other network, other sender, other recipient: new triplets
    assert rcpt(env, ip="203.0.114.5")[0] == "tempfail"
    assert rcpt(env, mail="z@sender.example")[0] == "tempfail"
    assert rcpt(env, to="c@example.net")[0] == "tempfail"
    # the null sender is a sender like the others
    assert rcpt(env, mail="")[0] == "tempfail"


def test_ipv6_network_is_a_64(env):
    assert rcpt(env, ip="2001:db8:1:2::10")[0] == "tempfail"
    env.clock(301)
    assert rcpt(env, ip="2001:db8:1:2:ffff::1")[0] == "accept"
    assert rcpt(env, ip="2001:db8:1:3::10")[0] == "tempfail"
    assert rows(env.db, "SELECT net FROM greylist WHERE net LIKE '2001:%' ORDER BY net") == \
        [("2001:db8:1:2::/64",), ("2001:db8:1:3::/64",)]


def test_retry_after_window_starts_over(env):
    rcpt(env)
    env.clock(2 * DAY + 1)
    assert rcpt(env) == ("tempfail", "450 4.7.1 Greylisted, try again in 300 seconds")
    env.clock(2 * DAY + 301)
    assert rcpt(env)[0] == "accept"


def test_auto_allowlist(env):
    env.write_conf(CONF.replace("auto_allow = 0", "auto_allow = 2"))
    for i, who in enumerate(["one@s.example", "two@s.example"]):
        env.clock(i * 1000)
        assert rcpt(env, mail=who)[0] == "tempfail"
        env.clock(i * 1000 + 301)
        assert rcpt(env, mail=who)[0] == "accept"
    d = env.check("203.0.113.200", mail="three@s.example", rcpts=["b@example.net"])
    assert d["verdict"] == "accept"
    assert [r["result"] for r in d["results"] if r["check"] == "grey"] == ["auto"]
    # another network is not allowlisted
    assert rcpt(env, ip="203.0.114.1", mail="three@s.example")[0] == "tempfail"
    # the auto-allowlisting expires with the network's last pass
    env.clock(1301 + 36 * DAY)
    assert rcpt(env, mail="four@s.example")[0] == "tempfail"


def test_expiry_and_cleanup(env):
    rcpt(env)
    rcpt(env, to="keep@example.net")
    env.clock(301)
    assert rcpt(env)[0] == "accept"
    assert len(rows(env.db, "SELECT * FROM greylist")) == 2
    env.clock(301 + 36 * DAY)
    # the writer's housekeeping runs at start: both rows are past expiry
    assert rcpt(env)[0] == "tempfail"          # the expired triplet starts over
    assert rows(env.db, "SELECT rcpt FROM greylist") == [("b@example.net",)]


def test_spf_pass_from_skip_domain_not_greylisted(env):
    env.write_conf(CONF + "skip_domains = example.org\nskip_dkim_pass = no\n[spf]\nenabled = yes\n")
    d = env.check("192.0.2.10", helo="mx.example.org", mail="a@example.org", rcpts=["b@example.net"])
    assert d["verdict"] == "accept"
    assert [r["result"] for r in d["results"] if r["check"] == "grey"] == ["skip"]
    # SPF pass but not a skip domain: greylisted
    d = env.check("192.0.2.10", helo="mx.example.org", mail="a@other.example", rcpts=["b@example.net"])
    assert d["verdict"] == "tempfail"
    # skip domain but SPF fail: greylisted
    d = env.check("198.51.100.10", helo="mx.example.org", mail="a@example.org", rcpts=["b@example.net"])
    assert d["verdict"] == "tempfail"
    # and the feature can be off
    env.write_conf(CONF + "skip_domains = example.org\nskip_spf_pass = no\n[spf]\nenabled = yes\n")
    d = env.check("192.0.2.10", helo="mx.example.org", mail="b@example.org", rcpts=["b@example.net"])
    assert d["verdict"] == "tempfail"


def test_dns_allow_list_not_greylisted(env):
    env.write_conf(CONF + "[rbl]\nzones = wl.test*-2\n")
    assert rcpt(env, ip="192.0.2.9")[0] == "accept"
    assert rcpt(env, ip="192.0.2.8")[0] == "tempfail"


def test_smtp_greylist_survives_restart(env):
    sink = Capture().start()
    try:
        env.serve(sink)
        s = smtp_session(env.port)
        s.ehlo("client.example")
        s.mail("a@sender.example")
        assert s.rcpt("b@example.net") == (450, b"4.7.1 Greylisted, try again in 300 seconds")
        s.quit()
        assert env.stop_serving() == 0
        env.clock(301)
        env.serve()
        s = smtp_session(env.port)
        s.sendmail("a@sender.example", ["b@example.net"], b"Subject: retry\r\n\r\nhello\r\n")
        s.quit()
        assert len(sink.accepted()) == 1
        assert env.stop_serving() == 0
    finally:
        sink.stop()


def test_dkim_pass_from_skip_domain_decided_at_data():
    import authmail as am
    from dnszone import txt_rdata
    key = am.rsa_key(1024)
    e = PolicyEnv(RECORDS + ["sel._domainkey.example.org. 300 IN TXT %s" % txt_rdata(am.dkim_txt(key)),
                             "sel._domainkey.other.example. 300 IN TXT %s" % txt_rdata(am.dkim_txt(key))],
                  conf=CONF + "skip_domains = example.org\nskip_spf_pass = no\n"
                       "[dkim]\nenabled = yes\n", record=True).start()
    plain = am.message(frm="Alice <alice@example.org>")
    try:
        def data(msg, ip="203.0.113.5"):
            d = e.check(ip, helo="mx.example.org", mail="alice@example.org",
                        rcpts=["b@example.net"], message=msg)
            return d["stage"], d["verdict"], d.get("reply", "")
        # signed by the skip domain, aligned with From: passes at once
        assert data(am.sign(plain, key, domain="example.org")) == ("data", "accept", "")
        # unsigned: greylisted, but only at the end of DATA
        assert data(plain) == ("data", "tempfail",
                               "450 4.7.1 Greylisted, try again in 300 seconds")
        # a valid signature of a domain not aligned with From does not count
        assert data(am.sign(plain, key, domain="other.example"), ip="198.51.100.5")[1] == "tempfail"
        # the deferred triplet retried in time passes
        e.clock(301)
        assert data(plain)[1] == "accept"
        # an allowlisted recipient is not greylisted at DATA either
        e.access("add", "allow", "rcpt", "postmaster@example.net")
        d = e.check("203.0.113.5", helo="mx.example.org", mail="alice@example.org",
                    rcpts=["postmaster@example.net"], message=plain)
        assert d["verdict"] == "accept"
        d = e.check("203.0.113.5", helo="mx.example.org", mail="alice@example.org",
                    rcpts=["postmaster@example.net", "new@example.net"], message=plain)
        assert (d["stage"], d["verdict"]) == ("data", "tempfail")
        from policyenv import rows
        assert rows(e.db, "SELECT count(*) FROM greylist WHERE rcpt = 'postmaster@example.net'") == [(0,)]
    finally:
        e.stop()


def counted_rcpt(env, token, to):
    """smtp_rcpt, and the policy stages its session ran on the I/O loop
    and on a worker: (code, inline, worker)."""
    before = stage_counts(env.p.web_port, token)
    code = smtp_rcpt(env, to)
    after = stage_counts(env.p.web_port, token)
    return code, after[0] - before[0], after[1] - before[1]


def test_smtp_passed_triplet_decided_inline_until_it_expires(env):
    """A running server keeps what the database said about a passed
    triplet: its next RCPTs are decided on the I/O loop (no worker, no
    SQLite read), with the same answer; past greylist.expire that memory
    is not trusted and the triplet starts over."""
    token = "g" * 40
    env.write_conf(CONF + "[web]\napi_token = %s\n" % token)
    sink = Capture().start()

    def rcpt_via_smtp(to):
        return counted_rcpt(env, token, to)

    try:
        env.serve(sink)
        assert rcpt_via_smtp("b@example.net")[0] == 450
        env.clock(301)
        assert rcpt_via_smtp("b@example.net")[0] == 250      # retried in time
        known = rcpt_via_smtp("b@example.net")
        new = rcpt_via_smtp("c@example.net")
        assert known[0] == 250 and new[0] == 450
        assert known[1] - new[1] == 1, (known, new)           # RCPT inline
        assert new[2] - known[2] == 1, (known, new)           # RCPT on a worker
        env.clock(301 + 36 * DAY)
        assert rcpt_via_smtp("b@example.net")[0] == 450      # expired: starts over
        assert env.stop_serving() == 0
        assert rows(env.db, "SELECT passed FROM greylist WHERE rcpt = 'b@example.net'") == [(0,)]
    finally:
        sink.stop()


def test_smtp_admin_edit_keeps_passed_triplets_in_memory(env):
    """An admin edit that is not a greylist edit -- an access-list entry
    added by `postern access`, another process -- leaves the running
    server's memory of passed triplets alone: a passed triplet is still
    decided on the I/O loop after it, without a database read. Only a
    triplet forgotten by hand clears that memory (the API test below, and
    tests/integration/test_cluster.py across nodes)."""
    token = "k" * 40
    env.write_conf(CONF + "[web]\napi_token = %s\n" % token)
    sink = Capture().start()

    def refused(source):
        s = smtp_session(env.port, source=source)
        try:
            return s.banner[0] == 554
        finally:
            s.close()

    try:
        env.serve(sink)
        assert counted_rcpt(env, token, "b@example.net")[0] == 450
        env.clock(301)
        assert counted_rcpt(env, token, "b@example.net")[0] == 250
        known = counted_rcpt(env, token, "b@example.net")
        assert known[0] == 250
        assert env.access("add", "deny", "client", "127.0.0.9")[0] == 0
        # the server has seen the edit once it refuses that client
        wait_until(lambda: refused("127.0.0.9"), 5, interval=0.1,
                   what="the deny entry to reach the server")
        # a new triplet needs the database (and reloads what the edit moved)
        assert counted_rcpt(env, token, "c@example.net")[0] == 450
        assert counted_rcpt(env, token, "b@example.net") == known
        assert env.stop_serving() == 0
    finally:
        sink.stop()


def grey_text(d):
    return [r.get("reason", "") for r in d["results"] if r["check"] == "grey"]


def test_deferral_says_why_in_result_and_log(env):
    """Each deferral's check result (what the verdict row stores) and its
    log line name the reason: a new triplet, or a retry too early with the
    time it will pass (first seen + greylist.delay)."""
    d = env.check("203.0.113.5", helo="mx.sender.example", mail="a@sender.example",
                  rcpts=["b@example.net"])
    assert d["verdict"] == "tempfail" and grey_text(d) == ["new triplet"]
    assert re.search(r"greylist: defer 203\.0\.113\.0/24 from=<a@sender\.example> "
                     r"to=<b@example\.net>: new triplet$", d["_log"], re.M), d["_log"]
    first = rows(env.db, "SELECT first_seen FROM greylist")[0][0]
    env.clock(120)
    d = env.check("203.0.113.5", helo="mx.sender.example", mail="a@sender.example",
                  rcpts=["b@example.net"])
    import time as _t
    at = _t.strftime("%Y-%m-%dT%H:%M:%SZ", _t.gmtime(first + 300))
    assert grey_text(d) == ["retry too early (passes at %s)" % at], d["results"]
    assert re.search(r"greylist: defer .*: retry too early \(passes at %s\)$" % at,
                     d["_log"], re.M), d["_log"]
    env.clock(300)
    d = env.check("203.0.113.5", helo="mx.sender.example", mail="a@sender.example",
                  rcpts=["b@example.net"])
    assert d["verdict"] == "accept" and "greylist: defer" not in d["_log"]


def test_api_lists_reasons_and_passes_or_forgets_by_hand(env):
    """Over SMTP with the running server: GET /api/greylist shows each
    deferred triplet with its reason, attempts and pass time, the verdict
    rows and log lines say why; POST /api/greylist/pass lets the next
    attempt through at once, /forget makes it a new triplet again; bad
    bodies get 4xx and nothing changes without credentials."""
    import json
    from webapi import Http
    token = "h" * 40
    env.write_conf(CONF + "[web]\napi_token = %s\n" % token)
    sink = Capture().start()

    def attempt(to):
        return smtp_rcpt(env, to)

    def triplets():
        st, _, d = api.get("/api/greylist")
        assert st == 200
        return {t["rcpt"]: t for t in d["triplets"]}

    try:
        env.serve(sink)
        stage_counts(env.p.web_port, token)     # waits for the web listener
        api = Http(env.p.web_port, token=token)
        assert attempt("b@example.net") == 450
        t = triplets()["b@example.net"]
        assert (t["net"], t["sender"], t["state"], t["reason"], t["attempts"], t["passed"]) == \
            ("127.0.0.0/24", "a@sender.example", "new", "new triplet", 1, 0)
        assert t["pass_at"] == t["first_seen"] + 300
        env.clock(100)
        assert attempt("b@example.net") == 450
        t = triplets()["b@example.net"]
        assert (t["state"], t["reason"], t["attempts"]) == ("early", "retry too early", 2)
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t["pass_at"]))
        log = env.log()
        assert "to=<b@example.net>: new triplet" in log
        assert "to=<b@example.net>: retry too early (passes at %s)" % at in log
        deadline = time.monotonic() + 20        # the writer stores in batches
        while len(api.get("/api/verdicts")[2]["verdicts"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        reasons = json.dumps(api.get("/api/verdicts")[2]["verdicts"])
        assert "new triplet" in reasons and "retry too early (passes at %s)" % at in reasons

        key = {"net": "127.0.0.0/24", "sender": "A@Sender.Example", "rcpt": "b@example.net"}
        # without credentials nothing happens
        assert Http(env.p.web_port).post("/api/greylist/pass", key)[0] == 401
        # bad bodies
        for bad in ({}, {"net": "127.0.0.0/24", "sender": "a@sender.example"},
                    {"net": 1, "sender": "a@sender.example", "rcpt": "b@example.net"},
                    dict(key, rcpt=""), dict(key, net="x" * 65), "[1, 2]"):
            st, _, d = api.post("/api/greylist/pass", bad)
            assert st == 400, (bad, st, d)
        assert api.post("/api/greylist/pass", b"not json")[0] == 400
        assert api.post("/api/greylist/pass", dict(key, rcpt="nobody@example.net"))[0] == 404
        assert api.post("/api/greylist/forget", dict(key, rcpt="nobody@example.net"))[0] == 404
        assert api.post("/api/greylist/frob", key)[0] == 404
        assert api.get("/api/greylist/pass")[0] == 405
        assert triplets()["b@example.net"]["passed"] == 0

        # a pass by hand: the next attempt goes through at once
        st, _, d = api.post("/api/greylist/pass", key)
        assert st == 200 and d["done"] == "pass"
        assert triplets()["b@example.net"]["state"] == "passed"
        assert attempt("b@example.net") == 250
        # forget: the next attempt is a new triplet (also for the running
        # server, which remembered the pass)
        assert api.post("/api/greylist/forget", key)[0] == 200
        assert "b@example.net" not in triplets()
        assert attempt("b@example.net") == 450
        t = triplets()["b@example.net"]
        assert (t["reason"], t["attempts"]) == ("new triplet", 1)
        assert env.stop_serving() == 0
        # the hand pass did not count towards auto-allowlisting
        assert rows(env.db, "SELECT passes FROM grey_auto") in ([], [(0,)])
    finally:
        sink.stop()


def test_only_unverified_spares_verified_static_names():
    """greylist.only_unverified: a client with forward-confirmed reverse
    DNS and a mail server's name is not greylisted; one without verified
    rDNS, or whose verified name looks like a dynamic pool, still is."""
    e = PolicyEnv(RECORDS + [
        "mx1.big.example. 300 IN A 198.51.100.7",
        "7.100.51.198.in-addr.arpa. 300 IN PTR mx1.big.example.",
        "198-51-100-8.dyn.isp.example. 300 IN A 198.51.100.8",
        "8.100.51.198.in-addr.arpa. 300 IN PTR 198-51-100-8.dyn.isp.example.",
        "9.100.51.198.in-addr.arpa. 300 IN PTR liar.big.example.",
        "liar.big.example. 300 IN A 192.0.2.99",
    ], conf=CONF + "only_unverified = yes\n", record=True).start()
    try:
        d = e.check("198.51.100.7", helo="mx1.big.example", mail="a@big.example",
                    rcpts=["b@example.net"])
        assert d["client_name"] == "mx1.big.example"
        assert d["verdict"] == "accept"
        assert [(r["result"], r["reason"]) for r in d["results"] if r["check"] == "grey"] == \
            [("skip", "verified client name mx1.big.example")]
        for ip in ("198.51.100.8", "198.51.100.9", "198.51.100.10"):
            # one sender each: the three share a /24, hence a triplet
            d = e.check(ip, helo="h.example", mail="%s@big.example" % ip, rcpts=["b@example.net"])
            assert d["verdict"] == "tempfail", (ip, d["results"])
            assert grey_text(d) == ["new triplet"]
        # off: the verified client is greylisted as well
        e.write_conf(CONF + "only_unverified = no\n")
        d = e.check("198.51.100.7", helo="mx1.big.example", mail="z@big.example",
                    rcpts=["b@example.net"])
        assert d["verdict"] == "tempfail"
    finally:
        e.stop()
