"""Line-level SMTP client for hostile and pipelined dialogues.

Public: RawSMTP, Reply, smtp_client().

smtplib hides the wire; RawSMTP shows it. Every read is bounded by a
timeout, so a hung server fails the test instead of hanging it.

    c = RawSMTP(port, source="127.0.0.2")
    assert c.banner.code == 220
    c.send(b"EHLO a.test\\r\\nMAIL FROM:<a@b>\\r\\n")   # pipelined
    r1, r2 = c.reply(), c.reply()
    c.cmd("RCPT TO:<x@y>")  -> Reply
"""
import smtplib
import socket
import ssl

from .mail import stuff
from .net import LOOPBACK, TIME_SCALE


class Reply:
    def __init__(self, lines):
        self.lines = lines                 # ["250-a", "250 b"] as str
        self.code = int(lines[-1][:3]) if lines and lines[-1][:3].isdigit() else 0
        self.text = "\n".join(l[4:] for l in lines)

    @property
    def enhanced(self):
        """The enhanced status code of the last line ("5.5.2"), or ""."""
        parts = self.lines[-1][4:].split(" ", 1) if self.lines else [""]
        return parts[0] if parts[0][:1].isdigit() and "." in parts[0] else ""

    def __repr__(self):
        return "Reply(%r)" % self.lines


class RawSMTP:
    def __init__(self, port, host=LOOPBACK, source=None, timeout=10.0,
                 read_banner=True):
        timeout *= TIME_SCALE
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.banner = self.reply() if read_banner else None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection; pending %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """One complete (multi-line) reply."""
        lines = []
        for _ in range(1000):
            l = self._line()
            lines.append(l)
            if len(l) < 4 or l[3] != "-":
                return Reply(lines)
        raise ValueError("reply of more than 1000 lines")

    def cmd(self, line):
        self.send(line.encode() + b"\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.reply()

    def ehlo(self, name="client.test"):
        r = self.cmd("EHLO " + name)
        assert r.code == 250, "EHLO refused: %r" % r
        return r

    def transaction(self, sender, rcpts, content, mail_params=""):
        """One unpipelined MAIL/RCPT.../DATA. `content` is the message
        (stuffed here). Returns dict(mail=, rcpts=[...], data=, final=);
        stops early (data/final None) when the server refuses."""
        out = {"mail": None, "rcpts": [], "data": None, "final": None}
        out["mail"] = self.cmd("MAIL FROM:<%s>%s" % (sender, mail_params))
        if out["mail"].code != 250:
            return out
        for r in rcpts:
            out["rcpts"].append(self.cmd("RCPT TO:<%s>" % r))
        out["data"] = self.cmd("DATA")
        if out["data"].code != 354:
            return out
        self.send(stuff(content))
        out["final"] = self.reply()
        return out

    def closed(self, timeout=5.0):
        """True when the server has closed (EOF) within timeout, after any
        buffered data."""
        self.sock.settimeout(timeout * TIME_SCALE)
        try:
            for _ in range(1000):
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionError:
            return True
        return False

    def starttls(self, server_hostname="postern.test"):
        """Wrap the socket in TLS (after a 220 to STARTTLS). Buffered
        plaintext is dropped and returned: a well-behaved server sends
        nothing after its 220."""
        leftover, self.buf = self.buf, b""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        return leftover

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def smtp_client(port, source=None, timeout=15.0, host=LOOPBACK):
    """smtplib.SMTP connected to port, optionally from a chosen loopback
    source address (e.g. 127.0.0.2, so the backend can tell the client's
    address from Postern's own 127.0.0.1)."""
    return smtplib.SMTP(host, port, timeout=timeout * TIME_SCALE,
                        source_address=(source, 0) if source else None)
