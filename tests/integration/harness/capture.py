"""A capture SMTP server: the backend that records the exact bytes it gets.

Public: Capture, CapSession, CapMessage.

A small raw asyncio SMTP server of our own (not aiosmtpd) so that DATA is
recorded byte for byte as it came off the wire, before any unstuffing, and
so that it can misbehave on request. It runs its event loop in a thread.

    cap = Capture(xclient=True, xforward=False,
                  rcpt_replies={"rejected@": "550 5.1.1 no such user"},
                  data_reply="451 4.3.0 try later",   # or a callable(msg)
                  data_cmd_reply="554 5.5.1 no thanks",  # refuse DATA itself
                  drop_after_data_bytes=100,          # close mid-DATA
                  drop_on=b"RSET",                    # close, unanswered
                  data_delay=30,                      # answer the dot late
                  xclient_reply=lambda line, sess: None)  # a refusal, or
                                                      # None: accept (220)
    cap.start()
    ... Postern's proxy.backend = cap.addr ...
    msgs = cap.wait_messages(1)
    msgs[0].raw        # bytes after "354" up to and including CRLF.CRLF
    msgs[0].data       # dot-unstuffed content (ends with its CRLF), no ".CRLF"
    msgs[0].mail_from  # the MAIL command line (bytes, no CRLF)
    msgs[0].rcpts      # RCPT lines that got 250
    cap.sessions[i].lines / .ehlo / .xclient / .xforward   (command lines)
    cap.probes         # sessions that said only EHLO and QUIT: Postern's
                       # backend probe at start and reload, kept out of
                       # cap.sessions so tests count mail connections
    cap.stop()

Only CRLF.CRLF ends DATA here, like Postern: a bare-LF or bare-CR "end"
stays inside the message, so a test sees if one message became two.
Messages are recorded whatever the final reply (msg.reply says what was
answered); cap.accepted() lists those answered 2xx.
"""
import asyncio
import threading

from .net import LOOPBACK, TIME_SCALE, free_port, wait_until

MAX_LINE = 16 * 1024 * 1024   # far beyond any limit Postern may enforce


class CapMessage:
    def __init__(self, session, mail_from, rcpts, raw):
        self.session = session
        self.mail_from = mail_from
        self.rcpts = list(rcpts)
        self.raw = raw
        self.reply = None

    @property
    def data(self):
        """Content with dot-stuffing removed and the ".CRLF" terminator cut
        off; the CRLF before the dot belongs to the content (RFC 5321 4.1.1.4)."""
        body = self.raw[:-3] if self.raw.endswith(b".\r\n") else self.raw
        out = []
        for line in body.split(b"\r\n"):
            out.append(line[1:] if line.startswith(b".") else line)
        return b"\r\n".join(out)

    def header(self, name):
        """Values of a header in the delivered message (unfolded, str)."""
        head = self.data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        vals, cur = [], None
        for line in head.split("\r\n"):
            if line[:1] in (" ", "\t") and cur is not None:
                vals[-1] += " " + line.strip()
            elif ":" in line:
                k, v = line.split(":", 1)
                cur = k.strip().lower() == name.lower()
                if cur:
                    vals.append(v.strip())
                else:
                    cur = None
        return vals

    def __repr__(self):
        return "<CapMessage from=%r rcpts=%d bytes=%d reply=%r>" % (
            self.mail_from, len(self.rcpts), len(self.raw), self.reply)


class CapSession:
    def __init__(self, peer):
        self.peer = peer
        self.lines = []      # every command line, bytes without CRLF
        self.ehlo = []       # EHLO/HELO lines
        self.xclient = []
        self.xforward = []
        self.messages = []
        self.closed = False


class Capture:
    def __init__(self, xclient=True, xforward=True, rcpt_replies=None,
                 data_reply="250 2.0.0 Ok: queued", mail_reply=None, data_cmd_reply=None,
                 drop_after_data_bytes=None, data_delay=0, banner="220 capture.test ESMTP",
                 hostname="capture.test", port=None, xclient_reply=None, drop_on=None):
        self.xclient = xclient
        self.xforward = xforward
        self.rcpt_replies = dict(rcpt_replies or {})
        self.data_reply = data_reply
        self.mail_reply = mail_reply
        self.data_cmd_reply = data_cmd_reply
        self.drop_after_data_bytes = drop_after_data_bytes
        self.drop_on = drop_on
        self.data_delay = data_delay
        self.banner = banner
        self.hostname = hostname
        self.xclient_reply = xclient_reply
        self.xclient_attrs = "NAME ADDR PROTO HELO PORT"   # as offered in EHLO
        self.port = port or free_port()
        self.sessions = []
        self.probes = []
        self.messages = []
        self._lock = threading.Lock()
        self._loop = None
        self._server = None
        self._writers = set()
        self._thread = None

    @property
    def addr(self):
        return "%s:%d" % (LOOPBACK, self.port)

    # ---- lifecycle -----------------------------------------------------
    def start(self):
        ready = threading.Event()
        err = []

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(
                    asyncio.start_server(self._handle, LOOPBACK, self.port,
                                         limit=MAX_LINE, backlog=4096,
                                         reuse_address=True))
            except Exception as e:  # noqa: BLE001 -- reported to start()
                err.append(e)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="capture", daemon=True)
        self._thread.start()
        # start_server() has bound and listened once ready is set; never
        # return before that (a busy machine may schedule the thread late).
        if not ready.wait(30 * TIME_SCALE):
            raise RuntimeError("capture server thread did not start in time")
        if err:
            raise err[0]
        return self

    def stop(self):
        if self._loop is None:
            return

        async def shutdown():
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            await asyncio.sleep(0)

        fut = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        try:
            fut.result(5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- what tests read ----------------------------------------------
    def accepted(self):
        with self._lock:
            return [m for m in self.messages if m.reply and m.reply[:1] == "2"]

    def wait_messages(self, n, timeout=15.0, accepted_only=True):
        """Wait until at least n messages were received; returns them all."""
        get = self.accepted if accepted_only else (lambda: list(self.messages))
        wait_until(lambda: len(get()) >= n, timeout,
                   what="%d message(s) at the capture server (have %d)"
                   % (n, len(get())))
        return get()

    def all_lines(self):
        with self._lock:
            return [l for s in self.sessions for l in s.lines]

    # ---- the SMTP side ---------------------------------------------------
    def _reply_for_rcpt(self, line):
        low = line.decode("utf-8", "replace").lower()
        for needle, reply in self.rcpt_replies.items():
            if needle.lower() in low:
                return reply
        return "250 2.1.5 Ok"

    def _ehlo_reply(self, verb):
        if verb == b"HELO":
            return "250 %s" % self.hostname
        caps = [self.hostname, "PIPELINING", "SIZE 104857600", "8BITMIME",
                "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN"]
        if self.xclient:
            caps.append("XCLIENT " + self.xclient_attrs)
        if self.xforward:
            caps.append("XFORWARD NAME ADDR PROTO HELO SOURCE PORT")
        return "\r\n".join("250%s%s" % ("-" if i < len(caps) - 1 else " ", c)
                           for i, c in enumerate(caps))

    async def _handle(self, reader, writer):
        sess = CapSession(writer.get_extra_info("peername"))
        with self._lock:
            self.sessions.append(sess)
        self._writers.add(writer)
        try:
            await self._dialogue(sess, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            sess.closed = True
            self._writers.discard(writer)
            writer.transport.abort()

    async def _dialogue(self, sess, reader, writer):
        def send(text):
            writer.write(text.encode() + b"\r\n")

        send(self.banner)
        mail, rcpts = None, []
        while True:
            await writer.drain()
            line = await reader.readline()
            if not line:
                return
            cmd = line.rstrip(b"\r\n")
            with self._lock:
                sess.lines.append(cmd)
            verb = cmd.split(b" ", 1)[0].upper()
            if verb == self.drop_on:
                writer.transport.abort()
                return   # dropped on purpose
            if verb in (b"EHLO", b"HELO"):
                sess.ehlo.append(cmd)
                mail, rcpts = None, []
                send(self._ehlo_reply(verb))
            elif verb == b"XCLIENT" and self.xclient:
                sess.xclient.append(cmd)
                refusal = self.xclient_reply and self.xclient_reply(cmd, sess)
                if refusal:
                    send(refusal)   # as Postfix: the old identity stays
                    continue
                mail, rcpts = None, []
                send(self.banner)   # as Postfix: a new greeting, EHLO again
            elif verb == b"XFORWARD" and self.xforward:
                sess.xforward.append(cmd)
                send("250 2.0.0 Ok")
            elif verb == b"MAIL":
                if self.mail_reply:
                    send(self.mail_reply)
                    continue
                mail, rcpts = cmd, []
                send("250 2.1.0 Ok")
            elif verb == b"RCPT":
                if mail is None:
                    send("503 5.5.1 need MAIL")
                    continue
                r = self._reply_for_rcpt(cmd)
                if r.startswith("2"):
                    rcpts.append(cmd)
                send(r)
            elif verb == b"DATA":
                if mail is None or not rcpts:
                    send("554 5.5.1 no valid recipients")
                    continue
                if self.data_cmd_reply:
                    send(self.data_cmd_reply)
                    continue
                send("354 End data with <CR><LF>.<CR><LF>")
                await writer.drain()
                raw = await self._read_data(reader, writer)
                if raw is None:
                    return   # dropped on purpose
                msg = CapMessage(sess, mail, rcpts, raw)
                if self.data_delay:
                    await asyncio.sleep(self.data_delay)   # a slow backend
                reply = self.data_reply(msg) if callable(self.data_reply) else self.data_reply
                msg.reply = reply
                with self._lock:
                    sess.messages.append(msg)
                    self.messages.append(msg)
                send(reply)
                mail, rcpts = None, []
            elif verb == b"RSET":
                mail, rcpts = None, []
                send("250 2.0.0 Ok")
            elif verb == b"NOOP":
                send("250 2.0.0 Ok")
            elif verb == b"QUIT":
                with self._lock:
                    if [l.split(b" ")[0].upper() for l in sess.lines] == [b"EHLO", b"QUIT"]:
                        self.sessions.remove(sess)
                        self.probes.append(sess)
                send("221 2.0.0 Bye")
                await writer.drain()
                return
            else:
                send("502 5.5.2 command not recognized")

    async def _read_data(self, reader, writer):
        """Bytes up to and including the CRLF.CRLF that ends DATA."""
        buf = bytearray()
        prev_crlf = True  # the DATA line itself ended in CRLF
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("EOF in DATA")
            buf += line
            if (self.drop_after_data_bytes is not None
                    and len(buf) >= self.drop_after_data_bytes):
                writer.transport.abort()
                return None
            if line == b".\r\n" and prev_crlf:
                return bytes(buf)
            prev_crlf = line.endswith(b"\r\n")
