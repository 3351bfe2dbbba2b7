"""Several Posterns on one store behave as one (docs/cluster.md).

Each node is a real `postern serve` on its own SMTP and web port; they
share the store: one db.path file (SQLite: several processes on one host,
the same semantics as several hosts on one PostgreSQL) or one PostgreSQL
(db.url, when tests/integration/harness/pg.py is there). Every node has the
same web.api_token and the same test clock (POSTERN_CLOCK_FILE), and the
same capture backend, so the tests see what each node delivered.

Proven here: a triplet greylisted on A and retried after the delay on B
(or C) is accepted, and before the delay B counts the same wait; a message
quarantined on A is listed and released from B's API exactly once, and a
simultaneous release from A and B delivers one copy; a rule or an
access-list entry added through B's API acts on A's next messages within
two seconds (polled with that deadline); a login on A is valid on B, and a
logout on B ends it on A. A client whose connections are spread over two
nodes meets the cluster's rate.connections_per_minute, not twice it,
within the sync delay (docs/cluster.md, "Rate limits"), and a new minute
of the test clock starts its count afresh.
"""
import os
import re
import subprocess
import smtplib
import threading
import time

import pytest

from harness import Postern, POSTERN_BIN, wait_until
from harness.client import RawSMTP, smtp_client
from webapi import Http, PASSWORD, TOKEN, USER, send_mail

HAVE_PG = os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                      "harness", "pg.py"))
EDIT_BOUND = 2.0        # seconds: docs/cluster.md, "How edits propagate"
RATE_BOUND = 3.0        # seconds: a node's counts stored within 1 s, read within 1 s


@pytest.fixture(params=["sqlite", "pg"])
def store(request, workdir):
    """The shared store's config keys: one SQLite file, or a fresh database
    on the test process's PostgreSQL (harness/pg.py)."""
    if request.param == "sqlite":
        yield {"db.path": workdir.join("shared.db")}
        return
    if not HAVE_PG:
        pytest.skip("tests/integration/harness/pg.py is not there yet")
    from harness.pg import session_server
    server = session_server()
    url = server.createdb()
    try:
        yield {"db.url": url}
    finally:
        server.dropdb(url)


class Cluster:
    """n nodes on one store, one test clock, one backend."""

    def __init__(self, workdir, store, backend, resolver, n, conf=None):
        self.clockfile = workdir.join("clock")
        self.set_clock(0)
        conf = dict(conf or {})
        conf.update(store)
        conf["web.api_token"] = TOKEN
        self.nodes = []
        for i in range(n):
            p = Postern(workdir.join("node%d" % i), backend=backend, resolver=resolver,
                        conf=conf, env={"POSTERN_CLOCK_FILE": self.clockfile})
            p.write_config()
            self.nodes.append(p)
        # one user for every node: it lives in the shared store
        r = subprocess.run([POSTERN_BIN, "passwd", "-c", self.nodes[0].conf_path, USER],
                           input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr

    def start(self):
        for p in self.nodes:
            p.start()
            wait_until(lambda: Http(p.web_port).get("/healthz")[0] == 200, 15,
                       what="node %s's dashboard" % p.dir)
        return self

    def set_clock(self, offset):
        with open(self.clockfile, "w") as f:
            f.write("%d\n" % offset)

    def api(self, i):
        return Http(self.nodes[i].web_port, token=TOKEN)

    def stop(self):
        for p in self.nodes:
            if p.alive():
                p.stop()


@pytest.fixture
def make_cluster(workdir, store, unbound, capture):
    made = []

    def make(n=2, conf=None):
        c = Cluster(workdir, store, capture.addr, unbound.addr, n, conf)
        made.append(c)          # stopped at the end even if a node fails to start
        return c.start()
    yield make
    for c in made:
        c.stop()


def rcpt_reply(port, sender="a@sender.example", rcpt="b@example.net", source="127.0.0.2"):
    """MAIL and RCPT on a fresh session: the RCPT reply (code, text)."""
    with smtp_client(port, source=source) as s:
        s.ehlo("client.example")
        assert s.mail(sender)[0] == 250
        code, text = s.rcpt(rcpt)
        s.rset()
        return code, text.decode()


# ----------------------------------------------------------- greylisting

@pytest.mark.parametrize("n", [2, 3])
def test_greylisted_on_a_accepted_on_another_node(make_cluster, capture, n):
    c = make_cluster(n, {"greylist.enabled": "yes", "greylist.delay": "300"})
    a, b, last = c.nodes[0], c.nodes[1], c.nodes[-1]
    assert rcpt_reply(a.port) == (450, "4.7.1 Greylisted, try again in 300 seconds")
    # 120 s on, B knows the triplet: the wait left, not a fresh 300 s
    c.set_clock(120)
    code, text = rcpt_reply(b.port)
    assert code == 450
    wait = int(re.search(r"try again in (\d+) seconds", text).group(1))
    assert 170 <= wait <= 180, text     # the clock is an offset on the real one
    # after the delay the last node accepts the retry and delivers it
    c.set_clock(301)
    code, text = send_mail(last.port, "greylist retry on node %d" % n,
                           sender="a@sender.example", rcpt="b@example.net")
    assert code == 250, text
    msgs = capture.wait_messages(1)
    assert b"greylist retry on node" in msgs[0].data
    # a triplet nobody saw is still greylisted on every node
    assert rcpt_reply(last.port, sender="new@sender.example")[0] == 450


def test_triplet_forgotten_through_b_is_new_again_on_a(make_cluster):
    """A keeps a passed triplet in memory; forgetting it through B's API
    reaches A within the edit bound (the admin token moves, A's greylist
    memory lets go), so A greylists it as new again."""
    c = make_cluster(2, {"greylist.enabled": "yes", "greylist.delay": "300"})
    a = c.nodes[0]
    assert rcpt_reply(a.port)[0] == 450
    c.set_clock(301)
    assert rcpt_reply(a.port)[0] == 250
    assert rcpt_reply(a.port)[0] == 250      # now answered from A's memory
    key = {"net": "127.0.0.0/24", "sender": "a@sender.example", "rcpt": "b@example.net"}
    assert c.api(1).post("/api/greylist/forget", key)[0] == 200
    wait_until(lambda: rcpt_reply(a.port)[0] == 450, EDIT_BOUND, interval=0.1,
               what="the forgotten triplet to be new on A")


# ------------------------------------------------------------ quarantine

QRULE = {"name": "cluster_quar", "target": "subject", "pattern": "QUARANTINE-ME",
         "action": "quarantine"}


def quarantine_on(port, tag):
    code, text = send_mail(port, "QUARANTINE-ME " + tag)
    assert code == 250 and "quarantined as" in text, text
    return re.search(r"quarantined as ([0-9A-F]+)", text).group(1)


def test_quarantined_on_a_released_from_b_exactly_once(make_cluster, capture):
    c = make_cluster(2)
    assert c.api(0).post("/api/rules", QRULE)[0] == 201
    qid = quarantine_on(c.nodes[0].port, "one")
    assert capture.accepted() == []
    listed = c.api(1).get("/api/quarantine?q=QUARANTINE-ME")[2]["messages"]
    assert [m["id"] for m in listed] == [qid]
    assert listed[0]["state"] == "held"
    st, _, d = c.api(1).post("/api/quarantine/%s/release" % qid)
    assert st == 200, d
    msgs = capture.wait_messages(1)
    assert b"QUARANTINE-ME one" in msgs[0].data
    # released once, wherever asked next
    assert c.api(0).post("/api/quarantine/%s/release" % qid)[0] == 409
    assert c.api(1).post("/api/quarantine/%s/release" % qid)[0] == 409
    st, _, d = c.api(0).get("/api/quarantine/" + qid)
    assert st == 200 and d["state"] == "released"
    assert len(capture.accepted()) == 1


def test_simultaneous_release_from_two_nodes_delivers_one_copy(make_cluster, capture):
    c = make_cluster(2)
    assert c.api(1).post("/api/rules", QRULE)[0] == 201
    # B's rule reaches A's sessions within the bound
    qid, tag = wait_until(lambda: _try_quarantine(c.nodes[0].port, "race"), EDIT_BOUND,
                          what="B's quarantine rule to act on A")
    before = len(capture.accepted())
    go = threading.Barrier(2)
    codes = []

    def release(i):
        api = c.api(i)
        go.wait(10)
        codes.append(api.post("/api/quarantine/%s/release" % qid)[0])
    ts = [threading.Thread(target=release, args=(i,)) for i in (0, 1)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert sorted(codes) == [200, 409], codes
    msgs = capture.wait_messages(before + 1)
    assert sum(tag.encode() in m.data for m in msgs) == 1
    # the loser answered after the winner's claim; nothing else is on its way
    assert c.api(0).get("/api/quarantine/" + qid)[2]["state"] == "released"
    assert len(capture.accepted()) == before + 1


def _try_quarantine(port, tag):
    """(id, subject) when the message was quarantined; None when it was
    delivered (the rule had not reached this node yet)."""
    subject = "QUARANTINE-ME %s %d" % (tag, time.time_ns())
    code, text = send_mail(port, subject)
    assert code == 250, text
    m = re.search(r"quarantined as ([0-9A-F]+)", text)
    return (m.group(1), subject) if m else None


# --------------------------------------------------------- shared edits

def test_rule_added_through_b_acts_on_a_within_two_seconds(make_cluster, capture):
    c = make_cluster(2)
    a = c.nodes[0]
    assert send_mail(a.port, "cheap watches before")[0] == 250
    st, _, d = c.api(1).post("/api/rules", {"name": "cluster_reject", "target": "subject",
                                             "pattern": "cheap\\s+watches", "flags": "i",
                                             "action": "reject"})
    assert st == 201, d

    def rejected():
        with smtp_client(a.port, source="127.0.0.2") as s:
            s.ehlo("client.sender.test")
            s.mail("alice@sender.test")
            s.rcpt("bob@example.org")
            code, _ = s.data(b"Subject: Cheap  Watches\r\n\r\nbuy\r\n")
            return code == 550 or None
    wait_until(rejected, EDIT_BOUND, interval=0.1, what="B's rule to act on A")
    # and it is the rule that rejected it, as A's verdict log says
    wait_until(lambda: any("cluster_reject" in (ck.get("reason") or "")
                           for v in c.api(0).get("/api/verdicts?q=Cheap")[2]["verdicts"]
                           for ck in v["checks"]), 10, what="A's verdict naming the rule")
    # deleting it through A frees B as well
    rid = d["id"]
    assert c.api(0).delete("/api/rules/%d" % rid)[0] == 200
    wait_until(lambda: send_mail(c.nodes[1].port, "cheap watches after")[0] == 250,
               EDIT_BOUND, interval=0.1, what="the deletion to reach B")


def test_access_entry_added_through_b_acts_on_a(make_cluster):
    c = make_cluster(3)
    a = c.nodes[0]
    assert rcpt_reply(a.port, source="127.0.0.5")[0] == 250
    st, _, d = c.api(1).post("/api/access", {"list": "deny", "kind": "client",
                                              "value": "127.0.0.5"})
    assert st == 201, d

    def code(node, source="127.0.0.5"):
        """554 when refused at connect, else the RCPT reply's code."""
        try:
            return rcpt_reply(node.port, source=source)[0]
        except smtplib.SMTPConnectError as e:
            return e.smtp_code
    for node in (a, c.nodes[2]):
        wait_until(lambda: code(node) == 554, EDIT_BOUND, interval=0.1,
                   what="B's deny entry to act on %s" % node.dir)
    # other clients are untouched
    assert code(a, source="127.0.0.6") == 250
    assert c.api(2).delete("/api/access?list=deny&kind=client&value=127.0.0.5")[0] == 200
    wait_until(lambda: code(a) == 250, EDIT_BOUND, interval=0.1,
               what="the removal to reach A")


# ----------------------------------------------------------------- login

def test_login_on_a_valid_on_b_logout_on_b_ends_it(make_cluster):
    c = make_cluster(2)
    a = Http(c.nodes[0].web_port)
    st, _, d = a.login()
    assert st == 200, d
    b = Http(c.nodes[1].web_port)
    b.cookie, b.csrf = a.cookie, a.csrf       # the browser, sent to B by the balancer
    st, _, d = b.get("/api/session")
    assert st == 200 and d["user"] == USER and d["csrf"] == a.csrf
    assert b.get("/api/rules")[0] == 200
    # a state change on B with A's CSRF token
    st, _, d = b.post("/api/access", {"list": "allow", "kind": "helo", "value": "x.test"})
    assert st == 201, d
    assert b.post("/api/access", {"list": "allow", "kind": "helo", "value": "y.test"},
                  csrf=False)[0] == 403
    # a made-up cookie is refused on both
    fake = Http(c.nodes[1].web_port)
    fake.cookie = "postern_session=" + "ab" * 32
    assert fake.get("/api/rules")[0] == 401
    assert b.post("/api/logout")[0] == 200
    assert a.get("/api/rules")[0] == 401
    assert b.get("/api/rules")[0] == 401


def test_login_survives_a_node_restart(make_cluster):
    c = make_cluster(2)
    a = Http(c.nodes[0].web_port)
    assert a.login()[0] == 200
    c.nodes[0].stop()
    c.nodes[0].start()
    wait_until(lambda: Http(c.nodes[0].web_port).get("/healthz")[0] == 200, 15,
               what="node A back")
    assert a.get("/api/rules")[0] == 200


# ------------------------------------------------------------- under load

def test_two_writers_under_load_never_refuse(make_cluster, capture, store):
    """Both nodes' writers add to the same per-minute counter rows at once.
    On PostgreSQL two such transactions could wait for each other in a
    cycle (a deadlock, SQLSTATE 40P01), which the writer used to take for
    an outage: new transactions got 451 until the next batch. A conflict
    now reruns the batch at once, and the rows go in one order (fewer
    conflicts). Every message is accepted and delivered."""
    c = make_cluster(2, conf={"greylist.enabled": "no"})
    before = len(capture.accepted())
    per_node, sessions = 1500, 25
    procs = [subprocess.Popen(
        ["smtp-source", "-s", str(sessions), "-m", str(per_node), "-l", "2000",
         "-f", "load@sender.example", "-t", "rcpt@example.net", "-M", "client.example",
         "127.0.0.1:%d" % p.port], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True) for p in c.nodes]
    outs = [pr.communicate(timeout=300)[0] for pr in procs]
    for pr, out in zip(procs, outs):
        assert pr.returncode == 0, out[-500:]
    wait_until(lambda: len(capture.accepted()) >= before + 2 * per_node, 60,
               what="every message delivered")
    assert len(capture.accepted()) == before + 2 * per_node
    for p in c.nodes:
        assert "writes failing" not in p.log(), p.log()[-2000:]


# ----------------------------------------------------------- rate limits

def banner(port, source):
    """The greeting's (code, text) a fresh connection from source gets."""
    c = RawSMTP(port, source=source)
    try:
        return c.banner.code, c.banner.text
    finally:
        c.close()


def test_rate_limit_is_the_clusters(make_cluster):
    limit = 10
    c = make_cluster(2, {"rate.connections_per_minute": str(limit)})
    a, b = c.nodes
    # windows are minutes of the clock: start one second into a minute
    offset = (1 - int(time.time())) % 60
    c.set_clock(offset)
    client = "127.0.0.9"
    assert banner(a.port, client)[0] == 220
    for _ in range(limit - 1):          # the cluster's limit, nine of ten on B
        assert banner(b.port, client)[0] == 220
    # A counted one of them itself: alone it would take nine more. Once
    # B's nine reached it through the store, it refuses the next.
    accepted = []

    def refused_on_a():
        code, text = banner(a.port, client)
        if code == 220:
            accepted.append(code)
            return None
        return code, text
    code, text = wait_until(refused_on_a, RATE_BOUND, interval=0.5,
                            what="node A to count B's connections")
    assert (code, text) == (421, "4.7.0 Too many connections from %s, try again later" % client)
    assert len(accepted) < limit - 1, accepted      # not A's own count alone
    # the limit is per client, on both nodes
    other = "127.0.0.10"
    assert banner(a.port, other)[0] == 220
    assert banner(b.port, other)[0] == 220
    # the next minute of the test clock starts from nothing, on both nodes
    c.set_clock(offset + 60)
    assert banner(a.port, client)[0] == 220
    assert banner(b.port, client)[0] == 220
