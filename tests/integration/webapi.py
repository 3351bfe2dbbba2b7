"""What the web tests share: a running stack (unbound, a capture backend,
Postern with its dashboard) and a small HTTP client for the API.

Public: Stack, Http, TOKEN, USER, PASSWORD, send_mail().

    st = Stack().start()          # unbound + capture + postern serve
    st = Stack(clock=True)        # ... with a test clock: st.advance(seconds)
    st.http()                     # an Http on the dashboard, no credentials
    st.bearer()                   # an Http with the API token
    st.login()                    # an Http logged in as USER (cookie + CSRF)
    st.close()

http.client from the standard library (python3-requests is not a test
dependency); every request has a timeout and goes to 127.0.0.1 only.
"""
import contextlib
import http.client
import json
import os
import re
import ssl
import subprocess
import time
import urllib.parse
import email.policy
from email.message import EmailMessage

from harness import (LOOPBACK, POSTERN_BIN, Capture, Postern, TempDir, Unbound, free_port, port_open,
                     make_cert, smtp_client, wait_until)

TOKEN = "t0ken-for-scripts-" + "x" * 24
USER = "admin"
PASSWORD = "correct horse battery staple"


class Http:
    """One client; keeps the session cookie and CSRF token after login()."""

    def __init__(self, port, token=None, source=None, tls=False):
        self.port = port
        self.token = token
        self.source = source
        self.tls = tls
        self.cookie = None
        self.csrf = None

    def request(self, method, path, body=None, headers=None, csrf=True):
        """(status, headers dict lower-case, parsed JSON or bytes)."""
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if self.cookie:
            h["Cookie"] = self.cookie
        if self.csrf and csrf and method not in ("GET", "HEAD"):
            h["X-CSRF-Token"] = self.csrf
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if body is not None:
            # what the API takes; a test of another type says so in headers
            h.setdefault("Content-Type", "application/json")
        src = (self.source, 0) if self.source else None
        if self.tls:
            # The test's own self-signed certificate: encryption is what is
            # tested here, not the chain.
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c = http.client.HTTPSConnection(LOOPBACK, self.port, timeout=30,
                                            source_address=src, context=ctx)
        else:
            c = http.client.HTTPConnection(LOOPBACK, self.port, timeout=30,
                                           source_address=src)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()
        if hdrs.get("content-type", "").startswith("application/json"):
            data = json.loads(data)
        return r.status, hdrs, data

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def login(self, user=USER, password=PASSWORD):
        st, h, d = self.post("/api/login", {"user": user, "password": password})
        if st == 200:
            self.cookie = h["set-cookie"].split(";", 1)[0]
            self.csrf = d["csrf"]
        return st, h, d


def send_mail(port, subject, sender="alice@sender.test", rcpt="bob@example.org",
              body="Hello from the web tests.\n", source="127.0.0.2"):
    """One message through Postern; returns (code, text) of the final reply."""
    m = EmailMessage()
    m["From"] = sender
    m["To"] = rcpt
    m["Subject"] = subject
    m["Message-ID"] = "<%d.%s@sender.test>" % (time.time_ns(), os.getpid())
    m.set_content(body)
    with smtp_client(port, source=source) as s:
        s.ehlo("client.sender.test")
        s.mail(sender)
        code, text = s.rcpt(rcpt)
        assert code == 250, (code, text)
        code, text = s.data(m.as_bytes(policy=email.policy.SMTP))
        return code, text.decode("utf-8", "replace")


class Stack:
    """unbound + capture backend + `postern serve` with the dashboard, a user
    and the API token. conf overrides Postern settings."""

    def __init__(self, conf=None, tls=False, clock=False, raw=""):
        self.tmp = TempDir(prefix="postern-web-")
        self.conf = dict(conf or {})
        self.raw = raw          # INI text after the settings ([domain ...])
        self.tls = tls
        self.clockfile = self.tmp.join("clock") if clock else None
        self.clock = 0
        self.dns = self.cap = self.postern = None

    def advance(self, seconds):
        """Move Postern's test clock (POSTERN_CLOCK_FILE, Stack(clock=True))
        forward: login delays and request deadlines pass without sleeping."""
        self.clock += int(seconds)
        with open(self.clockfile, "w") as f:
            f.write("%d\n" % self.clock)

    def start(self):
        """Everything up, or everything already started torn down again."""
        try:
            return self._start()
        except BaseException:
            self.close(check=False)
            raise

    def _start(self):
        self.dns = Unbound(self.tmp.join("dns"), local_data=[
            'sender.test. TXT "v=spf1 ip4:127.0.0.0/8 -all"',
            "client.sender.test. A 127.0.0.2",
            "2.0.0.127.in-addr.arpa. PTR client.sender.test.",
        ]).start()
        self.cap = Capture().start()
        conf = {"web.api_token": TOKEN}
        if self.tls:
            conf["web.tls_cert"], conf["web.tls_key"] = make_cert(self.tmp.join("tls"))
        conf.update(self.conf)
        env = None
        if self.clockfile:
            self.advance(0)
            env = {"POSTERN_CLOCK_FILE": self.clockfile}
        self.postern = Postern(self.tmp.join("postern"), backend=self.cap.addr,
                               resolver=self.dns.addr, conf=conf, env=env)
        self.postern.raw = self.raw
        self.postern.write_config()
        self.passwd(USER, PASSWORD)
        self.postern.start()
        wait_until(lambda: self.http().get("/healthz")[0] == 200, 15,
                   what="the dashboard to answer")
        return self

    def passwd(self, user, password):
        r = subprocess.run([POSTERN_BIN, "passwd", "-c", self.postern.conf_path, user],
                           input=password + "\n", capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        return r

    @property
    def web_port(self):
        return self.postern.web_port

    @property
    def base(self):
        return "http://%s:%d" % (LOOPBACK, self.web_port)

    def http(self, source=None):
        return Http(self.web_port, source=source, tls=self.tls)

    def bearer(self, token=TOKEN):
        return Http(self.web_port, token=token, tls=self.tls)

    def login(self):
        h = Http(self.web_port, tls=self.tls)
        st, _, d = h.login()
        assert st == 200, d
        return h

    @contextlib.contextmanager
    def web_alone(self):
        """`postern web -c FILE` on a port of its own, over this stack's
        database (the same config otherwise): yields (process, port); on the
        way out it gets SIGTERM and must exit 0."""
        conf = self.tmp.join("web-only.conf")
        port = free_port()
        with open(self.postern.conf_path) as f:
            text = re.sub(r"(?m)^listen = 127\.0\.0\.1:%d$" % self.web_port,
                          "listen = 127.0.0.1:%d" % port, f.read())
        with open(conf, "w") as f:
            f.write(text)
        proc = subprocess.Popen([POSTERN_BIN, "web", "-c", conf], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            wait_until(lambda: proc.poll() is None and port_open(port), 15,
                       what="postern web to listen")
            yield proc, port
        finally:
            proc.terminate()
            rc = proc.wait(15)
        assert rc == 0, proc.stderr.read()

    def wait_verdict(self, needle, timeout=20.0):
        """The verdict row whose subject contains needle (waits for the db
        writer); returns the row."""
        api = self.bearer()
        q = "/api/verdicts?q=" + urllib.parse.quote(needle)
        found = []

        def look():
            st, _, d = api.get(q)
            rows = [v for v in d.get("verdicts", []) if needle in (v.get("subject") or "")] \
                if st == 200 else []
            found[:] = rows
            return bool(rows)
        wait_until(look, timeout, interval=0.2, what="a verdict for %r" % needle)
        return found[0]

    def close(self, check=True):
        try:
            if self.postern and check:
                self.postern.stop()
            elif self.postern:
                self.postern.kill()
        finally:
            if self.cap:
                self.cap.stop()
            if self.dns:
                self.dns.stop()
            self.tmp.cleanup()
