"""The quarantine end to end: a quarantine verdict is committed before the
client hears 250; `postern quarantine list|show|raw|release|delete|expire`;
release reaches the backend (a real Postfix) exactly once, with the
original envelope and an X-Postern-Released header; full or oversized
quarantine answers 4xx; expiry follows the test clock.

Real parts: build/postern, the harness's unbound, capture backend and
Postfix instance, smtplib clients; all on loopback.
"""
import json
import os
import re
import shutil
import subprocess
import threading

import pytest

from harness import POSTERN_BIN, wait_until
from harness.net import wait_port
from harness.client import smtp_client
from harness.pg import ON_PG

RULES = "quar | subject | /quarantine me/i | quarantine\n"


def cli(p, *args, env=None):
    r = subprocess.run([POSTERN_BIN, *args, "-c", p.conf_path], capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, **(env or {})))
    return r.returncode, r.stdout, r.stderr


def start(make_postern, backend, conf=None, env=None):
    p = make_postern(backend, conf=conf or {}, start=False, env=env)
    p.write_config()
    path = os.path.join(p.dir, "rules.txt")
    with open(path, "w") as f:
        f.write(RULES)
    rc, _, err = cli(p, "rules", "import", path)
    assert rc == 0, err
    return p.start()


def set_clock(path, offset):
    """The test clock (POSTERN_CLOCK_FILE): real time + offset seconds."""
    with open(path, "w") as f:
        f.write("%d\n" % offset)


def message(tag, size=0):
    return ("From: Sender <sender@example.net>\r\nTo: bob@example.org\r\n"
            "Subject: please quarantine me %s\r\nMessage-ID: <%s@example.net>\r\n\r\n"
            "Hello.\r\n.leading dot survives\r\n%s" % (tag, tag, "x" * size + "\r\n" if size else "")
            ).encode()


def send(port, msg, rcpts=("bob@example.org",), sender="sender@example.net"):
    with smtp_client(port) as s:
        s.ehlo("client.example.net")
        assert s.mail(sender)[0] == 250
        for r in rcpts:
            assert s.rcpt(r)[0] == 250
        return s.data(msg)


def quarantined_id(text):
    m = re.search(rb"quarantined as ([0-9A-F]{12})", text)
    assert m, text
    return m.group(1).decode()


def listing(p, q=None):
    rc, out, err = cli(p, "quarantine", "list", *(["-q", q] if q else []))
    assert rc == 0, err
    return json.loads(out)


def test_store_list_show_raw(make_postern, capture):
    p = start(make_postern, capture.addr)
    msg = message("store")
    code, text = send(p.port, msg, rcpts=("bob@example.org", "carol@example.org"))
    assert code == 250
    qid = quarantined_id(text)
    assert capture.accepted() == []          # the backend got nothing
    rows = listing(p)
    assert [r["id"] for r in rows] == [qid]
    row = rows[0]
    assert row["mail_from"] == "sender@example.net"
    assert row["rcpts"] == ["bob@example.org", "carol@example.org"]
    assert row["subject"] == "please quarantine me store"
    assert row["state"] == "held" and "raw" not in row
    assert any(r["check"] == "rule" and r["reason"] == "quar" for r in row["reasons"])
    assert listing(p, q="CAROL@")[0]["id"] == qid
    assert listing(p, q="no-such-thing") == []
    rc, out, _ = cli(p, "quarantine", "show", qid)
    assert rc == 0 and json.loads(out)["id"] == qid
    raw = subprocess.run([POSTERN_BIN, "quarantine", "raw", qid, "-c", p.conf_path],
                         capture_output=True, timeout=60).stdout
    assert raw == msg
    assert cli(p, "quarantine", "show", "000000000000")[0] == 1
    p.stop()


def test_release_reaches_postfix_exactly_once(make_postern, postfix):
    p = start(make_postern, postfix.addr)
    code, text = send(p.port, message("once"))
    qid = quarantined_id(text)
    assert "<once@example.net>" not in postfix.maillog()
    rc, out, err = cli(p, "quarantine", "release", qid, "--by", "alice")
    assert rc == 0 and "released" in out, out + err
    postfix.wait_log("message-id=<once@example.net>")
    # a second release (a double click) delivers nothing
    rc, out, _ = cli(p, "quarantine", "release", qid)
    assert rc == 1 and "not held" in out
    row = listing(p)[0]
    assert row["state"] == "released" and row["released_by"] == "alice"
    # two admins at once on another message: one delivery
    code, text = send(p.port, message("race"))
    qid2 = quarantined_id(text)
    outs = []
    ts = [threading.Thread(target=lambda: outs.append(cli(p, "quarantine", "release", qid2)))
          for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert sorted(rc for rc, _, _ in outs) == [0, 1], outs
    postfix.wait_log("message-id=<race@example.net>")
    wait_until(lambda: "removed" in postfix.maillog(), 15, what="postfix queue done")
    log = postfix.maillog()
    assert log.count("message-id=<once@example.net>") == 1
    assert log.count("message-id=<race@example.net>") == 1
    p.stop()


def test_release_utf8_and_8bit(make_postern, postfix, make_capture):
    """An internationalised sender and an 8-bit body are released with
    SMTPUTF8 and BODY=8BITMIME when the backend offers them; Postfix takes
    it."""
    msg = ("From: jörg@example.net\r\nTo: bob@example.org\r\n"
           "Subject: quarantine me utf8\r\nMessage-ID: <utf8@example.net>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n").encode()
    cap = make_capture()
    for backend in (postfix.addr, cap.addr):
        p = start(make_postern, backend)
        with smtp_client(p.port) as c:
            c.ehlo("client.example.net")
            code, text = c.mail("jörg@example.net", ["SMTPUTF8", "BODY=8BITMIME"])
            assert code == 250, text
            assert c.rcpt("bob@example.org")[0] == 250
            code, text = c.data(msg)
        assert code == 250
        rc, out, err = cli(p, "quarantine", "release", quarantined_id(text))
        assert rc == 0, out + err
        p.stop()
    log = postfix.wait_log("message-id=<utf8@example.net>")
    assert "from=<jörg@example.net>" in log
    got = cap.wait_messages(1)[0]
    assert got.mail_from == "MAIL FROM:<jörg@example.net> BODY=8BITMIME SMTPUTF8".encode()


def test_release_envelope_and_header(make_postern, capture):
    p = start(make_postern, capture.addr)
    msg = message("hdr")
    code, text = send(p.port, msg, rcpts=("bob@example.org", "carol@example.org"),
                      sender="")
    qid = quarantined_id(text)
    rc, out, err = cli(p, "quarantine", "release", qid, "--by", "bob-admin")
    assert rc == 0, out + err
    got = capture.wait_messages(1)[0]
    assert got.mail_from == b"MAIL FROM:<>"
    assert [r for r in got.rcpts] == [b"RCPT TO:<bob@example.org>", b"RCPT TO:<carol@example.org>"]
    rel = got.header("X-Postern-Released")
    assert len(rel) == 1 and rel[0].endswith(" by bob-admin")
    # the rest is the message as quarantined, dot-unstuffed intact
    assert got.data.split(b"\r\n", 1)[1] == msg
    p.stop()


def test_release_leaves_out_fields_only_postern_writes(make_postern, capture):
    """A forged X-Postern-Released, X-Spam-* or Authentication-Results of
    our authserv-id rides in the stored copy (the raw view keeps it as
    evidence) but not out of a release."""
    p = start(make_postern, capture.addr)
    forged = [b"X-Postern-Released: long ago by nobody\r\n", b"X-Spam-Flag: NO\r\n",
              b"X-Spam-Score:\r\n -100\r\n",
              b"Authentication-Results: postern.test; dmarc=pass header.from=bank.example\r\n"]
    plain = message("forged")
    msg = b"".join(forged) + plain
    code, text = send(p.port, msg)
    qid = quarantined_id(text)
    rc, raw, _ = cli(p, "quarantine", "raw", qid)
    assert rc == 0 and "X-Spam-Flag: NO" in raw
    rc, out, err = cli(p, "quarantine", "release", qid)
    assert rc == 0, out + err
    got = capture.wait_messages(1)[0]
    rel = got.header("X-Postern-Released")
    assert len(rel) == 1 and "nobody" not in rel[0], rel
    # ours, then exactly the message without the forged fields
    assert got.data.split(b"\r\n", 1)[1] == plain
    p.stop()


def test_failed_release_stays_held(make_postern, make_capture):
    cap = make_capture(data_reply="451 4.3.0 try later")
    p = start(make_postern, cap.addr)
    code, text = send(p.port, message("retry"))
    # the proxy itself never talked DATA to the backend for this message
    qid = quarantined_id(text)
    rc, out, _ = cli(p, "quarantine", "release", qid)
    assert rc == 1 and "451" in out
    assert listing(p)[0]["state"] == "held"
    cap.data_reply = "250 2.0.0 ok"
    rc, out, err = cli(p, "quarantine", "release", qid)
    assert rc == 0, out + err
    assert listing(p)[0]["state"] == "released"
    p.stop()


def test_delete_and_expiry_by_clock(make_postern, capture, workdir):
    clock = workdir.join("clock")
    set_clock(clock, 0)
    env = {"POSTERN_CLOCK_FILE": clock}
    p = start(make_postern, capture.addr, conf={"quarantine.max_age": "7d"}, env=env)
    ids = [quarantined_id(send(p.port, message("exp%d" % i))[1]) for i in range(3)]
    rc, out, _ = cli(p, "quarantine", "delete", ids[0])
    assert rc == 0 and "deleted" in out
    assert cli(p, "quarantine", "delete", ids[0])[0] == 1
    assert sorted(r["id"] for r in listing(p)) == sorted(ids[1:])
    set_clock(clock, 6 * 86400)
    assert cli(p, "quarantine", "expire", env=env)[1].strip() == "0 expired"
    set_clock(clock, 7 * 86400 + 120)
    assert cli(p, "quarantine", "expire", env=env)[1].strip() == "2 expired"
    assert listing(p) == []
    p.stop()


def test_server_expires_as_transactions_begin(make_postern, capture, workdir):
    clock = workdir.join("clock")
    set_clock(clock, 0)
    p = start(make_postern, capture.addr, conf={"quarantine.max_age": "1d"},
              env={"POSTERN_CLOCK_FILE": clock})
    quarantined_id(send(p.port, message("old"))[1])
    assert len(listing(p)) == 1
    set_clock(clock, 86400 + 120)
    # the next transaction's MAIL runs the expiry (at most once a minute
    # of the same clock); the new message itself is kept
    new = quarantined_id(send(p.port, message("new"))[1])
    assert [r["id"] for r in listing(p)] == [new]
    assert "quarantine: 1 messages expired" in p.log()
    p.stop()


def test_full_quarantine_is_tempfail(make_postern, capture):
    p = start(make_postern, capture.addr, conf={"quarantine.max_total": "4096",
                                                 "quarantine.max_message": "3000"})
    code, text = send(p.port, message("big", size=3500))
    assert code == 452 and b"4.3.1" in text          # over max_message
    code, text = send(p.port, message("fits1", size=1500))
    assert code == 250
    code, text = send(p.port, message("fits2", size=1500))
    assert code == 250
    code, text = send(p.port, message("full", size=1500))
    assert code == 452 and b"4.3.1" in text          # over max_total
    assert len(listing(p)) == 2
    assert capture.accepted() == []                  # nothing slipped through
    p.stop()


def test_disabled_quarantine_rejects(make_postern, capture):
    p = start(make_postern, capture.addr, conf={"quarantine.enabled": "no"})
    with smtp_client(p.port) as s:
        s.ehlo("client.example.net")
        s.mail("sender@example.net")
        s.rcpt("bob@example.org")
        code, _ = s.data(message("off"))
    assert code == 550
    assert listing(p) == []
    p.stop()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root for a private tmpfs")
@pytest.mark.skipif(ON_PG, reason="a full SQLite file; test_pg.py stops PostgreSQL instead")
def test_full_disk_is_tempfail_and_nothing_lost(make_postern, capture, workdir):
    """db.path on a 512 KiB tmpfs (private mount namespace): quarantined
    messages fill it; then clients get 4xx, never a 250 without a row; every
    message answered "quarantined as ID" is in the database, byte for byte."""
    p = make_postern(capture.addr, start=False)
    dbdir = workdir.join("small")
    os.makedirs(dbdir)
    p.settings["db.path"] = os.path.join(dbdir, "postern.db")
    p.write_config()
    rules = workdir.join("rules.txt")
    with open(rules, "w") as f:
        f.write(RULES)
    log = open(workdir.join("postern.log"), "ab")
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         'mount -t tmpfs -o size=512k tmpfs "$1" && "$2" rules import -c "$3" "$4" '
         '&& exec "$2" serve -c "$3"',
         "sh", dbdir, POSTERN_BIN, p.conf_path, rules],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(p.port, proc=proc)
        answered, codes = {}, []
        for i in range(200):
            msg = message("full%d" % i, size=30000)
            with smtp_client(p.port) as c:
                c.ehlo("client.example.net")
                code, _ = c.mail("sender@example.net")
                if code == 250:
                    code, _ = c.rcpt("bob@example.org")
                if code == 250:
                    code, text = c.data(msg)
                    if code == 250:
                        answered[quarantined_id(text)] = msg
            codes.append(code)
            if code // 100 == 4:
                break
        assert codes[-1] // 100 == 4, codes[-5:]
        assert len(answered) >= 3 and proc.poll() is None
        assert capture.accepted() == []
        # read the tmpfs from inside the server's own mount namespace
        out = subprocess.run(["nsenter", "-t", str(proc.pid), "-m", "sqlite3", "-json",
                              p.settings["db.path"],
                              "SELECT id, hex(raw) AS raw FROM quarantine"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        stored = {r["id"]: bytes.fromhex(r["raw"]) for r in json.loads(out.stdout)}
        assert set(stored) == set(answered)
        assert all(stored[k] == answered[k] for k in answered)
        # Whichever write meets the full disk first says so: the quarantine
        # store at DATA, or the verdict writer, after which MAIL gets 451.
        with open(workdir.join("postern.log"), errors="replace") as f:
            text = f.read()
        assert ("cannot store in quarantine; tempfail" in text or
                "database not writable; answering 451 to MAIL" in text), text[-2000:]
        assert codes[-1] == 451
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_check_reports_quarantine_without_storing(make_postern, capture):
    """`postern check` answers "what would happen": the quarantine verdict
    is reported, but nothing lands in the quarantine (a stored copy could be
    released to real recipients)."""
    p = start(make_postern, capture.addr)
    path = os.path.join(p.dir, "msg.eml")
    with open(path, "wb") as f:
        f.write(message("check-only"))
    r = subprocess.run([POSTERN_BIN, "check", "-c", p.conf_path, "--ip", "127.0.0.1",
                        "--helo", "client.example.net", "--from", "sender@example.net",
                        "--rcpt", "bob@example.org", path],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["verdict"] == "quarantine", r.stdout
    assert listing(p) == []
