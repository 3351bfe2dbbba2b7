"""Scoring, thresholds and hard decisions end to end: policy.tag_score,
quarantine_score and reject_score against DNS list weights; the reply
names the reason; rate limits (421 4.7.0 at connect, 450 4.7.1 at MAIL);
every transaction lands in the verdict log with its checks, and the
per-minute stats count it -- also with many sessions writing at once.
"""
import threading
import time

import pytest

from harness.capture import Capture
from policyenv import PolicyEnv, rows, smtp_session, wait_rows

# Client 127.0.0.N is listed in s.test with code 127.0.0.N; weights per
# code make the score: .2 -> 3 (tag), .3 -> 6 (quarantine), .4 -> 10 (reject)
RECORDS = ["%d.0.0.127.s.test. 300 IN A 127.0.0.%d" % (n, n) for n in (2, 3, 4)]
RECORDS += ["%d.2.0.192.s.test. 300 IN A 127.0.0.%d" % (n, n) for n in (2, 3, 4)]
ZONES = "s.test=127.0.0.2*3, s.test=127.0.0.3*6, s.test=127.0.0.4*10"
CONF = "[greylist]\nenabled = no\n[rbl]\nzones = %s\n" % ZONES
MSG = (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: Quarterly numbers\r\n"
       b"Message-ID: <q1@example.org>\r\n\r\nHello\r\n")


@pytest.fixture
def env():
    e = PolicyEnv(RECORDS, conf=CONF).start()
    yield e
    e.stop()


@pytest.mark.parametrize("ip,verdict,score", [
    ("192.0.2.1", "accept", 0), ("192.0.2.2", "tag", 3),
    ("192.0.2.3", "quarantine", 6), ("192.0.2.4", "reject", 10)])
def test_thresholds(env, ip, verdict, score):
    d = env.check(ip, mail="a@example.org", rcpts=["b@example.net"], message=MSG)
    assert d["verdict"] == verdict
    assert d["score"] == score
    if verdict == "tag":
        assert "X-Spam-Flag: YES\r\nX-Spam-Score: 3.0\r\n" in d["headers"]
    if verdict == "accept":
        assert "X-Spam-Flag" not in d["headers"] and "X-Spam-Score: 0.0" in d["headers"]


def test_thresholds_are_configurable(env):
    env.write_conf(CONF + "[policy]\ntag_score = 2\nquarantine_score = 2.5\nreject_score = 20\n")
    assert env.check("192.0.2.2", mail="a@example.org", rcpts=["b@example.net"],
                     message=MSG)["verdict"] == "quarantine"
    assert env.check("192.0.2.4", mail="a@example.org", rcpts=["b@example.net"],
                     message=MSG)["verdict"] == "quarantine"


def test_quarantine_off_rejects(env):
    env.write_conf(CONF + "[quarantine]\nenabled = no\n")
    d = env.check("192.0.2.3", mail="a@example.org", rcpts=["b@example.net"], message=MSG)
    assert d["verdict"] == "reject"
    assert d["reply"].startswith("550 5.7.1")


def test_reject_decided_at_the_earliest_stage(env):
    d = env.check("192.0.2.4", helo="h.example", mail="a@example.org",
                  rcpts=["b@example.net"], message=MSG)
    assert d["stage"] == "connect"
    assert d["reply"] == "554 5.7.1 Service unavailable; client 192.0.2.4 listed at s.test"


def test_smtp_tag_headers_reach_backend_and_verdict_logged(env):
    sink = Capture().start()
    try:
        env.serve(sink)
        s = smtp_session(env.port, source="127.0.0.2")
        s.ehlo("client.example")
        s.sendmail("a@example.org", ["b@example.net", "c@example.net"], MSG)
        s.quit()
        assert len(sink.accepted()) == 1
        body = sink.accepted()[0].data
        assert b"X-Spam-Flag: YES\r\nX-Spam-Score: 3.0\r\n" in body
        # rejected at connect: never reaches the backend, still logged
        s = smtp_session(env.port, source="127.0.0.4")
        assert s.banner == (554, b"5.7.1 Service unavailable; client 127.0.0.4 listed at s.test")
        s.close()
        assert env.stop_serving() == 0
        assert len(sink.accepted()) == 1
        r = rows(env.db, "SELECT client_ip, helo, mail_from, rcpts, size, msgid, subject,"
                 " checks, score, verdict, backend_reply FROM verdicts WHERE verdict = 'tag'")
        assert len(r) == 1
        ip, helo, mail, rcpts, size, msgid, subject, checks, score, verdict, be = r[0]
        assert (ip, helo, mail, verdict, score) == ("127.0.0.2", "client.example", "a@example.org", "tag", 3.0)
        assert rcpts == '["b@example.net","c@example.net"]'
        assert size > len(MSG) - 10
        assert be.startswith("250")
        assert '"check":"rbl"' in checks and '"result":"listed"' in checks
        stats = dict(rows(env.db, "SELECT name, sum(n) FROM stats GROUP BY name"))
        assert stats["verdict:tag"] == 1
        assert stats["check:rbl:listed"] >= 1
        assert stats["session"] >= 2        # the port probe is a session too
        assert (msgid, subject) == ("<q1@example.org>", "Quarterly numbers")
    finally:
        sink.stop()


def test_smtp_rate_limits(env):
    env.conf_extra = "[greylist]\nenabled = no\n[rate]\nconnections_per_minute = 2\nmessages_per_minute = 1\n"
    # windows are minutes of the clock: start one second into a minute
    env.clock((1 - int(time.time())) % 60)
    sink = Capture().start()
    try:
        env.serve(sink)
        s = smtp_session(env.port, source="127.0.0.5")
        s.ehlo("c.example")
        s.sendmail("a@example.org", ["b@example.net"], MSG)
        with pytest.raises(Exception) as e:
            s.sendmail("a@example.org", ["b@example.net"], MSG)
        assert "450" in str(e.value) and "Too many messages" in str(e.value)
        s.quit()
        s = smtp_session(env.port, source="127.0.0.5")
        assert s.banner[0] == 220
        s.close()
        s = smtp_session(env.port, source="127.0.0.5")
        assert s.banner == (421, b"4.7.0 Too many connections from 127.0.0.5, try again later")
        s.close()
        # another client is not affected
        s = smtp_session(env.port, source="127.0.0.6")
        assert s.banner[0] == 220
        s.quit()
        assert env.stop_serving() == 0
        assert len(sink.accepted()) == 1
    finally:
        sink.stop()


def test_many_sessions_writing_at_once(env):
    sink = Capture().start()
    n_threads, per = 16, 5
    errors = []

    def client(i):
        try:
            for j in range(per):
                s = smtp_session(env.port, source="127.0.1.%d" % (i + 1))
                s.sendmail("t%d@example.org" % i, ["r%d@example.net" % j], MSG)
                s.quit()
        except Exception as e:          # reported below, with the thread
            errors.append((i, repr(e)))

    try:
        env.serve(sink)
        ts = [threading.Thread(target=client, args=(i,)) for i in range(n_threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        assert errors == []
        assert len(sink.accepted()) == n_threads * per
        wait_rows(env.db, "SELECT id FROM verdicts WHERE verdict = 'accept'", n_threads * per)
        assert env.stop_serving() == 0
        got = rows(env.db, "SELECT count(DISTINCT mail_from || rcpts) FROM verdicts")[0][0]
        assert got == n_threads * per
    finally:
        sink.stop()
