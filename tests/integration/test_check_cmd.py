"""`postern check` keeps its contract (CONTRACT.md): a message file alone
runs the whole policy -- rules, SPF, DKIM and DMARC appear in its JSON --
with the envelope taken from the message (Return-Path, else From; the
first To), --from/--rcpt override it, bad input exits 2 with the reason,
--help prints the usage, and nothing is written to the database (counted
with sqlite3 before and after) unless --record asks for the greylist row.
"""
import subprocess

import pytest

import authmail as am
from dnszone import txt_rdata
from policyenv import POSTERN, PolicyEnv, rows

IP = "192.0.2.9"
KEY = am.rsa_key(1024)
RECORDS = [
    'example.org. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"',
    '_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject"',
    "sel._domainkey.example.org. 300 IN TXT %s" % txt_rdata(am.dkim_txt(KEY)),
]
RULES = "cheap_pills | subject | /cheap\\s+pills/i | score 4\n"
TABLES = ["greylist", "grey_auto", "verdicts", "stats", "rules", "rules_version",
          "quarantine", "access"]


@pytest.fixture
def env():
    e = PolicyEnv(RECORDS, conf="[spf]\nenabled = yes\n[dkim]\nenabled = yes\n"
                                "[dmarc]\nenabled = yes\n").start()
    rules = e.tmp.join("rules.txt")
    with open(rules, "w") as f:
        f.write(RULES)
    e.write_conf("[rules]\nfile = %s\n" % rules)
    yield e
    e.stop()


def run(env, *args, msg=None):
    """`postern check -c CONF ARGS [MESSAGE]`: (exit status, stdout, stderr)."""
    argv = [POSTERN, "check", "-c", env.conf, *args]
    if msg is not None:
        path = env.tmp.join("msg.eml")
        with open(path, "wb") as f:
            f.write(msg)
        argv.append(path)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env.env())
    return p.returncode, p.stdout, p.stderr


def check(env, *args, msg=None):
    import json
    rc, out, err = run(env, *args, msg=msg)
    assert rc == 0, err
    return json.loads(out)


def counts(db):
    return {t: rows(db, "SELECT count(*) FROM %s" % t)[0][0] for t in TABLES}


def signed(subject="Cheap pills today", extra=()):
    return am.sign(am.message(frm="Alice <alice@example.org>",
                              to='"Bob, the boss" <bob@example.net>, carol@example.net',
                              subject=subject, extra=extra), KEY)


def test_message_alone_runs_every_check(env):
    d = check(env, "--ip", IP, msg=signed())
    assert d["mail_from"] == "alice@example.org"
    assert d["rcpts"] == ["bob@example.net"]
    assert d["stage"] == "data"
    assert d["spf"]["result"] == "pass"
    assert d["dkim"]["result"] == "pass"
    assert d["dmarc"]["result"] == "pass"
    assert d["rule"]["result"] == "match" and d["rule"]["reason"] == "cheap_pills"
    assert d["verdict"] == "tag" and "X-Spam-Flag: YES" in d["headers"]
    assert "dkim=pass" in d["headers"] and "dmarc=pass" in d["headers"]


def test_return_path_is_the_sender(env):
    msg = signed(subject="hello", extra=["Return-Path: <bounce@example.org>"])
    d = check(env, "--ip", IP, msg=msg)
    assert d["mail_from"] == "bounce@example.org"
    assert d["spf"]["result"] == "pass" and d["spf"]["identity"] == "mailfrom"
    # "<>" in Return-Path is the null sender: SPF checks the HELO then
    d = check(env, "--ip", IP, "--helo", "mx.example.org",
              msg=signed(subject="bounce", extra=["Return-Path: <>"]))
    assert d["mail_from"] == ""


def test_from_and_rcpt_override_the_message(env):
    d = check(env, "--ip", "198.51.100.1", "--from", "mallory@example.org",
              "--rcpt", "x@example.net", "--rcpt", "y@example.net", msg=signed())
    assert d["mail_from"] == "mallory@example.org"
    assert d["rcpts"] == ["x@example.net", "y@example.net"]
    assert d["spf"]["result"] == "fail"          # 198.51.100.1 is not allowed
    assert d["dmarc"]["result"] == "pass"        # DKIM still aligns


def test_message_without_sender_or_recipient(env):
    d = check(env, "--ip", IP, msg=b"Subject: nothing\r\n\r\nbody\r\n")
    assert d["mail_from"] == "" and d["rcpts"] == []
    assert d["stage"] == "data"


def test_envelope_alone_without_message(env):
    d = check(env, "--ip", IP)
    assert d["mail_from"] is None and d["stage"] == "connect"


@pytest.mark.parametrize("args,why", [
    (["--ip", IP, "nosuch.eml"], "nosuch.eml: No such file or directory"),
    (["--ip", IP, "--only", "spf,bogus"], "no check named 'bogus'"),
    (["--ip", IP, "--only", ""], "--only needs check names"),
    (["--ip", IP, "--frobnicate"], "unknown option --frobnicate"),
    (["--ip", IP, "--from"], "--from needs a value"),
    (["--ip", "not-an-ip"], "--ip not-an-ip is not an IP address"),
    (["--helo", "x"], "--ip is required"),
    (["--ip", IP, "a.eml", "b.eml"], "one message only"),
])
def test_bad_input_exits_2_with_the_reason(env, args, why):
    rc, out, err = run(env, *args)
    assert rc == 2, (rc, err)
    assert why in err
    assert out == ""


def test_help(env):
    for flag in ("--help", "-h"):
        rc, out, err = run(env, flag)
        assert rc == 0 and err == ""
        assert out.startswith("usage: postern check -c FILE --ip IP")
        assert "Return-Path" in out and "dkim, dmarc" in out


def test_check_writes_nothing(env):
    env.write_conf("[greylist]\nenabled = yes\n[policy]\ntag_score = 1\nquarantine_score = 2.5\n")
    # the table holds state a check could touch: one access entry
    assert env.access("add", "deny", "sender", "@spam.example")[0] == 0
    before = counts(env.db)
    assert before["rules"] == 0 and before["access"] == 1
    # greylisting defers a new triplet at RCPT, and so does check, again and again
    for _ in range(3):
        d = check(env, "--ip", IP, msg=signed())
        assert d["verdict"] == "tempfail" and d["stage"] == "rcpt"
        assert d["grey"]["result"] == "defer"
    # a message that scores for the quarantine, the rules from rules.file
    env.write_conf("[greylist]\nenabled = no\n")
    d = check(env, "--ip", IP, msg=signed())
    assert d["verdict"] == "quarantine"
    assert counts(env.db) == before
    # --record stores the triplet, as a real session would
    env.write_conf("[greylist]\nenabled = yes\n")
    check(env, "--ip", IP, "--record", msg=signed())
    assert rows(env.db, "SELECT rcpt FROM greylist") == [("bob@example.net",)]
    assert dict(counts(env.db), greylist=0) == before
