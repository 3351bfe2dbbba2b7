"""Regex rules end to end: `postern rules import/export/test`, rules applied
over SMTP at their stage, hot reload while a load runs, runaway patterns.

Real parts: build/postern serving, the harness's unbound and capture
backend, Python smtplib clients; all on loopback.
"""
import os
import subprocess
import threading
import time

import pytest

from harness import POSTERN_BIN, wait_until
from harness.net import TIME_SCALE
from harness.client import smtp_client

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAILDIR = os.path.join(ROOT, "tests", "data", "mail")


def mail(name):
    """A sample message with CRLF line ends."""
    with open(os.path.join(MAILDIR, name), "rb") as f:
        return f.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def hdr(msg, name):
    """The one value of a header in a captured message."""
    v = msg.header(name)
    assert len(v) == 1, (name, v)
    return v[0]


def cli(p, *args, stdin=None):
    r = subprocess.run([POSTERN_BIN, *args, "-c", p.conf_path], capture_output=True,
                       text=True, timeout=60, input=stdin)
    return r.returncode, r.stdout, r.stderr


def rules_file(workdir, text, name="rules.txt"):
    path = workdir.join(name)
    with open(path, "w") as f:
        f.write(text)
    return path


def prepared(make_postern, backend, workdir, rules, conf=None):
    """A Postern with its rule table imported by the CLI, then started."""
    p = make_postern(backend, conf=conf or {}, start=False)
    p.write_config()
    rc, out, err = cli(p, "rules", "import", rules_file(workdir, rules))
    assert rc == 0, err
    p.start()
    return p


def send(port, mail_from, rcpts, msg, helo="client.example.net"):
    """One message; returns (code, text) of the final reply, or of the first
    refusal."""
    with smtp_client(port) as s:
        s.ehlo(helo)
        code, text = s.mail(mail_from)
        if code != 250:
            return code, text
        for r in rcpts:
            code, text = s.rcpt(r)
            if code != 250:
                return code, text
        code, text = s.data(msg)
        return code, text


RULES = r"""# test rules
subj_viagra | subject | /viagra/i | reject
html_body | body | /cheap viagra/i | score 2.5
mailer | header:X-Mailer | /^Bulk Sender/ | score 0.5
bad_sender | mail_from | /@spam\.example$/ | reject
bad_helo | helo | /^\d+\.\d+\.\d+\.\d+$/ | score 1
exe | attachment | /\.exe$/i | reject 1
postmaster | rcpt_to | /^blocked@/ | tempfail
watch_only | subject | /^never-sent$/ | reject 2 log-only
"""


def test_import_export_round_trip(make_postern, capture, workdir):
    p = make_postern(capture.addr, start=False)
    p.write_config()
    rc, out, err = cli(p, "rules", "import", rules_file(workdir, RULES))
    assert rc == 0, err
    rc, out, err = cli(p, "rules", "export")
    assert rc == 0, err
    lines = [l for l in out.splitlines() if l and not l.startswith("#")]
    assert lines == [l for l in RULES.splitlines() if l and not l.startswith("#")]
    # re-importing the export changes nothing; --replace drops the rest
    rc, _, err = cli(p, "rules", "import", rules_file(workdir, out, "again.txt"))
    assert rc == 0, err
    rc, _, err = cli(p, "rules", "import", "--replace",
                     rules_file(workdir, "only | subject | /x/ | score 1\n", "one.txt"))
    assert rc == 0, err
    assert cli(p, "rules", "export")[1].splitlines()[1:] == ["only | subject | /x/ | score 1"]


def test_bad_rule_file_refused_whole(make_postern, capture, workdir):
    p = make_postern(capture.addr, start=False)
    p.write_config()
    assert cli(p, "rules", "import", rules_file(workdir, RULES))[0] == 0
    bad = "ok | subject | /fine/ | score 1\nbroken | body | /(unclosed/ | score 1\n"
    rc, out, err = cli(p, "rules", "import", rules_file(workdir, bad, "bad.txt"))
    assert rc == 1
    assert "line 2" in err and "offset 9" in err and "missing closing parenthesis" in err
    # nothing of the bad file went in
    assert "ok |" not in cli(p, "rules", "export")[1]


def test_rule_test_cli(make_postern, capture, workdir):
    p = make_postern(capture.addr, start=False)
    p.write_config()
    path = os.path.join(MAILDIR, "nested.eml")
    rc, out, err = cli(p, "rules", "test", r"x | attachment | /\.exe$/i | reject", path)
    assert rc == 0, err
    assert out.strip() == "match attachment[1] offset 8: .exe"
    rc, out, _ = cli(p, "rules", "test", "x | subject | /nothing/ | reject", path)
    assert out.strip() == "no match"
    rc, _, err = cli(p, "rules", "test", "x | subject | /a{2,1}/ | reject", path)
    assert rc == 1 and "offset" in err


def test_rules_at_each_stage_over_smtp(make_postern, capture, workdir):
    p = prepared(make_postern, capture.addr, workdir, RULES)
    # MAIL stage
    code, text = send(p.port, "boss@spam.example", ["a@example.org"], b"Subject: hi\r\n\r\nx\r\n")
    assert code == 550 and b"bad_sender" in text
    # RCPT stage
    code, text = send(p.port, "a@example.net", ["blocked@example.org"], b"Subject: hi\r\n\r\nx\r\n")
    assert code == 451 and b"postmaster" in text
    # DATA: an encoded-word subject decoded before matching
    msg = b"Subject: =?UTF-8?B?Q2hlYXAgVklBR1JB?=\r\n\r\nbody\r\n"
    code, text = send(p.port, "a@example.net", ["a@example.org"], msg)
    assert code == 550 and b"subj_viagra" in text
    # DATA: an RFC 2231 attachment name
    code, text = send(p.port, "a@example.net", ["a@example.org"], mail("nested.eml"))
    assert code == 550 and b"exe" in text
    assert capture.accepted() == []
    # score rules: HTML body (base64) + header, delivered tagged with the sum
    code, _ = send(p.port, "a@example.net", ["a@example.org"], mail("alternative.eml"),
                   helo="192.0.2.1")
    assert code == 250
    got = capture.wait_messages(1)[0]
    assert hdr(got, "X-Spam-Score") == "4.0"      # 2.5 + 0.5 + helo 1
    assert hdr(got, "X-Spam-Flag") == "YES"
    p.stop()


def test_envelope_rules_run_on_the_loop(make_postern, capture, workdir):
    """Rules on the client, HELO, MAIL FROM and RCPT TO match on the I/O
    loop (no worker round trip, policy/rulecheck.c rc_blocks) and still
    act; a content rule matches there too on a message within
    policy.inline_bytes, and sends DATA to a worker past it, with the same
    score."""
    from policyenv import stage_counts
    token = "r" * 40
    rules = ("loop_client | client_ip | /^127\\./ | score 0.5\n"
             "loop_helo | helo | /^helo\\.loop\\.test$/ | score 1\n"
             "loop_sender | mail_from | /@spam\\.example$/ | reject\n"
             "loop_rcpt | rcpt_to | /^blocked@/ | tempfail\n")
    conf = {"web.api_token": token, "spf.enabled": "no", "dkim.enabled": "no",
            "dmarc.enabled": "no", "rbl.zones": "", "rbl.rhsbl_zones": ""}
    p = prepared(make_postern, capture.addr, workdir, rules, conf=conf)
    msg = b"Subject: hi\r\n\r\nx\r\n"
    send(p.port, "a@example.net", ["a@example.org"], msg)   # the set is read once
    capture.wait_messages(1)

    def counted(*args, **kw):
        before = stage_counts(p.web_port, token)
        got = send(p.port, *args, **kw)
        after = stage_counts(p.web_port, token)
        return got, after[0] - before[0], after[1] - before[1]
    (code, text), inline, worker = counted("boss@spam.example", ["a@example.org"], msg)
    assert code == 550 and b"loop_sender" in text
    assert (inline, worker) == (3, 0)                 # CONNECT, EHLO, MAIL
    (code, text), inline, worker = counted("a@example.net", ["blocked@example.org"], msg)
    assert code == 451 and b"loop_rcpt" in text
    assert (inline, worker) == (4, 0)
    (code, _), inline, worker = counted("a@example.net", ["a@example.org"], msg,
                                        helo="helo.loop.test")
    assert code == 250 and worker == 0 and inline == 5
    assert hdr(capture.wait_messages(2)[1], "X-Spam-Score") == "1.5"
    p.stop()

    # a body rule: on the loop for this short message; past
    # policy.inline_bytes DATA, and only DATA, goes to a worker
    body = b"Subject: hi\r\n\r\nzzz\r\n"
    seen = 2
    for inline_bytes, want in (("65536", (5, 0)), (str(len(body) - 1), (4, 1))):
        p = prepared(make_postern, capture.addr, workdir,
                     rules + "loop_body | body | /zzz/ | score 2\n",
                     conf=dict(conf, **{"policy.inline_bytes": inline_bytes}))
        send(p.port, "a@example.net", ["a@example.org"], msg)
        (code, _), inline, worker = counted("a@example.net", ["a@example.org"], body)
        assert code == 250 and (inline, worker) == want
        seen += 2
        assert hdr(capture.wait_messages(seen)[seen - 1], "X-Spam-Score") == "2.5"
        p.stop()


def test_body_after_a_non_field_line_is_checked(make_postern, capture, workdir):
    """A header section that ends in a line that is no field, with no empty
    line after it, still has a body: the MTA behind delivers that line and
    what follows as the body, so the content rules read them there (GMime
    alone saw no body, and the text passed unchecked). The message itself
    reaches the backend as it came."""
    conf = {"spf.enabled": "no", "dkim.enabled": "no", "dmarc.enabled": "no",
            "rbl.zones": "", "rbl.rhsbl_zones": ""}
    p = prepared(make_postern, capture.addr, workdir,
                 "pills | body | /cheap pills now/ | score 4\n"
                 "garbage | body | /^GARBAGE LINE$/m | score 1\n", conf=conf)
    msg = (b"From: a@example.net\r\nSubject: offer\r\nGARBAGE LINE\r\n"
           b"cheap pills now at http://spam.example/\r\n")
    code, _ = send(p.port, "a@example.net", ["b@example.org"], msg)
    assert code == 250
    got = capture.wait_messages(1)[0]
    assert hdr(got, "X-Spam-Score") == "5.0" and hdr(got, "X-Spam-Flag") == "YES"
    assert got.data.endswith(msg), got.data[-200:]
    p.stop()


def test_runaway_pattern_is_bounded(make_postern, capture, workdir):
    rules = "cat | raw | /(a+)+$/ | reject\nfine | raw | /zzz-marker/ | score 0.5\n"
    p = prepared(make_postern, capture.addr, workdir, rules,
                 conf={"rules.match_limit": 100000})
    body = b"From: a@example.net\r\nSubject: aaa\r\n\r\n" + b"a" * 200000 + b"!\r\nzzz-marker\r\n"
    code, _ = send(p.port, "a@example.net", ["a@example.org"], body)
    assert code == 250
    assert hdr(capture.wait_messages(1)[0], "X-Spam-Score") == "0.5"
    assert "cat: gave up at a match limit" in p.log()
    p.stop()


def test_rule_change_during_load(make_postern, capture, workdir):
    """Import a rule while clients keep sending: every session succeeds, and
    messages sent more than two seconds after the import (the bound on an
    edit by another process: the daemon polls the edit version) carry the
    new rule's score."""
    p = prepared(make_postern, capture.addr, workdir,
                 "base | subject | /^load/ | score 1\n")
    threads, per_thread, after_bound = 4, 15, 3
    results, lock = [], threading.Lock()
    imported_at = []            # time.monotonic() when the import returned

    def phase():
        """0 before the import, 1 up to the bound after it, 2 past it."""
        with lock:
            if not imported_at:
                return 0
            return 1 if time.monotonic() < imported_at[0] + 2.0 * TIME_SCALE else 2

    def client(n):
        sent = late = 0
        deadline = time.monotonic() + 60 * TIME_SCALE
        while (sent < per_thread or late < after_bound) and time.monotonic() < deadline:
            ph = phase()
            msg = ("From: a@example.net\r\nSubject: load %d-%d\r\nX-After: %d\r\n\r\nbody\r\n" % (n, sent, ph)).encode()
            try:
                r = send(p.port, "a@example.net", ["a@example.org"], msg)
            except Exception as e:   # a failed session is what we look for
                r = (0, repr(e).encode())
            with lock:
                results.append(r)
            sent += 1
            late += ph == 2
            if n == 0 and sent == 5:
                rc, _, err = cli(p, "rules", "import",
                                 rules_file(workdir, "mid_load | subject | /^load/ | score 0.5\n",
                                            "mid.txt"))
                assert rc == 0, err
                with lock:
                    imported_at.append(time.monotonic())

    ts = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert all(code == 250 for code, _ in results), [r for r in results if r[0] != 250]
    msgs = capture.wait_messages(len(results))
    scores = {"0": set(), "1": set(), "2": set()}
    for m in msgs:
        scores[hdr(m, "X-After")].add(hdr(m, "X-Spam-Score"))
    # sent before: the old set or, for a transaction racing the import, the
    # new one; within the bound: either; past it: always the new one
    assert scores["2"] == {"1.5"}
    assert scores["0"] <= {"1.0", "1.5"} and "1.0" in scores["0"]
    assert scores["1"] <= {"1.0", "1.5"}
    p.stop()


def test_sighup_rebuilds(make_postern, capture, workdir):
    p = prepared(make_postern, capture.addr, workdir, "a | subject | /^hup/ | score 1\n")
    p.reload()
    wait_until(lambda: p.log().count("rules: 1 rules active") >= 2, 10,
               what="rule set rebuilt after SIGHUP")
    code, _ = send(p.port, "a@example.net", ["a@example.org"], b"From: a@example.net\r\nSubject: hup\r\n\r\nx\r\n")
    assert code == 250
    assert hdr(capture.wait_messages(1)[0], "X-Spam-Score") == "1.0"
    p.stop()


def test_starter_file_imported_at_first_start(make_postern, capture):
    p = make_postern(capture.addr, conf={"rules.file": os.path.join(ROOT, "etc", "rules.txt")})
    assert "rules: imported" in p.log()
    code, text = send(p.port, "a@example.net", ["a@example.org"], mail("nested.eml"))
    assert code == 250 and b"quarantined as" in text   # attach_executable
    p.stop()
    # an emptied table stays empty across restarts
    empty = os.path.join(p.dir, "empty.txt")
    open(empty, "w").close()
    rc, out, err = cli(p, "rules", "import", "--replace", empty)
    assert rc == 0, err
    p.start()
    assert "rules: 0 rules active" in p.log()
    p.stop()


# ---- rules with numbers: hit counts and log-only rules (issue 15) ----

def _rules_by_name(api):
    status, _, d = api.get("/api/rules")
    assert status == 200, d
    return {r["name"]: r for r in d["rules"]}


def test_rule_hit_counts_per_day():
    """Every match is counted per UTC day: N messages matching one rule
    make its today N, a rule that never matched stays 0; a day later the
    hits move out of today but stay in days7 and the daily array."""
    from webapi import Stack, send_mail
    st = Stack(clock=True).start()
    try:
        api = st.bearer()
        for rule in ({"name": "hit_me", "target": "subject", "pattern": "counted-\\d+",
                      "action": "score", "score": 0.5},
                     {"name": "never", "target": "subject", "pattern": "no-such-subject",
                      "action": "score", "score": 1}):
            status, _, d = api.post("/api/rules", rule)
            assert status == 201, d
        fresh = _rules_by_name(api)
        assert fresh["hit_me"]["hits"] == {"today": 0, "days7": 0, "days30": 0,
                                           "daily": [0] * 30}
        n = 3
        for i in range(n):
            code, _ = send_mail(st.postern.port, "counted-%d" % i)
            assert code == 250
        # a message no rule matches counts nothing
        assert send_mail(st.postern.port, "plain hello")[0] == 250
        st.wait_verdict("plain hello")
        for i in range(n):
            v = st.wait_verdict("counted-%d" % i)
            assert {"check": "rule", "result": "match", "score": 0.5,
                    "reason": "hit_me"} in v["checks"]
        wait_until(lambda: _rules_by_name(api)["hit_me"]["hits"]["today"] == n, 20,
                   what="the hit counts to be written")
        rules = _rules_by_name(api)
        hits = rules["hit_me"]["hits"]
        assert hits["days7"] == n and hits["days30"] == n
        assert hits["daily"] == [0] * 29 + [n]
        assert rules["never"]["hits"]["daily"] == [0] * 30
        assert rules["never"]["hits"]["today"] == 0
        # the single rule answers the same
        status, _, one = api.get("/api/rules/%d" % rules["hit_me"]["id"])
        assert status == 200 and one["hits"] == hits
        # a day later (the test clock): yesterday's hits, none today
        st.advance(86400)
        hits = _rules_by_name(api)["hit_me"]["hits"]
        assert hits["today"] == 0 and hits["days7"] == n and hits["days30"] == n
        assert hits["daily"] == [0] * 28 + [n, 0]
        # 30 days later they are out of the window
        st.advance(30 * 86400)
        assert _rules_by_name(api)["hit_me"]["hits"]["days30"] == 0
    finally:
        st.close()


def test_log_only_rule_matches_without_acting():
    """A log-only rule is recorded in the verdict and counted, but neither
    its score nor its action applies; turned off through the API the same
    rule acts."""
    from webapi import Stack, send_mail
    st = Stack().start()
    try:
        api = st.bearer()
        status, _, base = api.post("/api/rules", {"name": "base", "target": "subject",
                                                  "pattern": "watched", "action": "score",
                                                  "score": 1.5})
        assert status == 201, base
        status, _, watch = api.post("/api/rules", {"name": "watch", "target": "subject",
                                                   "pattern": "watched", "action": "reject",
                                                   "score": 7, "log_only": True})
        assert status == 201 and watch["log_only"] is True, watch
        assert base["log_only"] is False
        code, _ = send_mail(st.postern.port, "watched one")
        assert code == 250
        v = st.wait_verdict("watched one")
        assert v["verdict"] in ("accept", "tag") and v["outcome"] == "accept", v
        # the score is the other checks' sum (SPF and the like) with base's
        # 1.5 and nothing of watch's 7
        others = sum(c["score"] for c in v["checks"] if c.get("reason") not in ("base", "watch"))
        assert v["score"] == pytest.approx(others + 1.5)
        assert {"check": "rule", "result": "log-only", "score": 0,
                "reason": "watch"} in v["checks"]
        assert {"check": "rule", "result": "match", "score": 1.5,
                "reason": "base"} in v["checks"]
        wait_until(lambda: _rules_by_name(api)["watch"]["hits"]["today"] == 1, 20,
                   what="the log-only rule's hit to be counted")
        assert float(hdr(st.cap.wait_messages(1)[0], "X-Spam-Score")) == \
            pytest.approx(v["score"])
        # the same rule acting: rejected, with its score
        status, _, d = api.put("/api/rules/%d" % watch["id"], dict(
            {k: watch[k] for k in ("name", "target", "pattern", "action", "score")},
            log_only=False))
        assert status == 200 and d["log_only"] is False, d
        code, text = send_mail(st.postern.port, "watched two")
        assert code == 550 and "watch" in text
        v = st.wait_verdict("watched two")
        assert v["verdict"] == "reject"
        assert {"check": "rule", "result": "match", "score": 7,
                "reason": "watch"} in v["checks"]
        # a log_only that is not a boolean is refused
        status, _, d = api.post("/api/rules", {"name": "x", "target": "subject",
                                               "pattern": "x", "log_only": "yes"})
        assert status == 400 and "log_only" in d["error"]
    finally:
        st.close()
