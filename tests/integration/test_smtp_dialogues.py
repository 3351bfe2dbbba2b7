"""Scripted SMTP dialogues (tests/smtp/*.in) against a real Postern in front
of a real aiosmtpd capture backend, with a private unbound as the resolver.
Every reply and every delivered message is written to a transcript and
diffed against tests/smtp/NAME.ref.

.in format: one command per line, Python escapes allowed (\\n, \\r, \\x00).
Each line is sent followed by CRLF, except lines starting with "!raw " (sent
as they are). Lines are collected and sent in one write (pipelined) until a
line "?N", which then waits for N complete replies. "!conf key = value"
lines (in the [proxy] section) change the config. "#" starts a comment.

Run one with -k NAME; regenerate a .ref with POSTERN_REF_UPDATE=1 (then
read the diff before committing).
"""
import codecs
import glob
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

import pytest
from aiosmtpd.controller import Controller
from harness import Unbound, free_port, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POSTERN = os.environ.get("POSTERN_BIN", os.path.join(ROOT, "build", "postern"))
CASES = sorted(glob.glob(os.path.join(ROOT, "tests", "smtp", "*.in")))
DEADLINE = 20.0  # seconds any single wait may take before the test fails


class Capture:
    """The backend: keeps each message; a few addresses steer its answers."""

    def __init__(self):
        self.port = free_port()
        self.got = []
        outer = self

        class Handler:
            async def handle_RCPT(self, server, session, env, address, options):
                if address.startswith("unknown@"):
                    return "550 5.1.1 <%s>: Recipient address rejected" % address
                if address.startswith("busy@"):
                    return "451 4.3.0 <%s>: try again later" % address
                env.rcpt_tos.append(address)
                env.rcpt_options.extend(options)
                return "250 2.1.5 Ok"

            async def handle_DATA(self, server, session, env):
                outer.got.append((env.mail_from, list(env.rcpt_tos), env.mail_options,
                                  env.rcpt_options, env.original_content))
                if b"backend-reject" in env.original_content:
                    return "554 5.7.1 Rejected by the backend's own filter"
                return "250 2.0.0 Ok: queued as Q%d" % len(outer.got)

        self.ctl = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                              decode_data=False, enable_SMTPUTF8=True)

    def __enter__(self):
        self.ctl.start()
        return self

    def __exit__(self, *a):
        self.ctl.stop()


class Dns:
    """The harness's unbound: NXDOMAIN for every name, so no check ever
    leaves loopback; started only once it answers."""

    def __init__(self, d):
        self.u = Unbound(os.path.join(d, "unbound"))
        self.port = self.u.port

    def __enter__(self):
        self.u.start(timeout=DEADLINE)
        return self

    def __exit__(self, *a):
        self.u.stop()


def parse_in(path):
    conf, steps, block = [], [], []
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for line in lines:
        if line.startswith(b"#"):
            continue
        if line.startswith(b"!conf "):
            conf.append(line[6:].decode())
        elif line.startswith(b"?"):
            steps.append((b"".join(block), int(line[1:])))
            block = []
        elif line.startswith(b"!raw "):
            block.append(codecs.escape_decode(line[5:])[0])
        else:
            block.append(codecs.escape_decode(line)[0] + b"\r\n")
    if block:
        steps.append((b"".join(block), 0))
    return conf, steps


def read_replies(sock, n, buf):
    """Read until n complete replies are in, or the peer closed."""
    replies = []
    end = time.monotonic() + DEADLINE
    while len(replies) < n:
        m = re.search(rb"^(\d{3}) [^\n]*\n", buf[0], re.M)
        if m:
            replies.append(buf[0][:m.end()])
            buf[0] = buf[0][m.end():]
            continue
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for reply %d of %d" % (len(replies) + 1, n))
        sock.settimeout(max(0.1, end - time.monotonic()))
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            replies.append(b"(connection closed)\n")
            break
        buf[0] += data
    return replies


def escape(b):
    return b.replace(b"\r", b"\\r").replace(b"\n", b"\\n")


def normalise(b):
    s = b.decode("utf-8", "backslashreplace")
    s = re.sub(r"\b[0-9A-F]{12}\b", "SESSIONID", s)
    s = re.sub(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", "DATE", s)
    return s


def transcript_of(case):
    conf_lines, steps = parse_in(case)
    with tempfile.TemporaryDirectory(prefix="postern-dialogue-") as d, \
            Capture() as be, Dns(d) as dns:
        port = free_port()
        os.mkdir(os.path.join(d, "spool"))
        conf = os.path.join(d, "postern.conf")
        with open(conf, "w") as f:
            f.write("[proxy]\nlisten = 127.0.0.1:%d\nbackend = 127.0.0.1:%d\n"
                    "hostname = mx.test.example\nspool_dir = %s/spool\nthreads = 1\n"
                    % (port, be.port, d))
            for c in conf_lines:
                f.write(c + "\n")
            # the proxy is under test here, not the checks: keep verdicts fixed
            f.write("[dns]\nresolver = 127.0.0.1:%d\n[db]\npath = %s/p.db\n"
                    "[web]\nlisten = 127.0.0.1:%d\n[greylist]\nenabled = no\n"
                    "[spf]\nenabled = no\n[dkim]\nenabled = no\n[dmarc]\nenabled = no\n"
                    % (dns.port, d, free_port()))
        log = open(os.path.join(d, "log"), "w+")
        proc = subprocess.Popen([POSTERN, "serve", "-c", conf], stderr=log)
        try:
            wait_port(port, timeout=DEADLINE, proc=proc)
            out = []
            sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
            buf = [b""]
            out += [b"S: " + r.replace(b"\r\n", b"\n") for r in read_replies(sock, 1, buf)]
            for data, n in steps:
                for line in re.split(rb"(?<=\r\n)", data):
                    if line:
                        out.append(b"C: " + escape(line) + b"\n")
                sock.sendall(data)
                out += [b"S: " + r.replace(b"\r\n", b"\n") for r in read_replies(sock, n, buf)]
            sock.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(DEADLINE + 30)
            except subprocess.TimeoutExpired:
                proc.kill()   # never leave a postern behind
                rc = proc.wait(DEADLINE)
            log.seek(0)
            logtext = log.read()
            log.close()
        assert rc == 0, "postern exited %d:\n%s" % (rc, logtext)
        for frm, tos, mo, ro, content in be.got:
            out.append(b"=== delivered from=<%s> to=%s mail_options=%s rcpt_options=%s\n"
                       % (frm.encode(), ",".join(tos).encode(), " ".join(mo).encode(),
                          " ".join(ro).encode()))
            for line in re.split(rb"(?<=\r\n)", content):
                if line:
                    out.append(b"| " + escape(line) + b"\n")
        return normalise(b"".join(out)), logtext


@pytest.mark.parametrize("case", CASES, ids=[os.path.basename(c)[:-3] for c in CASES])
def test_dialogue(case):
    got, log = transcript_of(case)
    ref = case[:-3] + ".ref"
    if os.environ.get("POSTERN_REF_UPDATE"):
        with open(ref, "w", newline="") as f:
            f.write(got)
    with open(ref, newline="") as f:
        want = f.read()
    assert got == want, "transcript differs from %s; postern log:\n%s" % (ref, log[-3000:])
