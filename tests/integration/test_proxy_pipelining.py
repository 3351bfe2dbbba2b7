"""RFC 2920 pipelining through Postern: replies come strictly in order, and
several transactions pipelined in one write are all relayed."""
import subprocess

from harness import RawSMTP, make_message, stuff


def _swaks(port, *args):
    return subprocess.run(["swaks", "--server", "127.0.0.1:%d" % port,
                           "--helo", "swaks.test", "--timeout", "20"] + list(args),
                          capture_output=True, text=True, timeout=60)


def test_swaks_pipeline(postern, capture):
    r = _swaks(postern.port, "--pipeline", "--from", "a@example.org",
               "--to", "b@example.org,c@example.org", "--header", "Subject: swaks-pipe")
    assert r.returncode == 0, r.stdout + r.stderr
    (m,) = capture.wait_messages(1)
    assert len(m.rcpts) == 2 and b"Subject: swaks-pipe" in m.data


def test_swaks_pipeline_postfix(make_postern, postfix):
    p = make_postern(postfix.addr)
    r = _swaks(p.port, "--pipeline", "--from", "swakspipe@example.org",
               "--to", "b@example.org,rejected@example.org")
    # swaks fails a partial acceptance only when all rcpts fail; one is fine
    assert "550" in r.stdout, r.stdout
    assert "nrcpt=1 " in postfix.wait_log("from=<swakspipe@example.org>, size=")


def test_raw_pipelined_groups_in_order(make_postern, make_capture):
    cap = make_capture(rcpt_replies={"rejected@": "550 5.1.1 no such user"})
    p = make_postern(cap.addr)
    with RawSMTP(p.port) as c:
        c.ehlo()
        # group 1: MAIL, RCPT, RCPT(rejected), RCPT, DATA in one write
        c.send(b"MAIL FROM:<g1@example.org>\r\nRCPT TO:<a@example.org>\r\n"
               b"RCPT TO:<rejected@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
        assert [c.reply().code for _ in range(5)] == [250, 250, 550, 250, 354]
        # content 1, then group 2 and its DATA, in one write
        c.send(stuff(make_message("g1")) +
               b"MAIL FROM:<g2@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n")
        assert [c.reply().code for _ in range(4)] == [250, 250, 250, 354]
        # content 2, an error in the middle of group 3, RSET, group 4, QUIT
        c.send(stuff(make_message("g2")) +
               b"RCPT TO:<d@example.org>\r\n"          # 503: no MAIL yet
               b"MAIL FROM:<g3@example.org>\r\nRSET\r\n"
               b"MAIL FROM:<g4@example.org>\r\nRCPT TO:<e@example.org>\r\nDATA\r\n")
        codes = [c.reply().code for _ in range(7)]
        assert codes == [250, 503, 250, 250, 250, 250, 354], codes
        c.send(stuff(make_message("g4")) + b"QUIT\r\n")
        assert c.reply().code == 250
        assert c.reply().code == 221
    msgs = cap.wait_messages(3)
    assert [m.mail_from.split(b">")[0] for m in msgs] == \
        [b"MAIL FROM:<g1@example.org", b"MAIL FROM:<g2@example.org", b"MAIL FROM:<g4@example.org"]
    assert msgs[0].rcpts == [b"RCPT TO:<a@example.org>", b"RCPT TO:<b@example.org>"]
    assert not any(b"g3@" in m.mail_from for m in cap.messages)   # RSET dropped it


def test_raw_pipeline_everything_in_one_write(make_postern, postfix):
    p = make_postern(postfix.addr)
    with RawSMTP(p.port) as c:
        # EHLO, MAIL, RCPT and DATA in one write (RFC 2920 3.1: DATA ends a group)
        c.send(b"EHLO one.test\r\nMAIL FROM:<pipe@example.org>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n")
        codes = [c.reply().code for _ in range(4)]
        assert codes == [250, 250, 250, 354], codes
        c.send(stuff(make_message("pipe")) + b"QUIT\r\n")
        assert c.reply().code == 250
        assert c.reply().code == 221
    assert "from=<pipe@example.org>, size=" in postfix.wait_log("from=<pipe@example.org>, size=")
