"""Postern on PostgreSQL (db.url): what only a shared, networked database
brings. Several nodes starting at once on an empty database migrate it
once; PostgreSQL stopped under load costs clients 4xx answers, never a
message, and the node comes back by itself with one log line per outage;
a quarantined message released from two nodes at the same moment is
delivered once.

Real parts: Debian's PostgreSQL (harness/pg.py: initdb in a temp dir),
build/postern, the capture backend, smtplib clients; loopback only.
"""
import os
import pty
import re
import smtplib
import subprocess
import threading
import time

import pytest

from harness import POSTERN_BIN, REPO, wait_until
from harness.client import smtp_client
from harness.pg import PgServer, session_server
from webapi import TOKEN, Http

RULES = "quar | subject | /quarantine me/i | quarantine\n"


def node(make_postern, backend, url, conf=None, start=True):
    """A Postern on the database at url, with the quarantine rule."""
    c = {"db.url": url, "web.api_token": TOKEN}
    c.update(conf or {})
    p = make_postern(backend, conf=c, start=False)
    p.write_config()
    path = os.path.join(p.dir, "rules.txt")
    with open(path, "w") as f:
        f.write(RULES)
    r = subprocess.run([POSTERN_BIN, "rules", "import", path, "-c", p.conf_path],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return p.start() if start else p


def message(tag, quarantine=False):
    return ("From: <sender@example.net>\r\nTo: <bob@example.org>\r\n"
            "Subject: %s %s\r\nMessage-ID: <%s@example.net>\r\n\r\nHello %s.\r\n"
            % ("please quarantine me" if quarantine else "hello", tag, tag, tag)).encode()


def send(port, tag, quarantine=False):
    """One transaction: (stage, code, text) where it ended; stage "data"
    with 250 means accepted."""
    try:
        with smtp_client(port, timeout=30) as s:
            s.ehlo("client.example.net")
            code, text = s.mail("sender@example.net")
            if code != 250:
                return "mail", code, text
            code, text = s.rcpt("bob@example.org")
            if code != 250:
                return "rcpt", code, text
            code, text = s.data(message(tag, quarantine))
            return "data", code, text
    except (OSError, EOFError) as e:
        return "connect", 0, str(e).encode()


def test_three_nodes_starting_at_once_migrate_once(make_postern, capture):
    url = session_server().createdb()
    nodes = [make_postern(capture.addr, conf={"db.url": url, "web.api_token": TOKEN}, start=False)
             for _ in range(3)]
    for p in nodes:            # all three race to the empty database
        p.start(wait_banner=False)
    for p in nodes:
        wait_until(p._banner, 30, what="a node's 220 banner")
    logs = [p.log() for p in nodes]
    migrated = [l for l in logs if "PostgreSQL migration 1:" in l]
    assert len(migrated) == 1, logs
    assert sum(l.count("PostgreSQL migration") for l in logs) == 4   # every step, once
    db = nodes[0]
    assert db.rows("SELECT version FROM schema_version") == [(4,)]
    assert db.rows("SELECT count(*) FROM information_schema.tables"
                   " WHERE table_name = 'greylist'") == [(1,)]
    # and they all work: an edit through one is seen through another
    assert Http(nodes[1].web_port, TOKEN).post(
        "/api/access", {"list": "deny", "kind": "sender", "value": "x@spam.example"})[0] == 201
    _, _, d = Http(nodes[2].web_port, TOKEN).get("/api/access")
    assert [e["value"] for e in d["entries"]] == ["x@spam.example"]


def test_postgresql_stopped_under_load(make_postern, capture, workdir):
    """Four clients send for a few seconds (every third message is
    quarantined); PostgreSQL stops in the middle and comes back. While it
    is down clients hear 4xx, never 5xx; every 250 is a message the backend
    has or the quarantine holds; the node recovers without a restart, and
    its log says once that PostgreSQL went away and once that it came back."""
    srv = PgServer(workdir.join("pg")).start()
    try:
        p = node(make_postern, capture.addr, srv.createdb("load"),
                 {"greylist.enabled": "no"})
        results, stop = [], threading.Event()
        lock = threading.Lock()

        def client(k):
            n = 0
            while not stop.is_set():
                tag = "c%dm%d" % (k, n)
                quar = n % 3 == 2
                r = send(p.port, tag, quar)
                with lock:
                    results.append((tag, quar, time.monotonic()) + r)
                n += 1
                time.sleep(0.02)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(2)
            down_at = time.monotonic()
            srv.stop()
            # stay down until the clients have heard about it
            wait_until(lambda: any(r[4] // 100 == 4 and r[2] > down_at for r in results),
                       30, what="a 4xx while PostgreSQL is down")
            time.sleep(2)
            srv.start()
            up_at = time.monotonic()
            wait_until(lambda: any(r[3] == "data" and r[4] == 250 and r[2] > up_at + 1
                                   for r in results), 60, what="mail to flow again")
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        # after the clients stopped: a fresh message goes through, no restart
        assert send(p.port, "after")[1] == 250
        codes = {r[4] for r in results}
        assert all(c in (250, 421, 450, 451, 452, 454) for c in codes), codes
        assert any(r[4] // 100 == 4 for r in results)
        ok = [r for r in results if r[3] == "data" and r[4] == 250]
        delivered = {re.search(rb"Subject: hello (\S+)", m.data).group(1).decode()
                     for m in capture.accepted() if b"Subject: hello" in m.data}
        ids = {}
        for tag, quar, _, _, _, text in ok:
            if quar:
                m = re.search(rb"quarantined as ([0-9A-F]{12})", text)
                assert m, (tag, text)
                ids[tag] = m.group(1).decode()
            else:
                assert tag in delivered, "answered 250 but not delivered: %s" % tag
        held = {r[0] for r in p.rows("SELECT id FROM quarantine")}
        assert set(ids.values()) <= held, set(ids.values()) - held
        # the verdict rows queued while it was down are written afterwards
        wait_until(lambda: p.rows("SELECT count(*) FROM verdicts")[0][0] >= len(ok) + 1,
                   30, what="every accepted message's verdict row")
        log = p.log()
        assert log.count("PostgreSQL unreachable") == 1, log[-3000:]
        assert log.count("PostgreSQL back after") == 1, log[-3000:]
        p.stop()
    finally:
        srv.destroy()


def test_rate_limits_while_postgresql_is_down(make_postern, capture, workdir):
    """Rate limits never wait on the store: with PostgreSQL stopped a node
    limits on its own counts (421 past the limit, at once), and its log
    says once that the cluster's counts are out of reach and once that
    they are back."""
    srv = PgServer(workdir.join("pg")).start()
    try:
        clock = workdir.join("clock")
        with open(clock, "w") as f:     # one second into a minute: one window
            f.write("%d\n" % ((1 - int(time.time())) % 60))
        p = make_postern(capture.addr, conf={
            "db.url": srv.createdb("rate"), "greylist.enabled": "no",
            "rate.connections_per_minute": "3"}, env={"POSTERN_CLOCK_FILE": clock})
        srv.stop()
        wait_until(lambda: "rate: the store's counts are out of reach" in p.log(), 30,
                   what="the rate limits' outage line")
        for _ in range(3):
            with smtp_client(p.port, source="127.0.0.9") as s:
                assert s.noop()[0] == 250
        with pytest.raises(smtplib.SMTPConnectError) as e:
            smtp_client(p.port, source="127.0.0.9")
        assert e.value.smtp_code == 421
        srv.start()
        wait_until(lambda: "rate: the store's counts are back" in p.log(), 30,
                   what="the rate limits' end-of-outage line")
        log = p.log()
        assert log.count("rate: the store's counts are out of reach") == 1, log[-3000:]
        assert log.count("rate: the store's counts are back") == 1, log[-3000:]
        p.stop()
    finally:
        srv.destroy()


def test_release_race_between_two_nodes(make_postern, capture):
    """Two nodes on one database release the same held message at the same
    moment, several times over: one release wins each time (the other
    hears 409) and the backend gets exactly one copy."""
    url = session_server().createdb()
    a = node(make_postern, capture.addr, url)
    b = node(make_postern, capture.addr, url)
    ids = []
    for i in range(5):
        stage, code, text = send(a.port, "race%d" % i, quarantine=True)
        assert code == 250, text
        ids.append(re.search(rb"quarantined as ([0-9A-F]{12})", text).group(1).decode())
    for qid in ids:
        go, got = threading.Barrier(2), {}

        def release(name, port):
            h = Http(port, TOKEN)
            go.wait()
            got[name] = h.post("/api/quarantine/%s/release" % qid)[0]

        ts = [threading.Thread(target=release, args=(n, p.web_port))
              for n, p in (("a", a), ("b", b))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert sorted(got.values()) == [200, 409], got
    wait_until(lambda: len(capture.accepted()) >= len(ids), 30, what="the releases")
    time.sleep(1)   # a second copy would arrive now
    subjects = [re.search(rb"Subject: please quarantine me (\S+)", m.data).group(1)
                for m in capture.accepted()]
    assert sorted(subjects) == sorted(("race%d" % i).encode() for i in range(5))
    assert a.rows("SELECT count(*) FROM quarantine WHERE state = 'released'") == [(5,)]


def test_8bit_headers_are_stored(make_postern, capture):
    """Mail carries raw 8-bit header bytes, which PostgreSQL's UTF-8 text
    would refuse as they are: the index holds them as UTF-8 (Latin-1 read),
    the body stays byte for byte, and the release sends what came."""
    url = session_server().createdb()
    p = node(make_postern, capture.addr, url)
    body = (b"From: <sender@example.net>\r\nSubject: please quarantine me caf\xe9\r\n"
            b"Message-ID: <l\xe91@example.net>\r\n\r\n\xff\xfe raw\r\n")
    with smtp_client(p.port) as s:
        s.ehlo("client.example.net")
        assert s.mail("sender@example.net")[0] == 250
        assert s.rcpt("bob@example.org")[0] == 250
        code, text = s.data(body)
    assert code == 250, text
    qid = re.search(rb"quarantined as ([0-9A-F]{12})", text).group(1).decode()
    h = Http(p.web_port, TOKEN)
    _, _, d = h.get("/api/quarantine/%s" % qid)
    assert d["msgid"] == "<l\u00e91@example.net>", d
    assert d["subject"] == "please quarantine me caf\u00e9", d
    status, _, raw = h.get("/api/quarantine/%s/raw" % qid)
    assert status == 200 and raw.endswith(b"\xff\xfe raw\r\n")
    assert h.post("/api/quarantine/%s/release" % qid)[0] == 200
    wait_until(lambda: capture.accepted(), 20, what="the release")
    assert b"Message-ID: <l\xe91@example.net>" in capture.accepted()[0].data


def copy(p, url, tty=False):
    """`postern db copy -c FILE --to URL`: (exit code, stdout, stderr); with
    tty, stderr is a terminal (where the progress line goes)."""
    argv = [POSTERN_BIN, "db", "copy", "-c", p.conf_path, "--to", url]
    if not tty:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        return r.returncode, r.stdout, r.stderr
    master, slave = pty.openpty()
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=slave, text=True,
                           timeout=120)
        os.close(slave)
        slave = None
        err = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:     # EIO: the other end is closed
                break
            if not chunk:
                break
            err += chunk
        return r.returncode, r.stdout, err.decode("utf-8", "replace")
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)


def test_db_copy_moves_a_node_to_postgresql(make_postern, capture):
    """A SQLite node with state of every kind -- a greylisted triplet, an
    access entry, a rule, a quarantined message, verdicts and stats, learned
    tokens, a web user -- copied into PostgreSQL: a node started on it shows
    the same state through its API. Copying again is refused."""
    src = node(make_postern, capture.addr, "", {"greylist.enabled": "no"})
    api = Http(src.web_port, TOKEN)
    wait_until(lambda: api.get("/api/access")[0] == 200, 15, what="the API")
    assert api.post("/api/access", {"list": "deny", "kind": "sender",
                                    "value": "spam@bad.example", "note": "moved"})[0] == 201
    _, code, text = send(src.port, "q1", quarantine=True)
    assert code == 250, text
    qid = re.search(rb"quarantined as ([0-9A-F]{12})", text).group(1).decode()
    assert send(src.port, "plain")[1] == 250
    assert api.post("/api/learn", {"id": qid, "class": "spam"})[0] == 200
    r = subprocess.run([POSTERN_BIN, "passwd", "-c", src.conf_path, "mover"],
                       input="a long enough password\n", capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    src.reload({"greylist.enabled": "yes"})
    wait_until(lambda: send(src.port, "grey")[1] == 450, 20, what="greylisting")
    wait_until(lambda: len(api.get("/api/verdicts")[2]["verdicts"]) >= 3, 20,
               what="the verdict rows")
    src.stop()
    before = {t: src.rows("SELECT count(*) FROM %s" % t)[0][0]
              for t in ("greylist", "access", "rules", "quarantine", "verdicts", "stats",
                        "bayes_tokens", "bayes_msgs", "web_users")}
    assert all(before.values()), before

    url = session_server().createdb()
    rc, out, err = copy(src, url, tty=True)
    assert rc == 0, err
    for t, n in before.items():
        assert " %s %d," % (t, n) in out, (t, n, out)
    total = int(re.search(r"; (\d+) rows$", out.strip()).group(1))
    assert "\rcopying" in err and "%d/%d rows" % (total, total) in err, err

    dst = make_postern(capture.addr, conf={"db.url": url, "web.api_token": TOKEN,
                                           "greylist.enabled": "yes"})
    h = Http(dst.web_port, TOKEN)
    wait_until(lambda: h.get("/api/access")[0] == 200, 15, what="the API")
    assert [(e["value"], e["note"]) for e in h.get("/api/access")[2]["entries"]] == \
        [("spam@bad.example", "moved")]
    assert [r["name"] for r in h.get("/api/rules")[2]["rules"]] == ["quar"]
    _, _, q = h.get("/api/quarantine/%s" % qid)
    assert q["id"] == qid and q["state"] == "held"
    status, _, raw = h.get("/api/quarantine/%s/raw" % qid)
    assert status == 200 and b"Subject: please quarantine me q1" in raw
    assert [t["rcpt"] for t in h.get("/api/greylist")[2]["triplets"]] == ["bob@example.org"]
    assert len(h.get("/api/verdicts")[2]["verdicts"]) == before["verdicts"]
    for t, n in before.items():
        # the new node counts its own sessions (the harness's banner check)
        got = dst.rows("SELECT count(*) FROM %s" % t)[0][0]
        assert got >= n if t == "stats" else got == n, (t, got, n)
    assert dst.rows("SELECT nspam FROM bayes_meta") == [(1,)]
    assert Http(dst.web_port).login("mover", "a long enough password")[0] == 200
    # the copy's identities continue: a new rule gets the next id
    assert h.post("/api/rules", {"name": "after", "target": "subject", "pattern": "x",
                                 "action": "score", "score": 1})[0] == 201
    # the greylisted triplet is known: its retry is not a new first attempt
    assert dst.rows("SELECT attempts FROM greylist") == [(1,)]

    rc, out, err = copy(src, url)
    assert rc == 1 and "already holds data" in err and out == "", err


def test_greylisting_answers_451_while_postgresql_is_down(make_postern, capture, workdir):
    """As with a locked SQLite file (test_db_faults.py): the greylist
    decision needs the database, so while PostgreSQL is down the client
    hears 451 -- at RCPT from greylisting, or already at MAIL once the
    writer found the database gone -- never 250, never 5xx; afterwards
    greylisting works as before, and the outage was logged once."""
    srv = PgServer(workdir.join("pg")).start()
    try:
        p = node(make_postern, capture.addr, srv.createdb("grey"), {"greylist.enabled": "yes"})
        assert send(p.port, "g1")[:2] == ("rcpt", 450)       # greylisted normally
        srv.stop()
        for i in range(3):
            stage, code, _ = send(p.port, "down%d" % i)
            assert (stage, code) in (("rcpt", 451), ("mail", 451)), (stage, code)
        assert ("greylist: database unavailable; answering 451" in p.log() or
                "database not writable; answering 451" in p.log())
        srv.start()
        wait_until(lambda: send(p.port, "g2")[:2] == ("rcpt", 450), 30,
                   what="greylisting to work again")
        assert capture.accepted() == []
        log = p.log()
        assert log.count("PostgreSQL unreachable") == 1 and "PostgreSQL back after" in log
        p.stop()
    finally:
        srv.destroy()


def test_read_only_database_answers_451_and_recovers(make_postern, capture, workdir):
    """A standby promoted late, or an admin's default_transaction_read_only:
    writes fail with SQLSTATE 25006. That is an outage like a lost server:
    new transactions hear 451 at MAIL (nothing is accepted that could not
    be recorded), one log line says so, and the node is back by itself once
    the database takes writes again."""
    srv = PgServer(workdir.join("pg")).start()
    try:
        url = srv.createdb("ro")
        p = node(make_postern, capture.addr, url, {"greylist.enabled": "no"})
        assert send(p.port, "before")[1] == 250
        srv.psql("postgres", "ALTER DATABASE ro SET default_transaction_read_only = on")
        srv.psql("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE datname = 'ro'")
        seen = wait_until(lambda: [r for r in (send(p.port, "ro%d" % i) for i in range(2))
                                   if r[:2] == ("mail", 451)], 30,
                          what="MAIL to hear 451 while read-only")
        assert seen
        # a quarantine verdict needs a committed row: it is refused too
        assert send(p.port, "roq", quarantine=True)[1] == 451
        wait_until(lambda: "read-only transaction" in p.log(), 15,
                   what="the writer to find the database read-only")
        srv.psql("postgres", "ALTER DATABASE ro SET default_transaction_read_only = off")
        srv.psql("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE datname = 'ro'")
        wait_until(lambda: send(p.port, "after")[1] == 250, 30, what="writes to work again")
        log = p.log()
        assert log.count("PostgreSQL unreachable") == 1, log[-3000:]
        assert "PostgreSQL back after" in log
        delivered = [m for m in capture.accepted() if b"Subject: hello" in m.data]
        assert len(delivered) >= 2
        p.stop()
    finally:
        srv.destroy()


def test_engine_ops_on_postgresql():
    """tests/unit/pg_test.c on a fresh database: the cluster ops as sqlite.c
    has them, token keys past 2^63, text that is not UTF-8, a claim raced
    on two connections, the shared rate counts, pruning numbered meta
    values (make unit builds it; make test runs unit first). Every case
    its source runs must pass: a binary that stopped early or skipped them
    all (no URL) fails here."""
    binary = os.path.join(REPO, "build", "tests", "pg_test")
    assert os.access(binary, os.X_OK), "build/tests/pg_test missing: run make unit"
    with open(os.path.join(REPO, "tests", "unit", "pg_test.c")) as f:
        cases = len(re.findall(r"^\s*T_RUN\(", f.read(), re.M))
    r = subprocess.run([binary], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, POSTERN_TEST_PG_URL=session_server().createdb()))
    assert r.returncode == 0 and "%d passed, 0 failed" % cases in r.stdout, \
        r.stdout + r.stderr
