"""The HTTP API against a real `postern serve`: authentication on every
endpoint, the login and CSRF, CRUD round trips, bad input,
and mail sent through the proxy showing up in verdicts, stats, /metrics
and the quarantine. Login delays, X-Forwarded-For and connection limits are
in test_web_limits.py."""
import http.client
import re
import subprocess
import time
import urllib.parse

import pytest

from harness import POSTERN_BIN, smtp_client, wait_until
from webapi import PASSWORD, TOKEN, USER, Http, Stack, send_mail

ENDPOINTS = [
    ("GET", "/metrics"), ("GET", "/api/stats"), ("GET", "/api/verdicts"),
    ("GET", "/api/quarantine"), ("GET", "/api/quarantine/ABCDEF123456"),
    ("GET", "/api/quarantine/ABCDEF123456/raw"),
    ("POST", "/api/quarantine/ABCDEF123456/release"),
    ("DELETE", "/api/quarantine/ABCDEF123456"), ("POST", "/api/quarantine/bulk"),
    ("GET", "/api/rules"), ("POST", "/api/rules"), ("PUT", "/api/rules/1"),
    ("DELETE", "/api/rules/1"), ("POST", "/api/rules/test"), ("POST", "/api/rules/validate"),
    ("GET", "/api/greylist"), ("GET", "/api/access"), ("POST", "/api/access"),
    ("DELETE", "/api/access"), ("GET", "/api/session"), ("POST", "/api/logout"),
    ("GET", "/api/nonexistent"),
]

RULE = {"name": "api_rule", "target": "subject", "pattern": "cheap\\s+pills",
        "flags": "i", "action": "score", "score": 2.5, "enabled": True}


@pytest.fixture(scope="module")
def st():
    s = Stack().start()
    yield s
    s.close()


def test_healthz_without_auth_and_headers(st):
    status, h, d = st.http().get("/healthz")
    assert status == 200 and d["status"] == "ok"
    csp = h["content-security-policy"]
    for part in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'",
                 "object-src 'none'"):
        assert part in csp
    assert "unsafe-inline" not in csp
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("method,path", ENDPOINTS)
def test_401_without_credentials(st, method, path):
    status, h, d = st.http().request(method, path, body={} if method != "GET" else None)
    assert status == 401, (method, path, status, d)
    assert "error" in d
    assert h["x-content-type-options"] == "nosniff"


def test_wrong_bearer_and_wrong_cookie_refused(st):
    bad = Http(st.web_port, token=TOKEN + "x")
    assert bad.get("/api/stats")[0] == 401
    forged = Http(st.web_port)
    forged.cookie = "postern_session=" + "a" * 64
    assert forged.get("/api/stats")[0] == 401


def test_bearer_reads_everything(st):
    api = st.bearer()
    for path in ("/api/stats", "/api/verdicts", "/api/quarantine", "/api/rules",
                 "/api/greylist", "/api/access"):
        status, _, d = api.get(path)
        assert status == 200, (path, d)
    status, h, text = api.get("/metrics")
    assert status == 200 and h["content-type"].startswith("text/plain")
    assert b"# TYPE postern_sessions_total counter" in text


def test_login_cookie_flags_and_session(st):
    h = Http(st.web_port)
    status, _, d = h.post("/api/login", {"user": USER, "password": "wrong"})
    assert status == 401 and "wrong" in d["error"]
    status, hdr, d = h.login()
    assert status == 200 and d["user"] == USER and len(d["csrf"]) == 64
    cookie = hdr["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie          # plain HTTP here; Secure under TLS
    assert d["csrf"] not in cookie          # the CSRF token is not the cookie
    status, _, s = h.get("/api/session")
    assert status == 200 and s == {"ok": True, "user": USER, "csrf": d["csrf"]}
    assert h.get("/api/stats")[0] == 200
    assert h.post("/api/logout")[0] == 200
    assert h.get("/api/stats")[0] == 401


def test_login_needs_json_and_fields(st):
    h = Http(st.web_port)
    status, _, d = h.post("/api/login", "user=admin&password=x",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    assert h.post("/api/login", {"user": USER})[0] == 400
    assert h.post("/api/login", {"user": "a b", "password": "x"})[0] == 400
    assert h.get("/api/login")[0] == 405


def test_csrf_required_for_cookie_state_changes(st):
    h = st.login()
    body = {"list": "allow", "kind": "client", "value": "192.0.2.55"}
    status, _, d = h.post("/api/access", body, csrf=False)
    assert status == 403 and "CSRF" in d["error"]
    status, _, d = h.request("POST", "/api/access", body, csrf=False,
                             headers={"X-CSRF-Token": "0" * 64})
    assert status == 403
    assert h.delete("/api/access?list=allow&kind=client&value=192.0.2.55", csrf=False)[0] == 403
    status, _, d = h.post("/api/access", body)
    assert status == 201 and d["created"] is True
    # Bearer requests are exempt: scripts have no CSRF token.
    assert st.bearer().delete("/api/access?list=allow&kind=client&value=192.0.2.55")[0] == 200


def test_bad_json_and_bad_values_400(st):
    api = st.bearer()
    cases = [
        ("POST", "/api/rules", "{not json", "bad JSON"),
        ("POST", "/api/rules", "[1, 2]", "JSON object"),
        ("POST", "/api/rules", "", "JSON object"),
        ("POST", "/api/rules", {"name": "x"}, "name, target and pattern"),
        ("POST", "/api/rules", dict(RULE, target="nowhere"), "target"),
        ("POST", "/api/rules", dict(RULE, action="explode"), "action"),
        ("POST", "/api/rules", dict(RULE, flags="q"), "flag"),
        ("POST", "/api/rules", dict(RULE, score="high"), "score"),
        ("POST", "/api/rules/test", {"message": "x"}, "rule"),
        ("POST", "/api/access", {"list": "maybe", "kind": "client", "value": "x"}, "list"),
        ("POST", "/api/access", {"list": "allow", "kind": "moon", "value": "x"}, "kind"),
        ("POST", "/api/access", {"list": "allow", "kind": "client", "value": ""}, "value"),
        ("GET", "/api/verdicts?limit=0", None, "limit"),
        ("GET", "/api/verdicts?limit=abc", None, "limit"),
        ("GET", "/api/verdicts?before=-5", None, "before"),
        ("GET", "/api/stats?range=year", None, "range"),
        ("GET", "/api/quarantine?state=gone", None, "state"),
        ("POST", "/api/quarantine/bulk", {"action": "burn", "ids": []}, "action"),
    ]
    for method, path, body, word in cases:
        status, _, d = api.request(method, path, body)
        assert status == 400, (method, path, body, status, d)
        assert word.lower() in d["error"].lower(), (path, body, d)


def test_bad_regex_says_where(st):
    api = st.bearer()
    status, _, d = api.post("/api/rules/validate", dict(RULE, pattern="abc(def"))
    assert status == 400
    assert d["offset"] == 7 and "offset 7" in d["error"]
    status, _, d = api.post("/api/rules", dict(RULE, pattern="[z-a]"))
    assert status == 400 and "offset" in d
    assert api.post("/api/rules/validate", RULE)[0] == 200


def test_rules_crud_round_trip(st):
    api = st.bearer()
    status, _, r = api.post("/api/rules", RULE)
    assert status == 201 and r["id"] > 0 and r["name"] == RULE["name"]
    rid = r["id"]
    status, _, d = api.get("/api/rules")
    mine = [x for x in d["rules"] if x["id"] == rid]
    assert mine and mine[0]["pattern"] == RULE["pattern"] and mine[0]["score"] == 2.5
    assert api.post("/api/rules", RULE)[0] == 409              # name taken
    status, _, r = api.put("/api/rules/%d" % rid, dict(RULE, enabled=False, score=4))
    assert status == 200 and r["enabled"] is False and r["score"] == 4
    status, _, d = api.get("/api/rules")
    assert [x for x in d["rules"] if x["id"] == rid][0]["enabled"] is False
    assert api.put("/api/rules/999999", RULE)[0] == 404
    assert api.put("/api/rules/abc", RULE)[0] == 404
    assert api.delete("/api/rules/%d" % rid)[0] == 200
    assert api.delete("/api/rules/%d" % rid)[0] == 404
    assert not [x for x in api.get("/api/rules")[2]["rules"] if x["id"] == rid]


def test_rule_test_endpoint_saves_nothing(st):
    api = st.bearer()
    before = len(api.get("/api/rules")[2]["rules"])
    msg = "From: a@b.test\r\nSubject: Buy CHEAP   pills now\r\n\r\nbody\r\n"
    status, _, d = api.post("/api/rules/test", {"rule": RULE, "message": msg})
    assert status == 200 and d["matched"] is True
    assert d["where"] == "subject" and "CHEAP" in d["excerpt"]
    status, _, d = api.post("/api/rules/test",
                            {"rule": dict(RULE, pattern="nothing-like-this"), "message": msg})
    assert status == 200 and d["matched"] is False
    assert api.post("/api/rules/test", {"rule": RULE, "quarantine_id": "NOSUCHID0000"})[0] == 404
    assert len(api.get("/api/rules")[2]["rules"]) == before


def test_access_crud_round_trip(st):
    api = st.bearer()
    e = {"list": "deny", "kind": "sender", "value": "Spammer@Bad.Example", "note": "test"}
    status, _, d = api.post("/api/access", e)
    assert status == 201 and d["created"] is True
    status, _, d = api.post("/api/access", e)
    assert status == 200 and d["created"] is False
    rows = api.get("/api/access")[2]["entries"]
    assert any(r["value"] == "spammer@bad.example" and r["list"] == "deny" for r in rows)
    q = "/api/access?list=deny&kind=sender&value=spammer%40bad.example"
    assert api.delete(q)[0] == 200
    assert api.delete(q)[0] == 404
    assert api.delete("/api/access?list=deny&kind=bogus&value=x")[0] == 400


BAD_ACCESS = [
    ("client", "192.0.2.0/33"), ("client", "mail.example"), ("client", "300.1.2.3"),
    ("sender", "a@bad..example"), ("sender", "a@-bad.example"), ("rcpt", "@"),
    ("rcpt", "bob@exa mple.org"), ("helo", "bad_host!"), ("sender", "a@b@example.org"),
    ("helo", "x" * 300),
]


@pytest.mark.parametrize("kind,value", BAD_ACCESS)
def test_access_api_refuses_what_the_cli_refuses(st, kind, value):
    """One validation for both doors: the API's 400 says what the CLI says."""
    p = subprocess.run([POSTERN_BIN, "access", "add", "deny", kind, value, "-c",
                        st.postern.conf_path], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and p.stderr.startswith("postern access: "), p.stderr
    why = p.stderr[len("postern access: "):].strip()
    status, _, d = st.bearer().post("/api/access", {"list": "deny", "kind": kind, "value": value})
    assert status == 400 and d == {"ok": False, "error": why}
    assert value.lower() not in [e["value"] for e in st.bearer().get("/api/access")[2]["entries"]]


def test_access_entries_let_in_before_can_be_deleted(st):
    """Deleting checks list, kind and a value up to 1024 bytes, not its
    syntax: a row an older version stored stays removable by both doors."""
    for row in [("deny", "sender", "a@bad..example"), ("deny", "helo", "x" * 300)]:
        st.postern.rows("INSERT INTO access (list, kind, value, created) VALUES (?, ?, ?, 0)",
                        row)
    q = urllib.parse.urlencode({"list": "deny", "kind": "sender", "value": "a@bad..example"})
    status, _, d = st.bearer().delete("/api/access?" + q)
    assert status == 200 and d == {"ok": True, "deleted": True}
    assert st.bearer().delete("/api/access?" + q)[0] == 404
    p = subprocess.run([POSTERN_BIN, "access", "del", "deny", "helo", "x" * 300, "-c",
                        st.postern.conf_path], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "removed" in p.stdout, p.stderr
    # list and kind are still checked, by both
    for q, why in [({"list": "maybe", "kind": "helo", "value": "x"}, "list must be allow or deny"),
                   ({"list": "deny", "kind": "moon", "value": "x"}, "kind must be"),
                   ({"list": "deny", "kind": "helo", "value": "x" * 1025}, "1 to 1024")]:
        status, _, d = st.bearer().delete("/api/access?" + urllib.parse.urlencode(q))
        assert status == 400 and why in d["error"]
        if q["list"] != "maybe":    # (a bad list is a usage error for the CLI)
            p = subprocess.run([POSTERN_BIN, "access", "del", q["list"], q["kind"], q["value"],
                                "-c", st.postern.conf_path], capture_output=True, text=True,
                               timeout=60)
            assert p.returncode == 1 and p.stderr == "postern access: %s\n" % d["error"]


def test_access_api_and_cli_accept_the_same(st):
    api = st.bearer()
    good = [("client", "2001:db8::/32"), ("helo", "[192.0.2.7]"), ("sender", "@ok.example"),
            ("rcpt", "postmaster@ok.example"), ("sender", "sub.ok.example")]
    for kind, value in good:
        status, _, d = api.post("/api/access", {"list": "allow", "kind": kind, "value": value})
        assert status == 201 and d == {"ok": True, "created": True}, (kind, value, d)
        p = subprocess.run([POSTERN_BIN, "access", "del", "allow", kind, value, "-c",
                            st.postern.conf_path], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and "removed" in p.stdout, p.stderr


def test_get_one_rule(st):
    api = st.bearer()
    status, _, r = api.post("/api/rules", dict(RULE, name="one_rule"))
    assert status == 201 and r["ok"] is True
    status, _, got = api.get("/api/rules/%d" % r["id"])
    assert status == 200 and got == r
    listed = [x for x in api.get("/api/rules")[2]["rules"] if x["id"] == r["id"]][0]
    assert dict(listed, ok=True) == got
    status, _, d = api.get("/api/rules/999999")
    assert status == 404 and d == {"ok": False, "error": "no rule 999999"}
    assert api.get("/api/rules/abc")[0] == 404
    assert api.delete("/api/rules/%d" % r["id"])[0] == 200
    assert api.get("/api/rules/%d" % r["id"])[0] == 404


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/jsonp"])
def test_state_changes_need_json_415(st, ctype):
    """What a cross-site form could send is refused, whatever the endpoint;
    a bodyless DELETE or release needs no Content-Type (CSRF covers it)."""
    api = st.bearer()
    rid = api.post("/api/rules", dict(RULE, name="ctype_%d" % abs(hash(ctype))))[2]["id"]
    hdr = {"Content-Type": ctype} if ctype else {}
    body = '{"list": "deny", "kind": "client", "value": "192.0.2.66"}'
    for method, path in [("POST", "/api/access"), ("POST", "/api/rules"),
                         ("PUT", "/api/rules/%d" % rid), ("POST", "/api/rules/test"),
                         ("POST", "/api/rules/validate"), ("POST", "/api/quarantine/bulk"),
                         ("DELETE", "/api/rules/%d" % rid), ("POST", "/api/logout")]:
        req = http.client.HTTPConnection("127.0.0.1", st.web_port, timeout=30)
        try:
            req.request(method, path, body=body.encode(),
                        headers=dict(hdr, Authorization="Bearer " + TOKEN))
            r = req.getresponse()
            status, data = r.status, r.read()
        finally:
            req.close()
        assert status == 415, (method, path, status, data)
        assert b"Content-Type must be application/json" in data
    assert api.get("/api/rules/%d" % rid)[0] == 200        # nothing changed
    assert "192.0.2.66" not in [e["value"] for e in api.get("/api/access")[2]["entries"]]
    if ctype:   # (without one, Http sends application/json)
        # logged in: the cookie's CSRF token is still asked for first
        h = st.login()
        assert h.request("POST", "/api/access", body, headers=hdr, csrf=False)[0] == 403
        assert h.request("POST", "/api/access", body, headers=hdr)[0] == 415
    assert api.delete("/api/rules/%d" % rid)[:3:2] == (200, {"ok": True, "deleted": True})


def test_success_bodies_share_one_shape(st):
    api = st.bearer()
    for path in ["/api/stats", "/api/verdicts", "/api/greylist", "/api/access",
                 "/api/rules", "/api/quarantine", "/api/session", "/healthz"]:
        status, _, d = api.get(path)
        assert status == 200 and d["ok"] is True, (path, d)
    status, _, d = api.post("/api/rules/validate", RULE)
    assert status == 200 and d == {"ok": True}
    status, _, d = api.get("/api/nonexistent")
    assert status == 404 and d["ok"] is False and d["error"]


def test_body_limit_413(st):
    status, _, d = st.bearer().post("/api/rules/test", b"x" * (5 * 1024 * 1024),
                                    headers={"Content-Type": "application/json"})
    assert status == 413


def test_unknown_paths_and_methods(st):
    api = st.bearer()
    assert api.get("/api/rules/1/2/3/4/5")[0] == 404
    assert api.request("PATCH", "/api/rules/1", RULE)[0] == 405
    assert api.get("/api/quarantine/..%2F..%2Fetc")[0] == 404
    assert st.http().get("/static/nope.js")[0] == 404


def test_static_dashboard_is_embedded(st):
    h = st.http()
    status, hdr, page = h.get("/")
    assert status == 200 and hdr["content-type"].startswith("text/html")
    assert b'<script src="/static/app.js"' in page and b"<script>" not in page
    assert b"style=" not in page
    status, hdr, js = h.get("/static/app.js")
    assert status == 200 and hdr["content-type"].startswith("text/javascript")
    for sink in (b"innerHTML", b"outerHTML", b"insertAdjacentHTML", b"document.write",
                 b"eval(", b"new Function"):
        assert sink not in js, sink
    status, _, chart = h.get("/static/chart.js")
    assert status == 200 and b"Chart.js v3" in chart[:200]


def test_mail_shows_in_verdicts_stats_and_metrics(st):
    subject = "api-verdict-%d" % time.time_ns()
    code, _ = send_mail(st.postern.port, subject)
    assert code == 250
    st.cap.wait_messages(1)
    v = st.wait_verdict(subject)
    assert v["verdict"] in ("accept", "tag")
    assert v["client_ip"] == "127.0.0.2" and v["mail_from"] == "alice@sender.test"
    assert v["rcpts"] == ["bob@example.org"]
    checks = {c["check"]: c for c in v["checks"]}
    assert checks["spf"]["result"] == "pass"
    api = st.bearer()
    status, _, s = api.get("/api/stats?range=hour")
    assert status == 200
    assert sum(n for k, n in s["totals"].items() if k.startswith("verdict:")) >= 1
    assert ["127.0.0.2", 1] in s["top"]["clients"] or \
        any(c[0] == "127.0.0.2" for c in s["top"]["clients"])
    assert any(d[0] == "sender.test" for d in s["top"]["sender_domains"])
    _, _, text = api.get("/metrics")
    text = text.decode()
    assert int(re.search(r"^postern_sessions_total (\d+)$", text, re.M).group(1)) >= 1
    assert int(re.search(r"^postern_messages_total (\d+)$", text, re.M).group(1)) >= 1
    assert int(re.search(r"^postern_recipients_total (\d+)$", text, re.M).group(1)) >= 1
    assert re.search(r'^postern_verdicts_total\{verdict="accept"\} [1-9]', text, re.M)
    assert re.search(r'^postern_checks_total\{check="spf",result="pass"\} [1-9]', text, re.M)
    assert re.search(r"^postern_transaction_duration_seconds_count [1-9]", text, re.M)
    # Search narrows; a search for nothing finds nothing.
    assert api.get("/api/verdicts?q=no-such-thing-anywhere")[2]["verdicts"] == []


def test_quarantine_list_raw_release_delete(st):
    api = st.bearer()
    status, _, r = api.post("/api/rules", {"name": "api_quar", "target": "subject",
                                           "pattern": "QUARANTINE-ME", "action": "quarantine"})
    assert status == 201
    try:
        subject = "QUARANTINE-ME api %d" % time.time_ns()
        code, text = send_mail(st.postern.port, subject)
        assert code == 250 and "quarantined as" in text, text
        qid = re.search(r"quarantined as ([0-9A-F]+)", text).group(1)
        held = len(st.cap.accepted())
        msgs = api.get("/api/quarantine?q=QUARANTINE-ME")[2]["messages"]
        assert any(m["id"] == qid for m in msgs)
        status, _, d = api.get("/api/quarantine/" + qid)
        assert status == 200 and d["subject"] == subject and d["state"] == "held"
        status, h, raw = api.get("/api/quarantine/%s/raw" % qid)
        assert status == 200 and subject.encode() in raw
        assert h["content-type"].startswith("text/plain")
        assert h["content-disposition"].startswith("attachment")
        status, _, d = api.post("/api/rules/test", {"rule": {
            "name": "t", "target": "subject", "pattern": "QUARANTINE-ME api"},
            "quarantine_id": qid})
        assert status == 200 and d["matched"] is True and d["where"] == "subject"
        status, _, d = api.post("/api/quarantine/%s/release" % qid)
        assert status == 200, d
        msgs = st.cap.wait_messages(held + 1)
        assert subject.encode() in msgs[-1].data
        assert msgs[-1].header("X-Postern-Released")
        assert api.post("/api/quarantine/%s/release" % qid)[0] == 409   # once only
        # A second one, deleted through the bulk call.
        code, text = send_mail(st.postern.port, subject + " two")
        qid2 = re.search(r"quarantined as ([0-9A-F]+)", text).group(1)
        status, _, d = api.post("/api/quarantine/bulk",
                                {"action": "delete", "ids": [qid2, "NOSUCHID0000"]})
        assert status == 200
        assert [x["result"] for x in d["results"]] == ["ok", "not found"]
        assert api.get("/api/quarantine/" + qid2)[0] == 404
        assert api.delete("/api/quarantine/" + qid2)[0] == 404
    finally:
        api.delete("/api/rules/%d" % r["id"])


def test_https_secure_cookie_and_token_reload():
    """web.tls_cert/tls_key serve HTTPS only, the cookie gets Secure, and a
    SIGHUP with a new web.api_token retires the old one without a restart."""
    s = Stack(tls=True).start()
    try:
        status, h, d = s.http().get("/healthz")
        assert status == 200 and "max-age" in h["strict-transport-security"]
        with pytest.raises((ConnectionError, OSError, http.client.HTTPException)):
            Http(s.web_port).get("/healthz")          # plain HTTP is not served
        status, h, d = Http(s.web_port, tls=True).login()
        assert status == 200 and "; Secure" in h["set-cookie"]
        assert s.bearer().get("/api/stats")[0] == 200
        s.postern.reload({"web.api_token": "a-brand-new-token-" + "y" * 20})
        wait_until(lambda: s.bearer("a-brand-new-token-" + "y" * 20)
                   .get("/api/stats")[0] == 200, 15, what="the new token to work")
        assert s.bearer().get("/api/stats")[0] == 401
    finally:
        s.close()


def test_passwd_command(st):
    """`postern passwd`: the password comes from stdin; a change takes effect
    at the next login; bad input is refused with a non-zero exit."""
    cmd = [POSTERN_BIN, "passwd", "-c", st.postern.conf_path]
    r = subprocess.run(cmd + ["carol"], input="", capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "stdin" in r.stderr
    r = subprocess.run(cmd + ["bad user"], input="pw\n", capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    r = subprocess.run(cmd + ["carol"], input="x" * 2000 + "\n", capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1                      # longer than AUTH_MAX_PASSWORD
    st.passwd("carol", "first password")
    assert Http(st.web_port, source="127.0.0.51").login("carol", "first password")[0] == 200
    st.passwd("carol", "second password")
    assert Http(st.web_port, source="127.0.0.51").login("carol", "first password")[0] == 401
    assert Http(st.web_port, source="127.0.0.51").login("carol", "second password")[0] == 200


def test_metrics_count_backend_failures():
    """The backend gone: the client gets 451 and /metrics says why."""
    s = Stack().start()
    try:
        s.cap.stop()
        with smtp_client(s.postern.port, source="127.0.0.2") as c:
            c.ehlo("client.sender.test")
            code, _ = c.mail("alice@sender.test")
            assert code == 451
        _, _, text = s.bearer().get("/metrics")
        text = text.decode()
        assert int(re.search(r"^postern_backend_errors_total (\d+)$", text, re.M).group(1)) >= 1
        assert re.search(r"^postern_db_ok 1$", text, re.M)
        assert re.search(r"^postern_db_queue_depth \d+$", text, re.M)
    finally:
        s.close()


def test_greylist_listed_then_allowlisted():
    """Greylisting on: the first try gets 450 and the triplet shows in
    /api/greylist; allowlisting the client's network through the API lets
    the retry through at once."""
    s = Stack(conf={"greylist.enabled": "yes", "greylist.delay": "3600"}).start()
    try:
        api = s.bearer()
        with smtp_client(s.postern.port, source="127.0.0.2") as c:
            c.ehlo("client.sender.test")
            c.mail("alice@sender.test")
            code, _ = c.rcpt("bob@example.org")
            assert code == 450
        status, _, g = api.get("/api/greylist")
        assert status == 200
        rows = [t for t in g["triplets"] if t["sender"] == "alice@sender.test"]
        assert rows and rows[0]["rcpt"] == "bob@example.org" and rows[0]["passed"] == 0
        net = rows[0]["net"]
        status, _, d = api.post("/api/access", {"list": "allow", "kind": "client",
                                                "value": net, "note": "from greylist"})
        assert status == 201
        code, _ = send_mail(s.postern.port, "after allowlisting")
        assert code == 250
    finally:
        s.close()


def test_postern_web_alone(st):
    """`postern web -c FILE` serves the dashboard and API over the same
    database without the SMTP side, and exits 0 on SIGTERM."""
    with st.web_alone() as (_, port):
        h = Http(port)
        assert h.get("/api/stats")[0] == 401
        assert h.login()[0] == 200                       # same users table
        assert h.get("/api/rules")[0] == 200
