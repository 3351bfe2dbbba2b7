"""DNS list health (rbl.health_interval): `postern serve` probes every list
with its RFC 5782 test entries through the tests' own unbound, and shows
each list's state in /api/lists and /metrics. A healthy list, a dead one
(forwarded to a server that never answers), one listing everything (a
wildcard), one listing nothing (no records), a domain list and an allow
list; policy stops using the broken ones, one log line per state change;
a list whose answers a test server flips leaves ok and comes back.

Never timing: every wait polls /api/lists with a bounded deadline.
"""
import contextlib
import re
import smtplib
import socket
import threading

import dns.message
import dns.rcode
import dns.rrset
import pytest

from harness import (LOOPBACK, BlackHole, Capture, Postern, TempDir, Unbound, free_port,
                     smtp_client, wait_port, wait_until)
from webapi import TOKEN, Http, Stack
from test_ui import By, csp_violations, drv, logged_in, shot, wait_el  # noqa: F401 (drv: a fixture)

SOA = "@ 300 IN SOA ns.%s hostmaster.%s 1 3600 600 86400 60\n@ 300 IN NS ns.%s\nns 300 IN A 127.0.0.1\n"

RECORDS = [
    # good.test: the test entry, and the client 127.0.0.3
    "2.0.0.127.good.test. 300 IN A 127.0.0.2",
    "3.0.0.127.good.test. 300 IN A 127.0.0.2",
    # the allow list, and the domain list with its test name
    "2.0.0.127.wl.test. 300 IN A 127.0.0.2",
    "test.dbl.test. 300 IN A 127.0.0.2",
    # none.test has no records at all: NXDOMAIN for everything
]

ZONES = "good.test*10, all.test*10, dead.test*10, none.test*1, wl.test*-1, flip.test*10"


class FlipServer:
    """A DNS server for flip.test that answers as a healthy list
    (broken=False) or with 127.0.0.2 for every name (broken=True); TTL 0,
    so neither unbound nor Postern keeps an answer past the switch."""

    def __init__(self):
        self.broken = True
        self.port = free_port(socket.SOCK_DGRAM)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, self.port))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    @property
    def addr(self):
        return "%s@%d" % (LOOPBACK, self.port)

    def _answer(self, q):
        r = dns.message.make_response(q)
        name = q.question[0].name.to_text().lower()
        if self.broken or name.startswith("2.0.0.127."):
            r.answer.append(dns.rrset.from_text(q.question[0].name, 0, "IN", "A", "127.0.0.2"))
        else:
            r.set_rcode(dns.rcode.NXDOMAIN)
            r.authority.append(dns.rrset.from_text(
                "flip.test.", 0, "IN", "SOA", "ns.flip.test. h.flip.test. 1 60 60 60 0"))
        return r

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                self.sock.sendto(self._answer(dns.message.from_wire(data)).to_wire(), peer)
            except Exception:   # a malformed query is the sender's problem
                continue

    def close(self):
        self._stop.set()
        self._t.join(2)
        self.sock.close()


@contextlib.contextmanager
def list_stack(interval="1"):
    """unbound serving every kind of list, a capture backend, and `postern
    serve` with rbl.health_interval = interval and the API token."""
    tmp = TempDir(prefix="postern-lists-")
    bh, flip = BlackHole(), FlipServer()
    extra = ('  local-zone: "flip.test." transparent\n'
             'forward-zone:\n  name: "flip.test."\n  forward-addr: %s\n' % flip.addr)
    dnsd = Unbound(tmp.join("dns"), local_data=RECORDS,
                   auth_zones={"all.test.": "$ORIGIN all.test.\n" + SOA % (("all.test.",) * 3)
                               + "* 300 IN A 127.0.0.2\n"},
                   blackhole_zones=["dead.test."], blackhole=bh, extra=extra)
    cap = Capture().start()
    p = None
    try:
        dnsd.start()
        p = Postern(tmp.join("postern"), backend=cap.addr, resolver=dnsd.addr, conf={
            "web.api_token": TOKEN, "rbl.zones": ZONES, "rbl.rhsbl_zones": "dbl.test*10",
            "rbl.health_interval": interval, "dns.timeout": "500"})
        p.write_config()
        p.start(wait_banner=False)    # 127.0.0.1 is "listed" by all.test until probed
        wait_port(p.port, proc=p.proc)
        yield {"postern": p, "http": Http(p.web_port, token=TOKEN), "cap": cap, "flip": flip}
        assert p.stop(check=True) == 0
    finally:
        if p is not None:
            p.kill()
        cap.stop()
        dnsd.stop()
        bh.close()
        flip.close()
        tmp.cleanup()


@pytest.fixture(scope="module")
def stack():
    with list_stack() as st:
        yield st


def lists(http):
    st, _, doc = http.get("/api/lists")
    assert st == 200, doc
    return {(d["zone"], d["kind"]): d for d in doc["lists"]}


def wait_states(http, want, rounds=1):
    """Wait until every (zone, kind) in want has its state, probed at least
    `rounds` times after the call (so a state seen is a probe's, not a
    leftover). Returns the lists."""
    start = {k: (v["last_probe"] or 0) for k, v in lists(http).items()}

    def ok():
        got = lists(http)
        for k, state in want.items():
            d = got.get(k)
            if d is None or d["state"] != state or (d["last_probe"] or 0) < start.get(k, 0) + rounds:
                return None
        return got
    return wait_until(ok, 30, interval=0.2, what="list states %s" % want)


HEALTHY = {("good.test", "dnsbl"): "ok", ("dead.test", "dnsbl"): "dead",
           ("all.test", "dnsbl"): "listing-everything",
           ("none.test", "dnsbl"): "listing-nothing",
           ("wl.test", "dnswl"): "ok", ("dbl.test", "rhsbl"): "ok"}


def test_each_list_gets_its_state_in_the_api(stack):
    got = wait_states(stack["http"], HEALTHY)
    assert len(got) == 7                          # flip.test too, whatever its state
    good = got[("good.test", "dnsbl")]
    assert good["answers"] == {"listed_entry": "127.0.0.2", "unlisted_entry": "nxdomain"}
    assert good["latency_ms"] >= 0 and good["last_probe"] > 0
    assert got[("all.test", "dnsbl")]["answers"]["unlisted_entry"] == "127.0.0.2"
    assert got[("none.test", "dnsbl")]["answers"]["listed_entry"] == "nxdomain"
    assert got[("dead.test", "dnsbl")]["answers"]["listed_entry"].startswith("no answer")
    assert got[("dbl.test", "rhsbl")]["answers"]["unlisted_entry"] == "nxdomain"


def test_metrics_per_zone(stack):
    wait_states(stack["http"], HEALTHY)
    st, _, body = stack["http"].get("/metrics")
    assert st == 200
    text = body.decode()
    up = dict(re.findall(r'^postern_dnslist_up\{zone="([^"]+)",kind="[a-z]+"\} (\d)$', text, re.M))
    assert up["good.test"] == "1" and up["wl.test"] == "1" and up["dbl.test"] == "1"
    assert up["dead.test"] == "0" and up["all.test"] == "0" and up["none.test"] == "0"
    lat = re.findall(r'^postern_dnslist_latency_seconds\{zone="good.test",kind="dnsbl"\} ([0-9.]+)$',
                     text, re.M)
    assert len(lat) == 1 and float(lat[0]) >= 0


def send(port, source):
    with smtp_client(port, source=source) as s:
        s.sendmail("a@example.org", ["b@example.net"], b"Subject: x\r\n\r\nbody\r\n")


def test_policy_skips_broken_lists_and_keeps_healthy_ones(stack):
    before = wait_states(stack["http"], {**HEALTHY, ("flip.test", "dnsbl"): "listing-everything"})
    # 127.0.0.4 is "listed" only by the wildcard lists (all.test, flip.test)
    n = len(stack["cap"].accepted())
    send(stack["postern"].port, "127.0.0.4")
    wait_until(lambda: len(stack["cap"].accepted()) == n + 1, 15, what="the message delivered")
    # good.test lists 127.0.0.3 and still rejects it at connect
    with pytest.raises(smtplib.SMTPConnectError) as e:
        smtp_client(stack["postern"].port, source="127.0.0.3")
    assert e.value.smtp_code == 554 and b"listed at good.test" in e.value.smtp_error
    # the share of this hour's sessions: good.test listed one of them
    got = lists(stack["http"])
    assert got[("good.test", "dnsbl")]["listed_this_hour"] >= 1
    # skipped lists list nobody (counts from before their first probe stay)
    for k in (("all.test", "dnsbl"), ("flip.test", "dnsbl")):
        assert got[k]["listed_this_hour"] <= before[k]["listed_this_hour"]
    assert got[("good.test", "dnsbl")]["sessions_this_hour"] >= 1
    assert 0 < got[("good.test", "dnsbl")]["share_this_hour"] <= 1


def test_one_log_line_per_state_change(stack):
    http, flip = stack["http"], stack["flip"]
    wait_states(http, {**HEALTHY, ("flip.test", "dnsbl"): "listing-everything"}, rounds=3)
    flip.broken = False
    wait_states(http, {("flip.test", "dnsbl"): "ok"}, rounds=2)
    flip.broken = True
    wait_states(http, {("flip.test", "dnsbl"): "listing-everything"}, rounds=2)
    log = stack["postern"].log()

    def count(pat):
        return len(re.findall(pat, log))
    # several rounds, one line each for the lists that never changed
    assert count(r"rbl health: dnsbl dead\.test is dead") == 1
    assert count(r"rbl health: dnsbl all\.test is listing-everything") == 1
    assert count(r"rbl health: dnsbl none\.test is listing-nothing") == 1
    assert count(r"rbl health: \w+ (good|wl|dbl)\.test") == 0
    # flip.test: broken, back, broken again
    assert count(r"rbl health: dnsbl flip\.test is listing-everything") == 2
    assert count(r"rbl health: dnsbl flip\.test answers its test entries correctly again") == 1


@pytest.fixture(scope="module")
def web_stack():
    """The web tests' stack with one list whose zone has no records: it
    lists nothing, and the dashboard says so."""
    st = Stack(conf={"rbl.zones": "none.test*1", "rbl.health_interval": "1"}).start()
    yield st
    st.close()


def test_dashboard_panel_shows_each_list_state(web_stack, drv):
    wait_states(web_stack.bearer(), {("none.test", "dnsbl"): "listing-nothing"})
    logged_in(drv, web_stack)
    row = wait_el(drv, '#dnslists tr[data-zone="none.test"]', text="listing-nothing")
    assert "dnsbl" in row.text and "nxdomain" in row.text
    assert "fail" in row.find_element(By.CSS_SELECTOR, ".badge").get_attribute("class")
    drv.execute_script("arguments[0].scrollIntoView()", row)
    shot(drv, "dnslists")
    assert not csp_violations(drv)


def test_off_probes_nothing_and_a_reload_turns_it_on():
    """rbl.health_interval = 0: no list is probed and policy uses every
    one, the broken one too; a reload that sets an interval starts the
    probes, and the broken list is skipped from then on."""
    with list_stack(interval="0") as st:
        p, http = st["postern"], st["http"]
        with pytest.raises(smtplib.SMTPConnectError) as e:
            smtp_client(p.port, source="127.0.0.4")
        assert e.value.smtp_code == 554 and b"client 127.0.0.4 listed at" in e.value.smtp_error
        st_, _, doc = http.get("/api/lists")
        assert st_ == 200 and doc["lists"] == [] and doc["interval"] == 0
        assert "rbl health:" not in p.log()
        p.reload({"rbl.health_interval": "1"})
        wait_states(http, {("all.test", "dnsbl"): "listing-everything",
                           ("flip.test", "dnsbl"): "listing-everything",
                           ("good.test", "dnsbl"): "ok"})
        send(p.port, "127.0.0.4")
        wait_until(lambda: len(st["cap"].accepted()) == 1, 15, what="the message delivered")
