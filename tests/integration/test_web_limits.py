"""The dashboard cannot be locked up or turned against its users, against a
real `postern serve`:

- failed logins and wrong tokens are met with a growing delay (429 and
  Retry-After), never a lockout of the right password, and a valid token
  never waits for another client's failures;
- X-Forwarded-For names the client only when the peer is in
  web.trusted_proxies;
- one address gets at most web.max_conns_per_ip connections, so 300 slow
  ones leave /healthz answering for everyone else;
- a request still incomplete web.request_timeout after its connection began
  is closed, however steadily it trickles.

Delays and deadlines run on the test clock (POSTERN_CLOCK_FILE), moved by
the test: nothing here waits for a delay to pass or asserts on speed.
"""
import itertools
import re
import socket
import ssl
import time

import pytest

from harness import LOOPBACK, wait_until
from webapi import PASSWORD, TOKEN, USER, Http, Stack

TIMEOUT = 60           # web.request_timeout of this stack, seconds
PER_IP = 16            # web.max_conns_per_ip (the default)
PROXY = "127.0.0.70"   # in web.trusted_proxies, alone ...
PROXY_NET = "127.0.1"  # ... and as 127.0.1.0/24


@pytest.fixture(scope="module")
def st():
    s = Stack(clock=True, conf={"web.request_timeout": TIMEOUT,
                                "web.trusted_proxies": "%s, %s.0/24" % (PROXY, PROXY_NET)})
    s.start()
    yield s
    s.close()


def grow_wait(st, send, at_least=16):
    """Fail through send() until the 429 asks for at_least seconds, moving
    the test clock past every shorter wait. Each answer must be 401 or 429
    (with Retry-After); returns the last Retry-After."""
    for _ in range(40):
        status, h, d = send()
        if status == 429:
            wait = int(h["retry-after"])
            assert wait > 0 and "retry in" in d["error"], (h, d)
            if wait >= at_least:
                return wait
            st.advance(wait)
        else:
            assert status == 401, (status, d)
    raise AssertionError("the wait never grew to %d s" % at_least)


def login_as(st, source, user, password, xff=None):
    h = Http(st.web_port, source=source)
    headers = {"X-Forwarded-For": xff} if xff else None
    return h.post("/api/login", {"user": user, "password": password}, headers=headers)


# ------------------------------------------------------------ login delays

def test_right_password_logs_in_after_wrong_ones_and_the_delay(st):
    st.passwd("delayed", "the-right-one")
    for _ in range(5):
        assert login_as(st, "127.0.0.31", "delayed", "nope")[0] == 401
    # Each further failure doubles the wait; grow it to something no slow
    # machine can outrun between two requests.
    wait = grow_wait(st, lambda: login_as(st, "127.0.0.31", "delayed", "nope"))
    status, h, d = login_as(st, "127.0.0.31", "delayed", "the-right-one")
    assert status == 429 and 0 < int(h["retry-after"]) <= wait, (status, h, d)
    # The guesser cannot lock the user out from elsewhere...
    assert login_as(st, "127.0.0.32", "delayed", "the-right-one")[0] == 200
    # ...and after the wait the right password works from there too.
    st.advance(int(h["retry-after"]))
    assert login_as(st, "127.0.0.31", "delayed", "the-right-one")[0] == 200
    # A good login starts the pair afresh: four free failures again.
    for _ in range(4):
        assert login_as(st, "127.0.0.31", "delayed", "nope")[0] == 401
    assert "failed login for delayed from 127.0.0.31" in st.postern.log()


def test_one_address_spraying_user_names_is_delayed(st):
    src = "127.0.0.41"
    for i in range(20):
        assert login_as(st, src, "nobody%d" % i, "x")[0] == 401
    wait = grow_wait(st, lambda: login_as(st, src, "sprayed%d" % time.monotonic_ns(), "x"))
    status, h, _ = login_as(st, src, USER, PASSWORD)
    assert status == 429 and 0 < int(h["retry-after"]) <= wait
    assert login_as(st, "127.0.0.42", USER, PASSWORD)[0] == 200
    st.advance(int(h["retry-after"]))
    assert login_as(st, src, USER, PASSWORD)[0] == 200


def test_valid_token_works_while_another_client_fails_from_the_same_address(st):
    bad = Http(st.web_port, token="guess", source="127.0.0.61")
    good = Http(st.web_port, token=TOKEN, source="127.0.0.61")
    wait = grow_wait(st, lambda: bad.get("/api/stats"))
    status, h, _ = bad.get("/api/stats")
    assert status == 429 and int(h["retry-after"]) > 0
    for _ in range(3):
        assert good.get("/api/stats")[0] == 200
        assert bad.get("/api/stats")[0] == 429
    # Wrong tokens do not delay logins from that address either.
    assert login_as(st, "127.0.0.61", USER, PASSWORD)[0] == 200
    st.advance(wait)
    assert bad.get("/api/stats")[0] == 401
    assert "wrong bearer token from 127.0.0.61" in st.postern.log()


# ------------------------------------------------------- X-Forwarded-For

def test_forwarded_for_ignored_from_an_unlisted_peer(st):
    st.passwd("spoofed", "the-right-one")
    src = "127.0.0.80"
    n = itertools.count(1)
    # Every attempt claims another client; the peer is what counts.
    grow_wait(st, lambda: login_as(st, src, "spoofed", "nope",
                                   xff="203.0.113.%d" % (next(n) % 250 + 1)))
    status, h, _ = login_as(st, src, "spoofed", "the-right-one", xff="198.51.100.99")
    assert status == 429, "a forged X-Forwarded-For escaped the delay"
    assert "failed login for spoofed from 127.0.0.80\n" in st.postern.log()
    assert "failed login for spoofed from 203.0.113." not in st.postern.log()
    # The claimed addresses were never charged: one really behind a listed
    # proxy logs in.
    assert login_as(st, PROXY, "spoofed", "the-right-one", xff="203.0.113.1")[0] == 200


def test_forwarded_for_names_the_client_behind_a_listed_proxy(st):
    st.passwd("proxied", "the-right-one")
    client = "198.51.100.7"
    grow_wait(st, lambda: login_as(st, PROXY, "proxied", "nope", xff=client))
    # The same client through another listed proxy is still the same client...
    assert login_as(st, PROXY_NET + ".9", "proxied", "the-right-one", xff=client)[0] == 429
    # ...through a chain of listed proxies too (right-most untrusted hop)...
    assert login_as(st, PROXY, "proxied", "the-right-one",
                    xff="192.0.2.1, %s, %s.3" % (client, PROXY_NET))[0] == 429
    # ...while the proxy's other clients are not held up,
    assert login_as(st, PROXY, "proxied", "the-right-one", xff="198.51.100.8")[0] == 200
    # and one who forges an entry is known by what our proxy appended.
    assert login_as(st, PROXY, "proxied", "the-right-one",
                    xff="%s, 198.51.100.10" % client)[0] == 200
    assert "failed login for proxied from %s via %s" % (client, PROXY) in st.postern.log()


def test_forwarded_for_over_several_header_lines(st):
    """Several X-Forwarded-For lines are one list, in order (RFC 9110 5.3):
    the last line's right-most entry is the nearest hop."""
    st.passwd("lines", "the-right-one")
    client = "198.51.100.20"
    body = b'{"user": "lines", "password": "the-right-one"}'

    def raw_login(lines):
        with socket.create_connection((LOOPBACK, st.web_port), timeout=30,
                                      source_address=(PROXY, 0)) as s:
            s.sendall(b"POST /api/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      b"Content-Type: application/json\r\n" + lines +
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
            return read_all(s).split(b" ", 2)[1]
    grow_wait(st, lambda: login_as(st, PROXY, "lines", "nope", xff=client))
    assert raw_login(b"X-Forwarded-For: %s\r\nX-Forwarded-For: %s.3\r\n"
                     % (client.encode(), PROXY_NET.encode())) == b"429"
    assert raw_login(b"X-Forwarded-For: %s\r\nX-Forwarded-For: 198.51.100.11\r\n"
                     % client.encode()) == b"200"


def test_ipv6_clients_count_per_64(st):
    """One IPv6 site holds a whole /64: hopping addresses inside it does not
    escape the delay, while the next /64 is another client."""
    st.passwd("six", "the-right-one")
    n = itertools.count(1)
    grow_wait(st, lambda: login_as(st, PROXY, "six", "nope",
                                   xff="2001:db8:1:2::%x" % next(n)))
    assert login_as(st, PROXY, "six", "the-right-one", xff="2001:db8:1:2:ffff::1")[0] == 429
    assert login_as(st, PROXY, "six", "the-right-one", xff="2001:db8:1:3::1")[0] == 200


def test_trusted_proxies_follow_sighup(st):
    listed = "%s, %s.0/24" % (PROXY, PROXY_NET)
    assert login_as(st, "127.0.0.81", USER, PASSWORD, xff="198.51.100.30")[0] == 200
    assert "logged in from 127.0.0.81\n" in st.postern.log()
    st.postern.reload({"web.trusted_proxies": listed + ", 127.0.0.81"})
    try:
        wait_until(lambda: login_as(st, "127.0.0.81", USER, PASSWORD,
                                    xff="198.51.100.30")[0] == 200 and
                   "logged in from 198.51.100.30 via 127.0.0.81" in st.postern.log(),
                   15, what="the reloaded web.trusted_proxies")
    finally:
        st.postern.reload({"web.trusted_proxies": listed})


# ------------------------------------------------- connections and deadlines

def read_all(s):
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def slow_socket(st, source, head=b"GET /healthz HTTP/1.1\r\nHost: x\r\n"):
    """A connection from source that has sent part of a request; None when
    it failed at once."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(30)
    try:
        s.connect((LOOPBACK, st.web_port))
        s.sendall(head)
    except OSError:
        s.close()
        return None
    return s


def trickle(socks, byte=b"X"):
    """One more header byte on every connection still open; returns those."""
    alive = []
    for s in socks:
        try:
            s.sendall(byte)
            alive.append(s)
        except OSError:
            s.close()
    return alive


def finish(s):
    """End the request on s; the status line's code, or None if closed."""
    try:
        s.sendall(b"-Slow: 1\r\nConnection: close\r\n\r\n")
        data = read_all(s)
    except OSError:
        data = b""
    s.close()
    return data.split(b" ", 2)[1] if data.startswith(b"HTTP/1.1 ") else None


def healthz_from(st, source):
    status, _, d = Http(st.web_port, source=source).get("/healthz")
    return status == 200 and d["status"] == "ok"


def test_the_connection_past_the_per_address_limit_is_refused(st):
    socks = [slow_socket(st, "127.0.0.55") for _ in range(PER_IP + 1)]
    # Another address gets in meanwhile.
    assert healthz_from(st, "127.0.0.56")
    codes = [finish(s) if s else None for s in socks]
    # Exactly one (whichever the server accepted last) was closed unanswered;
    # the others were kept open and answer once their request is complete.
    assert codes.count(b"200") == PER_IP and codes.count(None) == 1, codes


def test_300_slow_connections_from_one_address_leave_healthz_answering(st):
    socks = [s for s in (slow_socket(st, "127.0.0.50") for _ in range(300)) if s]
    for _ in range(3):
        socks = trickle(socks)
        assert healthz_from(st, "127.0.0.51")
        time.sleep(1)                     # pacing the trickle, not a measure
    codes = [finish(s) for s in trickle(socks)]
    answered = codes.count(b"200")
    assert 1 <= answered <= PER_IP, codes
    assert healthz_from(st, "127.0.0.51")
    # 284 refusals, but not 284 log lines: repeats are counted, and the
    # count is logged once they stop.
    assert st.postern.log().count("Server reached connection limit") <= 3
    wait_until(lambda: re.search(r'"Server reached connection limit\. Closing inbound '
                                 r'connection\." \d+ more times', st.postern.log()),
               30, what="the count of refusals in the log")


def test_request_trickled_past_the_deadline_is_closed(st):
    headers = slow_socket(st, "127.0.0.52")
    body = slow_socket(st, "127.0.0.53", b"POST /api/login HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    assert headers and body
    # A later connection answered means these two were accepted (the
    # backlog is first in, first out) and their clocks run from before the
    # move below.
    assert healthz_from(st, "127.0.0.54")
    st.advance(TIMEOUT + 1)
    fresh = slow_socket(st, "127.0.0.54")          # its clock starts now
    socks = [headers, body]
    deadline = time.monotonic() + 30           # a liveness bound, 30x the sweep
    while socks and time.monotonic() < deadline:
        socks = trickle(socks, b"x")
        for s in list(socks):
            s.settimeout(0.5)
            try:
                if s.recv(1024) == b"":
                    socks.remove(s)
                    s.close()
            except socket.timeout:
                pass
            except ConnectionResetError:
                socks.remove(s)
                s.close()
    assert not socks, "a trickled request outlived web.request_timeout"
    assert finish(fresh) == b"200"             # younger ones are served
    wait_until(lambda: "sent no whole request within %d s" % TIMEOUT in st.postern.log(),
               10, what="the deadline's log line")


def test_https_handshake_and_request_bounded_by_the_deadline():
    """Over HTTPS the deadline covers the handshake too: a client that
    never finishes it, and one that trickles its request inside TLS, are
    both closed once web.request_timeout has passed."""
    s = Stack(tls=True, clock=True, conf={"web.request_timeout": TIMEOUT}).start()
    try:
        stalled = slow_socket(s, "127.0.0.57", b"\x16\x03\x01")   # a record header, no more
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        tls = ctx.wrap_socket(slow_socket(s, "127.0.0.58", b""))
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        assert Http(s.web_port, source="127.0.0.59", tls=True).get("/healthz")[0] == 200
        s.advance(TIMEOUT + 1)
        socks = [stalled, tls]
        deadline = time.monotonic() + 30           # a liveness bound, 30x the sweep
        while socks and time.monotonic() < deadline:
            for c in list(socks):
                c.settimeout(0.5)
                try:
                    c.sendall(b"x")
                    if c.recv(1024) == b"":
                        socks.remove(c)
                except (socket.timeout, ssl.SSLWantReadError):
                    pass
                except (OSError, ssl.SSLError):
                    socks.remove(c)
        assert not socks, "an unfinished HTTPS request outlived web.request_timeout"
        assert Http(s.web_port, source="127.0.0.59", tls=True).get("/healthz")[0] == 200
    finally:
        s.close()
