"""Deadlines on whole units of work, as Postfix's per-request deadline and
minimum data rate: a command line within proxy.timeout_command of its first
byte, the DATA phase within timeout_data_min + bytes / data_rate_min, a
session within proxy.session_max. Past them: 421 4.4.2 and close, while the
other sessions go on being served.

No assertion here is about speed: the clients trickle for far longer than
the deadline they overrun, and a test only checks that the cut came, with
the RFC reply, before the trickle ended."""
import select
import threading

from harness import TIME_SCALE, RawSMTP, make_message

# A trickle that could last this long without a cut means the deadline is
# not there: long enough that no loaded machine mistakes one for the other.
TRICKLE_SECONDS = 40


def _trickle(c, data, interval):
    """Send data one byte per interval until the server speaks. Returns
    (reply, bytes_sent); reply is None when every byte went out unanswered."""
    for i in range(len(data)):
        try:
            c.send(data[i:i + 1])
        except OSError:     # closed under us: its last words are buffered
            return c.reply(), i
        r, _, _ = select.select([c.sock], [], [], interval)
        if r:
            return c.reply(), i + 1
    return None, len(data)


def _served_meanwhile(port, capture, subject):
    """A normal session, start to end, while a slow one is held."""
    with RawSMTP(port, timeout=30) as c:
        c.ehlo("other.test")
        t = c.transaction("a@example.org", ["b@example.org"], make_message(subject))
        assert t["final"].code == 250, t
        assert c.cmd("QUIT").code == 221


class _Slow(threading.Thread):
    """Runs fn(c) on a RawSMTP connection in a thread; keeps the result."""

    def __init__(self, port, fn):
        super().__init__(daemon=True)
        self.port, self.fn = port, fn
        self.result = self.error = None

    def run(self):
        try:
            with RawSMTP(self.port, timeout=60) as c:
                self.result = self.fn(c)
        except Exception as e:     # noqa: BLE001 -- reported by the test
            self.error = e

    def finish(self):
        self.join(TRICKLE_SECONDS * 2 * TIME_SCALE)
        assert not self.is_alive(), "the slow client never finished"
        if self.error is not None:
            raise self.error
        return self.result


def _held_while_others_served(port, capture, fn, subject):
    """Run fn(c) as a slow client; meanwhile a normal session delivers a
    message with this subject, the only one delivered. fn's result."""
    t = _Slow(port, fn)
    t.start()
    _served_meanwhile(port, capture, subject)
    result = t.finish()
    msgs = capture.wait_messages(1)
    assert len(msgs) == 1 and b"Subject: " + subject.encode() in msgs[0].data
    return result


def _cut_off(reply, sent, total):
    assert reply is not None, "all %d bytes trickled in without a cut" % total
    assert sent < total
    assert reply.code == 421 and reply.enhanced == "4.4.2", reply


def test_trickled_command_cut_off_from_first_byte(make_postern, capture):
    """One byte every half second used to re-arm a 3 s command timeout
    forever; the line must now end 3 s after its first byte."""
    p = make_postern(capture.addr, conf={"proxy.timeout_command": 3})
    line = b"NOOP " + b"x" * int(TRICKLE_SECONDS / 0.5)

    def slow(c):
        c.ehlo("slow.test")
        r, sent = _trickle(c, line, 0.5)
        return r, sent, c.closed()

    reply, sent, closed = _held_while_others_served(p.port, capture, slow, "meanwhile-cmd")
    _cut_off(reply, sent, len(line))
    assert "timeout exceeded" in reply.lines[-1]
    assert closed
    assert "timeout exceeded in HELO" in p.log()


def test_complete_lines_each_get_their_own_deadline(make_postern, capture):
    """The deadline is per line, not per session: lines that each end in
    time are served even when together they take longer than it."""
    p = make_postern(capture.addr, conf={"proxy.timeout_command": 3})
    with RawSMTP(p.port, timeout=30) as c:
        c.ehlo()
        for _ in range(3):      # 3 lines of ~1.6 s each: ~5 s in all
            r, sent = _trickle(c, b"NOOP\r\n", 0.25)
            assert sent == 6 and r.code == 250, r


def test_trickled_data_cut_off_at_total_deadline(make_postern, capture):
    """DATA one byte every half second: each byte used to re-arm the 180 s
    block timeout; the phase now has timeout_data_min + bytes / rate."""
    p = make_postern(capture.addr, conf={"proxy.timeout_data_min": 3,
                                         "proxy.data_rate_min": 1000})
    body = b"Subject: trickled\r\n\r\n" + b"y" * int(TRICKLE_SECONDS / 0.5)

    def slow(c):
        c.ehlo("slow.test")
        assert c.cmd("MAIL FROM:<slow@example.org>").code == 250
        assert c.cmd("RCPT TO:<b@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        r, sent = _trickle(c, body, 0.5)
        return r, sent, c.closed()

    reply, sent, closed = _held_while_others_served(p.port, capture, slow, "meanwhile-data")
    _cut_off(reply, sent, len(body))
    assert closed
    assert "DATA time limit exceeded" in p.log()    # and it was not delivered


def test_data_deadline_grows_with_the_message(make_postern, capture):
    """A message that takes longer than timeout_data_min but arrives at more
    than data_rate_min is accepted: the bound is derived from its size."""
    p = make_postern(capture.addr, conf={"proxy.timeout_data_min": 2,
                                         "proxy.data_rate_min": 2000})
    chunk = (b"z" * 78 + b"\r\n") * 50          # 4000 bytes: 2 s more each
    with RawSMTP(p.port, timeout=60) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<big@example.org>").code == 250
        assert c.cmd("RCPT TO:<b@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: steady\r\n\r\n")
        for _ in range(8):          # ~4 s in all, twice timeout_data_min
            c.send(chunk)
            r, _, _ = select.select([c.sock], [], [], 0.5)
            assert not r, "the server spoke mid-DATA: %r" % c.reply()
        r = c.cmd(b".")
        assert r.code == 250, r
    (m,) = capture.wait_messages(1)
    assert b"Subject: steady" in m.data


def test_session_max_ends_a_busy_session(make_postern, capture):
    """Commands that each end in time do not keep a session forever."""
    p = make_postern(capture.addr, conf={"proxy.timeout_command": 3,
                                         "proxy.session_max": 4})

    def busy(c):
        c.ehlo("busy.test")
        oks = 0
        for _ in range(TRICKLE_SECONDS):
            try:
                r = c.cmd("NOOP")
            except OSError:
                return None, oks
            if r.code != 250:
                return r, oks
            oks += 1
            select.select([c.sock], [], [], 1.0)
        return None, oks

    reply, oks = _held_while_others_served(p.port, capture, busy, "meanwhile-session")
    assert reply is not None, "%d NOOPs and no end to the session" % oks
    assert reply.code == 421 and reply.enhanced == "4.4.2", reply
    assert "session time limit" in reply.lines[-1]
    assert oks >= 2         # each NOOP was in time: the session was the limit
    assert "session time limit exceeded" in p.log()
