"""Per-domain policy ([domain NAME] sections, policy/dompol.h): two domains
with different thresholds get different verdicts for the same message; a
transaction whose recipients have different policies is split with 452
4.5.3 (smtplib and a pipelined raw client), the 452'd recipient comes back
in a second transaction and both deliveries arrive with their own
verdicts, and a backend behind XCLIENT still sees the real client in both;
greylisting off for one domain; a domain's own deny and allow lists;
config errors for bad sections and keys; GET /api/domains.

Policies saved in the dashboard (PUT/DELETE /api/domains/NAME,
policy/domtab.h): the next message for the domain takes the saved
thresholds, a config section's name is refused with 409, bad values with
400 and the parser's reason, edits need auth and CSRF; a real Chromium
saves and deletes one on the Domains page; a policy saved on one node of a
cluster acts on another within two seconds.

Scores come from DNS lists the test's own unbound serves: 127.0.0.5 is
listed at bl.test (weight 5), 127.0.0.7 and 127.0.0.8 at big.test (20).
Global thresholds are the defaults: tag 3, quarantine 6, reject 10.
"""
import contextlib
import json
import smtplib
import subprocess

import pytest

from harness import wait_until
from harness.capture import Capture
from policyenv import PolicyEnv, rows, smtp_session, wait_rows
from webapi import send_mail
# several nodes on one store, as the cluster tests start them
from test_cluster import EDIT_BOUND, make_cluster, rcpt_reply, store  # noqa: F401
# the real Chromium of the dashboard tests, and their page helpers
from test_ui import (click, delay_answer, drv, flashed, go, held_answers_landed,  # noqa: F401
                     logged_in, no_alert, row_of, shot, table_cells, texts, wait_el)

RECORDS = ["5.0.0.127.bl.test. 300 IN A 127.0.0.2",
           "7.0.0.127.big.test. 300 IN A 127.0.0.2",
           "8.0.0.127.big.test. 300 IN A 127.0.0.2"]

# strict.test and .strict2.test: the same policy under two names;
# vip.test: takes 127.0.0.7 whatever it scores; nogrey.test: no
# greylisting; plain.test has no section (the global policy).
DOMAINS = """[rbl]
zones = bl.test*5, big.test*20
[domain strict.test]
policy.quarantine_score = 4
access.deny_senders = bad.example
[domain .strict2.test]
policy.quarantine_score = 4
access.deny_senders = Bad.Example
[domain vip.test]
access.allow_clients = 127.0.0.7
[domain nogrey.test]
greylist.enabled = no
"""

MSG = (b"From: a@sender.test\r\nTo: u@strict.test\r\nSubject: one message\r\n"
       b"Message-ID: <dom.1@sender.test>\r\n\r\nThe same message for every domain.\r\n")


@pytest.fixture
def env():
    e = PolicyEnv(RECORDS, conf=DOMAINS).start()
    yield e
    e.stop()


@contextlib.contextmanager
def serving(env, extra=""):
    """`postern serve` with extra INI text on top, in front of a Capture."""
    if extra:
        env.write_conf(extra)
    cap = Capture().start()
    env.serve(cap)
    try:
        yield cap
    finally:
        env.stop_serving()
        cap.stop()


@pytest.fixture
def served(env):
    with serving(env) as cap:
        yield env, cap


def fetch(db, sql, n):
    """The rows of sql once there are n of them (the writer batches)."""
    wait_rows(db, sql, n)
    return rows(db, sql)


def rcpts(m):
    """A captured message's recipients (the capture keeps the RCPT lines)."""
    return [l.decode().split("<", 1)[1].split(">", 1)[0] for l in m.rcpts]


def checks_of(row_checks):
    return [(c["check"], c["result"], c.get("reason", "")) for c in json.loads(row_checks)]


# -- the same message, different domains ---------------------------------------

def test_thresholds_per_domain_give_different_verdicts(env):
    strict = env.check("127.0.0.5", mail="a@sender.test", rcpts=["u@strict.test"], message=MSG)
    plain = env.check("127.0.0.5", mail="a@sender.test", rcpts=["u@plain.test"], message=MSG)
    assert strict["score"] == plain["score"] == 5
    assert strict["verdict"] == "quarantine"
    assert plain["verdict"] == "tag"
    assert strict["policy"] == {"domain": "strict.test", "tag_score": 3, "quarantine_score": 4,
                                "reject_score": 10, "greylisting": False}
    assert plain["policy"]["domain"] == "global" and plain["policy"]["quarantine_score"] == 6
    assert strict["domain"]["result"] == "policy"
    assert strict["domain"]["reason"] == "strict.test: tag 3, quarantine 4, reject 10, greylisting off"
    # with [domain] sections in the config, the global policy is named too
    assert plain["domain"]["reason"] == \
        "the global policy: tag 3, quarantine 6, reject 10, greylisting off"
    # subdomain section: .strict2.test takes x.strict2.test, not strict2.test itself
    sub = env.check("127.0.0.5", mail="a@sender.test", rcpts=["u@x.strict2.test"], message=MSG)
    assert sub["verdict"] == "quarantine" and sub["policy"]["domain"] == ".strict2.test"
    top = env.check("127.0.0.5", mail="a@sender.test", rcpts=["u@strict2.test"], message=MSG)
    assert top["verdict"] == "tag" and top["policy"]["domain"] == "global"


def test_check_splits_a_second_recipient_of_another_policy(env):
    d = env.check("127.0.0.5", mail="a@sender.test",
                  rcpts=["u@strict.test", "w@x.strict2.test", "v@plain.test"])
    assert d["verdict"] == "tempfail" and d["stage"] == "rcpt"
    assert d["reply"] == ("452 4.5.3 <v@plain.test>: Recipient of another domain policy; "
                          "send it again in a separate transaction")
    assert d["domain"]["result"] == "split"


# -- the split over SMTP -------------------------------------------------------

def test_mixed_transaction_is_split_and_both_arrive(served):
    env, cap = served
    s = smtp_session(env.port, source="127.0.0.5")
    try:
        s.ehlo("client.sender.test")
        assert s.mail("a@sender.test")[0] == 250
        assert s.rcpt("u@strict.test")[0] == 250
        code, text = s.rcpt("v@plain.test")
        assert code == 452
        assert text.decode() == ("4.5.3 <v@plain.test>: Recipient of another domain policy; "
                                 "send it again in a separate transaction")
        # another name, the same policy: stays in this transaction
        assert s.rcpt("w@x.strict2.test")[0] == 250
        assert s.data(MSG)[0] == 250                    # quarantined, committed
        # the client sends the 452'd recipient again, in a new transaction
        assert s.mail("a@sender.test")[0] == 250
        assert s.rcpt("v@plain.test")[0] == 250
        assert s.data(MSG)[0] == 250
        s.quit()
    finally:
        s.close()
    msgs = cap.wait_messages(1)
    assert [rcpts(m) for m in msgs] == [["v@plain.test"]]
    assert msgs[0].header("X-Spam-Flag") == ["YES"]
    assert msgs[0].header("X-Spam-Score") == ["5.0"]
    q = fetch(env.db, "SELECT rcpts FROM quarantine", 1)
    assert json.loads(q[0][0]) == ["u@strict.test", "w@x.strict2.test"]
    v = fetch(env.db, "SELECT verdict, rcpts, checks FROM verdicts WHERE size > 0 ORDER BY id", 2)
    assert [(r[0], json.loads(r[1])) for r in v] == [
        ("quarantine", ["u@strict.test", "w@x.strict2.test"]), ("tag", ["v@plain.test"])]
    first = checks_of(v[0][2])
    assert ("domain", "policy", "strict.test: tag 3, quarantine 4, reject 10, greylisting off") in first
    assert any(c[:2] == ("domain", "split") and "<v@plain.test>" in c[2] for c in first)
    assert [c for c in checks_of(v[1][2]) if c[0] == "domain"] == [
        ("domain", "policy", "the global policy: tag 3, quarantine 6, reject 10, greylisting off")]
    assert "domain policy: <v@plain.test> (the global policy) is not strict.test's" in env.log()


def test_pipelined_split_keeps_order_and_xclient(served):
    env, cap = served
    from harness import RawSMTP
    c = RawSMTP(env.port, source="127.0.0.5")
    try:
        c.ehlo("client.sender.test")
        c.send("MAIL FROM:<a@sender.test>\r\nRCPT TO:<v@plain.test>\r\n"
               "RCPT TO:<u@strict.test>\r\nRCPT TO:<p@plain.test>\r\nDATA\r\n")
        got = [c.reply() for _ in range(5)]
        assert [r.code for r in got] == [250, 250, 452, 250, 354]
        assert got[2].enhanced == "4.5.3" and "<u@strict.test>" in got[2].text
        c.send(MSG + b".\r\n")
        assert c.reply().code == 250
        c.send("MAIL FROM:<a@sender.test>\r\nRCPT TO:<u@strict.test>\r\nDATA\r\n")
        assert [c.reply().code for _ in range(3)] == [250, 250, 354]
        c.send(MSG + b".\r\n")
        assert c.reply().code == 250
        c.cmd("QUIT")
    finally:
        c.close()
    msgs = cap.wait_messages(1)
    assert [rcpts(m) for m in msgs] == [["v@plain.test", "p@plain.test"]]
    wait_rows(env.db, "SELECT id FROM quarantine", 1)
    # the backend met the real client for both transactions (XCLIENT)
    assert all(any("ADDR=127.0.0.5" in x.decode() for x in sess.xclient)
               for sess in cap.sessions if sess.lines)


def test_split_counts_towards_the_recipient_limit(env):
    """A 452'd recipient counts as tried (RFC 5321 4.5.3.1.8): past
    proxy.max_recipients the client hears 452 4.5.3 too many recipients,
    the same code, so nothing is lost either way."""
    with serving(env, "[proxy]\nmax_recipients = 2\n"):
        s = smtp_session(env.port, source="127.0.0.9")
        try:
            s.ehlo("client.sender.test")
            s.mail("a@sender.test")
            assert s.rcpt("u@strict.test")[0] == 250
            assert s.rcpt("v@plain.test")[0] == 452
            code, text = s.rcpt("w@strict.test")
            assert code == 452 and b"too many recipients" in text
            assert s.data(MSG)[0] == 250
        finally:
            s.close()


# -- greylisting per domain ----------------------------------------------------

def test_greylisting_off_for_one_domain(env):
    with serving(env, "[greylist]\nenabled = yes\n") as cap:
        s = smtp_session(env.port, source="127.0.0.9")
        s.ehlo("client.sender.test")
        s.mail("a@sender.test")
        code, text = s.rcpt("g@plain.test")
        assert code == 450 and text.startswith(b"4.7.1 Greylisted")
        assert s.rcpt("n@nogrey.test")[0] == 250       # no greylisting there
        # now the transaction is nogrey.test's: another policy is split
        # before greylisting (no triplet), not deferred by it
        assert s.rcpt("h@plain.test")[0] == 452
        assert s.data(MSG)[0] == 250
        assert fetch(env.db, "SELECT rcpt FROM greylist ORDER BY rcpt", 1) == [("g@plain.test",)]
        # the greylisted recipient passes after the delay, in its own transaction
        env.clock(400)
        s.mail("a@sender.test")
        assert s.rcpt("g@plain.test")[0] == 250
        assert s.data(MSG)[0] == 250
        s.quit()
        msgs = cap.wait_messages(2)
        assert sorted(rcpts(m)[0] for m in msgs) == ["g@plain.test", "n@nogrey.test"]


# -- a domain's own lists ------------------------------------------------------

def test_domain_deny_list_refuses_only_its_recipients(served):
    env, cap = served
    s = smtp_session(env.port, source="127.0.0.9")
    try:
        s.ehlo("client.sender.test")
        s.mail("x@mail.bad.example")
        code, text = s.rcpt("u@strict.test")
        assert code == 550
        assert text.decode() == ("5.7.1 <u@strict.test>: Recipient address rejected: sender "
                                 "x@mail.bad.example denied by the policy of strict.test")
        assert s.rcpt("p@plain.test")[0] == 250
        assert s.data(MSG)[0] == 250
    finally:
        s.close()
    assert [rcpts(m) for m in cap.wait_messages(1)] == [["p@plain.test"]]


def test_domain_allow_list_takes_a_client_others_refuse(served):
    env, cap = served
    # 127.0.0.7 scores 20, past every reject_score; vip.test allowlists it
    s = smtp_session(env.port, source="127.0.0.7")
    try:
        assert s.banner[0] == 220          # not refused before a recipient
        s.ehlo("client.sender.test")
        assert s.mail("a@sender.test")[0] == 250
        code, text = s.rcpt("p@plain.test")
        assert code == 550 and text.startswith(b"5.7.1 Service unavailable")
        assert s.rcpt("boss@vip.test")[0] == 250
        assert s.data(MSG)[0] == 250
    finally:
        s.close()
    msgs = cap.wait_messages(1)
    assert rcpts(msgs[0]) == ["boss@vip.test"] and msgs[0].header("X-Spam-Flag") == []
    v = fetch(env.db, "SELECT verdict, checks FROM verdicts WHERE size > 0", 1)
    assert v[0][0] == "accept"
    assert ("domain", "allow", "client 127.0.0.7 allowlisted for vip.test (127.0.0.7)") \
        in checks_of(v[0][1])
    # the same score from a client no domain allowlists: refused at connect
    s = smtp_session(env.port, source="127.0.0.8")
    assert s.banner[0] == 554
    s.close()


# -- configuration -------------------------------------------------------------

def test_config_errors_name_file_line_and_fix(env):
    env.p.raw = ("[domain bad..name]\npolicy.tag_score = 1\n"
                 "[domain ok.test]\nfrobnicate = 2\n"
                 "policy.quarantine_score = 1\n"
                 "access.allow_clients = 10.0.0.0/8, nonsense\n"
                 "greylist.enabled = maybe\n")
    rc, out = env.p.configtest()
    assert rc == 1
    lines = open(env.conf).read().splitlines()
    at = {text: i + 1 for i, text in enumerate(lines)}
    path = env.conf
    assert "%s:%d: [domain bad..name] does not name a domain; write e.g. [domain example.org], " \
        "or [domain .example.org] for its subdomains" % (path, at["policy.tag_score = 1"]) in out
    assert "%s:%d: unknown key 'frobnicate' in section [domain ok.test]; a domain section takes " \
        "policy.tag_score," % (path, at["frobnicate = 2"]) in out
    assert "%s:%d: [domain ok.test] thresholds tag 3, quarantine 1, reject 10" \
        % (path, at["policy.quarantine_score = 1"]) in out
    assert "%s:%d: [domain ok.test] access.allow_clients: 'nonsense' is not an IP address or " \
        "CIDR block" % (path, at["access.allow_clients = 10.0.0.0/8, nonsense"]) in out
    assert "%s:%d: [domain ok.test] greylist.enabled: 'maybe' is not a yes/no value" \
        % (path, at["greylist.enabled = maybe"]) in out
    # serve refuses it too
    p = env.p
    p.start(wait_banner=False)
    assert p.proc.wait(30) != 0
    assert "unknown key 'frobnicate'" in p.log()
    p.proc = None


def test_good_domain_config_passes_configtest(env):
    rc, out = env.p.configtest()
    assert rc == 0, out


# -- the dashboard and the API -------------------------------------------------

WEB_DOMAINS = """[domain strict.test]
policy.quarantine_score = 4
access.deny_senders = bad.example, @Worse.Example
[domain .strict2.test]
policy.quarantine_score = 4
access.deny_senders = bad.example, @worse.example
[domain big.test]
policy.reject_score = 25
greylist.enabled = no
access.allow_clients = 192.0.2.0/24
[domain same.test]
greylist.enabled = no
"""


@pytest.fixture(scope="module")
def web():
    from webapi import Stack
    st = Stack(raw=WEB_DOMAINS).start()
    yield st
    st.close()


def test_api_domains(web):
    status, _, d = web.bearer().get("/api/domains")
    assert status == 200 and d["ok"] is True
    assert d["global"] == {"tag_score": 3, "quarantine_score": 6, "reject_score": 10,
                           "greylisting": False, "allow_senders": [], "deny_senders": [],
                           "allow_clients": [], "deny_clients": [],
                           "reject_score_before_rcpt": 25}
    by = {x["domain"]: x for x in d["domains"]}
    assert list(by) == ["strict.test", ".strict2.test", "big.test", "same.test"]
    assert by["strict.test"]["quarantine_score"] == 4 and by["strict.test"]["tag_score"] == 3
    assert by["strict.test"]["set"] == ["policy.quarantine_score", "access.deny_senders"]
    assert by["strict.test"]["deny_senders"] == ["bad.example", "@worse.example"]
    assert by["strict.test"]["same_as_global"] is False
    assert by[".strict2.test"]["subdomains"] is True
    assert by["big.test"]["allow_clients"] == ["192.0.2.0/24"]
    assert by["big.test"]["reject_score"] == 25
    # greylisting is off globally in the harness: this section changes nothing
    assert by["same.test"]["same_as_global"] is True
    assert web.http().get("/api/domains")[0] == 401
    assert web.bearer().post("/api/domains", {})[0] == 405


def test_domains_page_in_chromium(web, drv):
    """The Domains page lists the global policy first, then every section,
    the values a section sets itself marked."""
    from selenium.webdriver.common.by import By
    logged_in(drv, web)
    go(drv, web, "domains")
    wait_el(drv, "#domain-table tbody tr.domain")
    shot(drv, "domains")
    table = table_cells(drv, "#domain-table tbody tr")
    assert table[0] == ["global", "3", "6", "10", "off", "", "", "", "", ""]
    assert table[1] == ["strict.test", "3", "4", "10", "off", "", "bad.example, @worse.example", "", "",
                        "config"]
    assert table[2][0] == "*.strict2.test"
    assert table[3] == ["big.test", "3", "6", "25", "off", "", "", "192.0.2.0/24", "", "config"]
    marked = texts(drv, "#domain-table tr:nth-child(2) td.set")
    assert marked == ["4", "bad.example, @worse.example"]
    assert drv.find_element(By.ID, "dom-early").text == "25"
    assert no_alert(drv)


# -- dashboard policies: PUT and DELETE /api/domains/NAME ----------------------

def verdict_of(web, tag, rcpt):
    """Send one message for rcpt; the verdict its row records."""
    code, text = send_mail(web.postern.port, tag, rcpt=rcpt)
    assert code == 250, (code, text)
    return web.wait_verdict(tag)["verdict"]


def dashboard_domains(web):
    return {d["domain"]: d for d in web.bearer().get("/api/domains")[2]["domains"]
            if d["source"] == "dashboard"}


def test_api_domain_saved_changes_the_next_verdict(web):
    """A policy saved through the API decides the very next message for its
    domain (this node: at once; the wait is bounded all the same), leaves
    other domains alone, and its deletion gives the domain back to the
    global policy."""
    api = web.bearer()
    assert verdict_of(web, "dash-before", "u@fresh.test") == "accept"
    st, _, d = api.put("/api/domains/Fresh.Test", {"tag_score": -2, "quarantine_score": "-1",
                                                   "allow_clients": ["192.0.2.0/24"]})
    assert st == 201 and d["domain"] == "fresh.test" and d["saved"] is True, d
    seen = []
    wait_until(lambda: seen.append(verdict_of(web, "dash-after-%d" % len(seen), "u@fresh.test"))
               or seen[-1] == "quarantine", 10, interval=0.1,
               what="the saved policy to quarantine fresh.test's mail")
    assert seen == ["quarantine"]       # the very next message already
    assert verdict_of(web, "dash-other", "u@plain.test") == "accept"
    row = dashboard_domains(web)["fresh.test"]
    assert row["quarantine_score"] == -1 and row["tag_score"] == -2 and row["reject_score"] == 10
    assert row["set"] == ["policy.tag_score", "policy.quarantine_score", "access.allow_clients"]
    assert row["allow_clients"] == ["192.0.2.0/24"] and row["shadowed"] is False
    # saved again: changed, not created; greylisting now set
    st, _, d = api.put("/api/domains/fresh.test", {"tag_score": -2, "quarantine_score": -1,
                                                   "greylisting": False})
    assert st == 200, d
    assert dashboard_domains(web)["fresh.test"]["set"][-1] == "greylist.enabled"
    # a config section's name is the file's: refused
    st, _, d = api.put("/api/domains/strict.test", {"tag_score": 1})
    assert st == 409 and "is a section of the config file" in d["error"], d
    assert api.delete("/api/domains/fresh.test")[0] == 200
    assert verdict_of(web, "dash-deleted", "u@fresh.test") == "accept"
    st, _, d = api.delete("/api/domains/fresh.test")
    assert st == 404 and "no dashboard policy for fresh.test" in d["error"]
    assert dashboard_domains(web) == {}


@pytest.mark.parametrize("name,body,why", [
    ("x.test", {"quarantine_score": 2}, "thresholds tag 3, quarantine 2, reject 10"),
    ("x.test", {"tag_score": 5, "quarantine_score": 4, "reject_score": 8}, "do not rise"),
    ("x.test", {"deny_clients": ["10.0.0.0/8", "nonsense"]},
     "access.deny_clients: 'nonsense' is not an IP address or CIDR block"),
    ("x.test", {"allow_senders": ["a<b@c"]}, "access.allow_senders: 'a<b@c' is not a sender"),
    ("x.test", {"allow_senders": [3]}, "allow_senders must be a list of strings"),
    ("x.test", {"tag_score": "high"}, "'high' is not a number"),
    ("x.test", {"greylisting": "maybe"}, "'maybe' is not a yes/no value"),
    ("x.test", {"reject": 5}, "unknown member 'reject'"),
    ("a..b", {}, "'a..b' does not name a domain"),
])
def test_api_domain_bad_input_is_400_with_the_reason(web, name, body, why):
    st, _, d = web.bearer().put("/api/domains/" + name, body)
    assert st == 400 and why in d["error"], d
    assert dashboard_domains(web) == {}


def test_api_domain_edit_needs_json_auth_and_csrf(web):
    st, _, d = web.bearer().put("/api/domains/x.test", "{not json")
    assert st == 400, d
    st, _, d = web.bearer().put("/api/domains/x.test", "[1]")
    assert st == 400, d
    st, _, _ = web.bearer().put("/api/domains/x.test", b"tag_score=1",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert st == 415
    assert web.http().put("/api/domains/x.test", {})[0] == 401
    h = web.login()
    assert h.put("/api/domains/x.test", {}, csrf=False)[0] == 403
    assert h.delete("/api/domains/x.test", csrf=False)[0] == 403
    assert web.bearer().post("/api/domains/x.test", {})[0] == 405
    assert dashboard_domains(web) == {}
    # with its CSRF token the session may edit
    assert h.put("/api/domains/x.test", {})[0] == 201
    assert h.delete("/api/domains/x.test")[0] == 200


def test_domain_policy_created_and_deleted_in_chromium(web, drv):
    """The Domains page's form saves a policy; its row says it is the
    dashboard's; a wrong value is refused with the server's reason;
    Delete removes it."""
    from selenium.webdriver.common.by import By
    logged_in(drv, web)
    go(drv, web, "domains")
    wait_el(drv, "#domain-table tbody tr.domain")
    drv.find_element(By.ID, "dom-name").send_keys("page.test")
    drv.find_element(By.ID, "dom-quar").send_keys("5")
    drv.find_element(By.ID, "dom-deny-senders").send_keys("spam.example, @Junk.example")
    drv.find_element(By.CSS_SELECTOR, "#dom-form button").click()
    _, cells = row_of(drv, "#domain-table tbody tr.dash", "page.test")
    shot(drv, "domains-dashboard")
    assert cells[:9] == ["page.test", "3", "5", "10", "off", "", "spam.example, @junk.example", "", ""]
    assert cells[9].startswith("dashboard")
    saved = dashboard_domains(web)["page.test"]
    assert saved["quarantine_score"] == 5 and saved["deny_senders"] == ["spam.example", "@junk.example"]
    # a threshold that does not rise: the server's reason is shown, nothing saved
    drv.find_element(By.ID, "dom-name").send_keys("bad.test")
    drv.find_element(By.ID, "dom-quar").send_keys("20")
    drv.find_element(By.CSS_SELECTOR, "#dom-form button").click()
    flashed(drv, "do not rise", bad=True)
    assert "bad.test" not in dashboard_domains(web)
    click(drv, "#domain-table tbody tr.dash", text="page.test", inner="button.dom-del")
    wait_until(lambda: "page.test" not in dashboard_domains(web), 10,
               what="the policy to be deleted")
    wait_until(lambda: not [t for t in texts(drv, "#domain-table tbody tr") if "page.test" in t], 10,
               what="its row to go")
    assert no_alert(drv)


def test_domains_table_outlives_an_older_reload(web, drv):
    """A refused save's reload answered after a delete's (held back here,
    as a loaded server may answer) must not bring the deleted policy's
    row back."""
    from selenium.webdriver.common.by import By
    assert web.bearer().put("/api/domains/late.test", {"quarantine_score": 5})[0] == 201
    logged_in(drv, web)
    go(drv, web, "domains")
    row_of(drv, "#domain-table tbody tr.dash", "late.test")
    delay_answer(drv, r"/api/domains$", 5000)       # the refused save's reload
    drv.find_element(By.ID, "dom-name").send_keys("bad.test")
    drv.find_element(By.ID, "dom-quar").send_keys("20")
    drv.find_element(By.CSS_SELECTOR, "#dom-form button").click()
    flashed(drv, "do not rise", bad=True)
    click(drv, "#domain-table tbody tr.dash", text="late.test", inner="button.dom-del")
    wait_until(lambda: "late.test" not in dashboard_domains(web), 10,
               what="the policy to be deleted")
    wait_until(lambda: not [t for t in texts(drv, "#domain-table tbody tr") if "late.test" in t],
               10, what="its row to go")
    held_answers_landed(drv)
    assert not [t for t in texts(drv, "#domain-table tbody tr") if "late.test" in t]
    assert no_alert(drv)


# -- several nodes, one store ---------------------------------------------------

def test_domain_policy_saved_on_one_node_acts_on_another(make_cluster):
    """A policy saved through node B's API refuses a sender for its domain
    on node A within two seconds (docs/cluster.md), and its deletion
    through A frees B as well. Each node's GET /api/domains (its cached
    table, read again after an edit it sees) follows the same way."""
    c = make_cluster(2)
    a, b = c.nodes

    def code(node, rcpt):
        return rcpt_reply(node.port, sender="a@sender.example", rcpt=rcpt)[0]

    def listed(i):
        st, _, d = c.api(i).get("/api/domains")
        assert st == 200, d
        return {x["domain"]: x for x in d["domains"] if x["source"] == "dashboard"}
    assert code(a, "u@example.net") == 250
    assert listed(0) == {} and listed(1) == {}    # both nodes cache the empty table
    st, _, d = c.api(1).put("/api/domains/example.net", {"deny_senders": ["@sender.example"]})
    assert st == 201, d
    assert listed(1)["example.net"]["deny_senders"] == ["@sender.example"]   # at once
    wait_until(lambda: code(a, "u@example.net") == 550, EDIT_BOUND, interval=0.1,
               what="B's domain policy to act on A")
    wait_until(lambda: "example.net" in listed(0), EDIT_BOUND, interval=0.1,
               what="B's domain policy in A's GET /api/domains")
    assert listed(0)["example.net"]["deny_senders"] == ["@sender.example"]
    assert code(a, "u@example.com") == 250      # another domain: untouched
    assert c.api(0).delete("/api/domains/example.net")[0] == 200
    assert listed(0) == {}
    wait_until(lambda: code(b, "u@example.net") == 250, EDIT_BOUND, interval=0.1,
               what="the deletion through A to reach B")
    wait_until(lambda: listed(1) == {}, EDIT_BOUND, interval=0.1,
               what="the deletion through A in B's GET /api/domains")


# -- Postfix as the sending client ---------------------------------------------

def test_postfix_client_sends_the_452d_recipient_again(served):
    """A real MTA on the sending side: Postfix relays one message for a
    strict.test and a plain.test recipient to Postern (from 127.0.0.5,
    score 5), hears 452 4.5.3 for the second, delivers the first and
    sends the second again in a later transaction: both arrive, each with
    its own domain's verdict, and nothing stays in Postfix's queue."""
    from harness import Postfix, TempDir, wait_until
    env, cap = served
    tmp = TempDir(prefix="postern-pfclient-")
    pf = Postfix(tmp.join("sender"), main_extra={
        "myhostname": "client.sender.test",
        "relayhost": "[%s]:%d" % ("127.0.0.1", env.port),
        "default_transport": "smtp", "relay_transport": "smtp",
        "smtp_bind_address": "127.0.0.5",
        "smtp_helo_name": "client.sender.test",
        # retry a deferred recipient within seconds, not minutes
        "queue_run_delay": "1s", "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
    })
    try:
        pf.start()
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
            s.sendmail("a@sender.test", ["u@strict.test", "v@plain.test"], MSG)
        # the first attempt: the recipient Postfix sends second is deferred
        # with our 452 (Postfix sorts the recipients), the other delivered
        log = pf.wait_log("dsn=4.5.3, status=deferred", 30)
        assert "said: 452 4.5.3 <u@strict.test>: Recipient of another domain policy; " \
            "send it again in a separate transaction (in reply to RCPT TO command)" in log
        # the retry, in a transaction of its own: both sent, none bounced
        def sent(r):
            return any("to=<%s>" % r in l and "status=sent" in l
                       for l in pf.maillog().splitlines())
        def flushed():
            # ask for a queue run each time: the deferred recipient's retry
            # should not wait on qmgr's own schedule
            subprocess.run(["postqueue", "-c", pf.dir, "-f"], capture_output=True, timeout=30)
            return (sent("u@strict.test") and sent("v@plain.test")) or None
        try:
            wait_until(flushed, 60, interval=2, what="both recipients sent by Postfix")
        except TimeoutError:
            raise AssertionError("maillog:\n" + pf.maillog()[-4000:] + "\npostern:\n" + env.log()[-3000:])
        assert "status=bounced" not in pf.maillog()
        msgs = cap.wait_messages(1)
        assert [rcpts(m) for m in msgs] == [["v@plain.test"]]
        assert msgs[0].header("X-Spam-Flag") == ["YES"]
        q = fetch(env.db, "SELECT rcpts FROM quarantine", 1)
        assert json.loads(q[0][0]) == ["u@strict.test"]
    finally:
        pf.stop()
        tmp.cleanup()
