"""Quarantine digests end to end: `postern quarantine digest --now` and the
daemon's schedule send each recipient one digest through the backend (a
real Postfix, which relays it to the capture server so the test reads what
it delivered); the digest's signed links open a confirmation page (GET) and
act on its button (POST); release delivers exactly once; reused, expired,
altered and foreign links are refused; message text is escaped.

Real parts: build/postern, the harness's unbound, a Postfix instance
relaying to a Capture, smtplib clients, urllib for HTTP status codes and a
real Chromium (Selenium) following the release link. Time is the test
clock (POSTERN_CLOCK_FILE), never a sleep.
"""
import base64
import email
import email.header
import email.policy
import hashlib
import hmac
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from harness import POSTERN_BIN, wait_until
from harness.client import smtp_client

RULES = "quar | subject | /quarantine me/i | quarantine\n"
LINK = re.compile(r"http://127\.0\.0\.1:\d+/digest/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")


class Env:
    """Postfix relaying to a Capture, Postern in front of Postfix, one
    test clock for Postern and its CLI."""

    def __init__(self, workdir, make_capture, make_postfix, make_postern, conf=None,
                 **pf_kw):
        self.cap = make_capture()
        self.pf = make_postfix(relay_to=self.cap.addr, **pf_kw)
        self.clockfile = workdir.join("clock")
        self.offset = 0
        self.set_clock(0)
        settings = {"quarantine.digest_link_lifetime": "1h"}
        settings.update(conf or {})
        self.p = make_postern(self.pf.addr, conf=settings, start=False,
                              env={"POSTERN_CLOCK_FILE": self.clockfile})
        self.p.settings["web.public_url"] = "http://127.0.0.1:%d" % self.p.web_port
        self.p.write_config()
        path = os.path.join(self.p.dir, "rules.txt")
        with open(path, "w") as f:
            f.write(RULES)
        rc, _, err = self.cli("rules", "import", path)
        assert rc == 0, err
        self.p.start()

    def set_clock(self, offset):
        self.offset = offset
        with open(self.clockfile, "w") as f:
            f.write("%d\n" % offset)

    def cli(self, *args):
        r = subprocess.run([POSTERN_BIN, *args, "-c", self.p.conf_path], capture_output=True,
                           text=True, timeout=120,
                           env=dict(os.environ, POSTERN_CLOCK_FILE=self.clockfile))
        return r.returncode, r.stdout, r.stderr

    def quarantine(self, tag, rcpts=("bob@example.org",), subject=None,
                   sender="sender@example.net"):
        subject = subject or "please quarantine me %s" % tag
        msg = ("From: Sender <%s>\r\nTo: %s\r\nSubject: %s\r\n"
               "Message-ID: <%s@example.net>\r\nMIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n\r\nHello %s.\r\n"
               % (sender, ", ".join(rcpts), subject, tag, tag)).encode()
        with smtp_client(self.p.port, source="127.0.0.5") as s:
            s.ehlo("client.example.net")
            assert s.mail(sender)[0] == 250
            for r in rcpts:
                assert s.rcpt(r)[0] == 250
            code, text = s.data(msg)
        assert code == 250 and b"quarantined as" in text, (code, text)
        return re.search(rb"quarantined as ([0-9A-F]{12})", text).group(1).decode()

    def round(self):
        """One round by hand, a minute later on the test clock (a round
        leaves the last seconds to the next one): (exit code, stdout)."""
        self.set_clock(self.offset + 60)
        rc, out, err = self.cli("quarantine", "digest", "--now")
        return rc, out + err

    def digests(self):
        return [m for m in self.cap.accepted() if m.header("Auto-Submitted")]

    def delivered(self, tag):
        return [m for m in self.cap.accepted()
                if m.header("Message-ID") == ["<%s@example.net>" % tag]]

    def state(self, qid):
        rc, out, err = self.cli("quarantine", "show", qid)
        if rc != 0:
            return None
        return re.search(r'"state":\s*"(\w+)"', out).group(1)


@pytest.fixture
def env(workdir, make_capture, make_postfix, make_postern):
    return Env(workdir, make_capture, make_postfix, make_postern)


def parse(m):
    return email.message_from_bytes(m.data, policy=email.policy.default)


def parts(m):
    msg = parse(m)
    assert msg.get_content_type() == "multipart/alternative"
    got = {p.get_content_type(): p.get_content().replace("\r\n", "\n")
           for p in msg.iter_parts()}
    assert set(got) == {"text/plain", "text/html"}
    return got["text/plain"], got["text/html"]


def addrs(lines):
    """The paths of captured MAIL/RCPT lines."""
    return [re.search(rb"<([^>]*)>", l).group(1).decode() for l in lines]


def for_rcpt(env, rcpt):
    got = [m for m in env.digests() if addrs(m.rcpts) == [rcpt]]
    assert len(got) == 1, [m.rcpts for m in env.digests()]
    return got[0]


def links(text):
    return LINK.findall(text)


def http(url, method="GET"):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def link_for(env, rcpt, subject_tag, action_index):
    """The link of one message (by a tag in its subject) and action
    (0 release, 1 delete, 2 allow) in rcpt's latest digest's text part."""
    text, _ = parts([m for m in env.digests() if addrs(m.rcpts) == [rcpt]][-1])
    for block in text.split("\n\n"):
        if subject_tag in block:
            found = links(block)
            assert len(found) == 3, block
            return found[action_index]
    raise AssertionError("no message %s in %s" % (subject_tag, text))


def test_digest_through_postfix_lists_each_message_in_both_parts(env):
    a = env.quarantine("one", rcpts=("bob@example.org",))
    b = env.quarantine("two", rcpts=("bob@example.org", "carol@example.org"))
    assert env.digests() == []
    rc, out = env.round()
    assert rc == 0 and "digest: 2 recipients, 2 messages" in out, out
    wait_until(lambda: len(env.digests()) == 2, 30, what="two digests via Postfix")
    bob = for_rcpt(env, "bob@example.org")
    # Postfix delivered it: its smtp client greeted the capture
    assert any(b"backend.test" in l for l in bob.session.ehlo), bob.session.ehlo
    assert "relay=127.0.0.1" in env.pf.maillog()
    msg = parse(bob)
    for h in ("Date", "Message-ID", "From", "To", "Subject"):
        assert msg[h], h
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["To"] == "bob@example.org" and "postmaster@postern.test" in msg["From"]
    assert addrs([bob.mail_from]) == ["postmaster@postern.test"]
    assert "2 messages" in msg["Subject"]
    text, html = parts(bob)
    for tag, qid in (("one", a), ("two", b)):
        assert "please quarantine me %s" % tag in text
        assert "please quarantine me %s" % tag in html
    assert text.count("sender@example.net") == 2 and html.count("sender@example.net") == 2
    assert text.count("Score:") == 2
    assert "(rule: quar)" in text and "(rule: quar)" not in html   # main reason
    assert "<td>rule: quar</td>" in html
    assert len(links(text)) == 6 and len(set(links(html))) == 6
    assert set(links(text)) == set(links(html))
    carol_text, _ = parts(for_rcpt(env, "carol@example.org"))
    assert "me two" in carol_text and "me one" not in carol_text
    # every raw line of the message is 7-bit and short (quoted-printable)
    assert all(len(l) <= 998 for l in bob.data.split(b"\r\n"))


def test_second_round_sends_nothing_new_then_only_the_new(env):
    env.quarantine("first")
    rc, out = env.round()
    assert "digest: 1 recipient, 1 message" in out, out
    wait_until(lambda: len(env.digests()) == 1, 30, what="first digest")
    rc, out = env.round()
    assert rc == 0 and "digest: 0 recipients, 0 messages" in out, out
    env.quarantine("second")
    rc, out = env.round()
    assert "digest: 1 recipient, 1 message" in out, out
    wait_until(lambda: len(env.digests()) == 2, 30, what="second digest")
    text, _ = parts(env.digests()[-1])
    assert "me second" in text and "me first" not in text


def test_digest_domains_limits_recipients(workdir, make_capture, make_postfix, make_postern):
    env = Env(workdir, make_capture, make_postfix, make_postern,
              conf={"quarantine.digest_domains": "example.org"})
    env.quarantine("dom", rcpts=("bob@example.org", "dave@other.test", "eve@sub.example.org"))
    rc, out = env.round()
    assert "digest: 1 recipient, 1 message" in out, out
    wait_until(lambda: len(env.digests()) == 1, 30, what="one digest")
    assert addrs(env.digests()[0].rcpts) == ["bob@example.org"]


def test_digest_refused_for_good_is_not_retried(workdir, make_capture, make_postfix,
                                               make_postern):
    env = Env(workdir, make_capture, make_postfix, make_postern, main_extra={
        "smtpd_recipient_restrictions":
            "check_sender_access inline:{ postmaster@postern.test=REJECT }, permit_mynetworks"})
    env.quarantine("gone")
    rc, out = env.round()
    assert rc == 0 and "digest: 0 recipients, 1 message; 1 refused by the backend" in out, out
    assert "refused for good; not retried" in out
    rc, out = env.round()
    assert "digest: 0 recipients, 0 messages" in out, out


def test_digest_deferred_is_listed_again(workdir, make_capture, make_postfix, make_postern):
    env = Env(workdir, make_capture, make_postfix, make_postern,
              defer_senders=["postmaster@postern.test"])
    env.quarantine("later")
    for _ in range(2):
        rc, out = env.round()
        assert rc == 1 and "digest: 0 recipients, 1 message; 1 digest not taken" in out, out
    assert env.digests() == []


def test_one_deferred_recipient_does_not_hold_the_others_back(workdir, make_capture,
                                                             make_postfix, make_postern):
    """Postfix answers 450 to carol's RCPT for one round (a texthash map
    the test rewrites; max_use = 1 makes each connection's smtpd read it
    afresh): bob's digest of that round was taken and must never list its
    messages again; carol's lists them next round."""
    defer = workdir.join("defer_rcpts")
    with open(defer, "w") as f:
        f.write("")
    env = Env(workdir, make_capture, make_postfix, make_postern, main_extra={
        "max_use": "1",
        "smtpd_recipient_restrictions":
            "check_recipient_access texthash:%s, permit_mynetworks" % defer})
    env.quarantine("one", rcpts=("bob@example.org", "carol@example.org"))
    with open(defer, "w") as f:
        f.write("carol@example.org 450 4.2.1 test deferral\n")
    rc, out = env.round()
    assert rc == 1 and "digest: 1 recipient, 1 message; 1 digest not taken" in out, out
    wait_until(lambda: len(env.digests()) == 1, 30, what="bob's digest")
    assert "me one" in parts(for_rcpt(env, "bob@example.org"))[0]
    assert "450 4.2.1 <carol@example.org>: Recipient address rejected: test deferral" in env.pf.maillog()
    with open(defer, "w") as f:
        f.write("")
    env.quarantine("two", rcpts=("bob@example.org", "carol@example.org"))
    rc, out = env.round()
    assert rc == 0 and "digest: 2 recipients, 2 messages" in out, out
    wait_until(lambda: len(env.digests()) == 3, 30, what="the second round's digests")
    bob = [parts(m)[0] for m in env.digests() if addrs(m.rcpts) == ["bob@example.org"]]
    assert len(bob) == 2 and "me two" in bob[1] and "me one" not in bob[1], bob
    carol = parts(for_rcpt(env, "carol@example.org"))[0]
    assert "me one" in carol and "me two" in carol
    rc, out = env.round()
    assert rc == 0 and "digest: 0 recipients, 0 messages" in out, out


def test_non_ascii_subject_is_rfc2047_encoded(env):
    env.quarantine("utf", subject="Grüße, please quarantine me utf")
    env.round()
    wait_until(lambda: len(env.digests()) == 1, 30, what="digest")
    raw = env.digests()[0].header("Subject")[0]
    assert "=?UTF-8?B?" in raw and "ü" not in raw
    decoded = str(email.header.make_header(email.header.decode_header(raw)))
    assert "Grüße, please quarantine me utf" in decoded
    text, html = parts(env.digests()[0])
    assert "Grüße" in text and "Grüße" in html


def test_hostile_subject_is_escaped_in_digest_and_page(env):
    hostile = "<script>alert(1)</script> & \"quoted\" 'x' please quarantine me hostile"
    env.quarantine("hostile", subject=hostile)
    env.round()
    wait_until(lambda: len(env.digests()) == 1, 30, what="digest")
    text, html = parts(env.digests()[0])
    assert hostile in text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot; &#39;x&#39;" in html
    status, page = http(link_for(env, "bob@example.org", "me hostile", 0))
    assert status == 200
    assert "<script>" not in page and "&lt;script&gt;" in page


def sign(env, qid, action, rcpt, lifetime=3600):
    """A link made in Python with the key Postern keeps in its database
    (policy/dlink.h's format): proves the format and lets a test make a
    link Postern would never send."""
    key = bytes.fromhex(env.p.rows("SELECT value FROM meta WHERE key = 'digest.key'")[0][0])
    payload = ("1\n%s\n%s\n%s\n%d" % (qid, action, rcpt,
                                       int(time.time()) + env.offset + lifetime)).encode()
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    mac = hmac.new(key, payload, hashlib.sha256).digest()
    return "%s/digest/%s.%s" % (env.p.settings["web.public_url"], b64(payload), b64(mac))


def test_links_refused_when_reused_expired_altered_or_foreign(env):
    qid = env.quarantine("refuse")
    env.round()
    wait_until(lambda: len(env.digests()) == 1, 30, what="digest")
    release = link_for(env, "bob@example.org", "me refuse", 0)
    # altered: one character of the payload or the signature changed
    head, sig = release.rsplit(".", 1)
    flip = lambda s, i: s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]
    for bad in (flip(head, len(head) - 5) + "." + sig, head + "." + flip(sig, 3),
                release[:-4], release + "AAAA"):
        for method in ("GET", "POST"):
            status, page = http(bad, method)
            assert status in (400, 403), (bad, status)
            assert "Nothing was done" in page or "not a whole" in page
    assert env.state(qid) == "held" and env.delivered("refuse") == []
    # foreign: well signed (with the key from the database, as Postern
    # signs), but for someone who is not a recipient of the message
    good = sign(env, qid, "release", "bob@example.org")
    assert http(good)[0] == 200          # the test signs as Postern does
    status, page = http(sign(env, qid, "release", "mallory@example.org"), "POST")
    assert status == 403 and "not for a recipient" in page
    assert env.state(qid) == "held"
    # a GET never acts (a link scanner's prefetch)
    status, page = http(release)
    assert status == 200 and 'method="post"' in page
    assert env.state(qid) == "held"
    # expired: past the link lifetime (1h) on the test clock
    env.set_clock(env.offset + 2 * 3600)
    status, page = http(release, "POST")
    assert status == 410 and "expired" in page
    assert env.state(qid) == "held" and env.delivered("refuse") == []
    env.set_clock(env.offset - 2 * 3600)
    # used once, then refused as already released
    status, page = http(release, "POST")
    assert status == 200 and "Released" in page
    wait_until(lambda: len(env.delivered("refuse")) == 1, 30, what="release via Postfix")
    for method in ("POST", "GET"):
        status, page = http(release, method)
        assert status == 409 and "already released" in page
    assert len(env.delivered("refuse")) == 1
    assert env.state(qid) == "released"


@pytest.fixture(scope="module")
def drv():
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    profile = tempfile.mkdtemp(prefix="postern-chromium-")
    opts = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
              "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
              "--user-data-dir=" + profile):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    d = webdriver.Chrome(service=Service(shutil.which("chromedriver") or
                                         "/usr/bin/chromedriver"), options=opts)
    d.set_page_load_timeout(30)
    yield d
    d.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_release_link_in_a_browser_delivers_exactly_once(env, drv):
    from selenium.webdriver.common.by import By
    qid = env.quarantine("browser", subject="<b>bold</b> please quarantine me browser")
    env.round()
    wait_until(lambda: len(env.digests()) == 1, 30, what="digest")
    url = link_for(env, "bob@example.org", "me browser", 0)
    from selenium.common.exceptions import (NoSuchElementException,
                                            StaleElementReferenceException)

    def title():
        # the confirm click navigates: an element read mid-load goes stale
        try:
            return drv.find_element(By.ID, "title").text
        except (StaleElementReferenceException, NoSuchElementException):
            return None
    drv.get(url)
    assert title() == "Release this message to your mailbox"
    assert drv.find_element(By.ID, "subject").text == "<b>bold</b> please quarantine me browser"
    assert drv.find_elements(By.TAG_NAME, "script") == []
    assert env.state(qid) == "held" and env.delivered("browser") == []
    drv.find_element(By.ID, "confirm").click()
    wait_until(lambda: title() == "Released", 30, what="the result page")
    assert "on its way to your mailbox" in drv.find_element(By.ID, "text").text
    wait_until(lambda: len(env.delivered("browser")) == 1, 30, what="release via Postfix")
    assert env.state(qid) == "released"
    drv.get(url)            # the same link again
    assert title() == "Already released"
    assert drv.find_elements(By.ID, "confirm") == []
    drv.refresh()
    assert title() == "Already released"
    wait_until(lambda: "removed" in env.pf.maillog(), 30, what="Postfix queue done")
    assert env.pf.maillog().count("message-id=<browser@example.net>") == 1
    assert len(env.delivered("browser")) == 1


def test_delete_and_allow_links(env):
    gone = env.quarantine("gone")
    keep = env.quarantine("keep", sender="friend@example.net")
    env.round()
    wait_until(lambda: len(env.digests()) == 1, 30, what="digest")
    status, page = http(link_for(env, "bob@example.org", "me gone", 1), "POST")
    assert status == 200 and "Deleted" in page
    assert env.state(gone) is None
    status, _ = http(link_for(env, "bob@example.org", "me gone", 1), "POST")
    assert status == 404
    status, page = http(link_for(env, "bob@example.org", "me keep", 2), "POST")
    assert status == 200 and "sender allowed" in page
    wait_until(lambda: len(env.delivered("keep")) == 1, 30, what="release via Postfix")
    rc, out, _ = env.cli("access", "list", "sender")
    assert "friend@example.net" in out and "digest" in out
    assert env.state(keep) == "released"


def test_allow_link_with_a_sender_no_entry_can_hold_still_releases(env):
    # a quoted local part with a space is a valid SMTP sender but no valid
    # allow entry: the link must release (once) rather than answer "try
    # again later" for ever
    qid = env.quarantine("oddsender", sender='"a b"@example.net')
    env.round()
    wait_until(lambda: len(env.digests()) == 1, 30, what="digest")
    status, page = http(link_for(env, "bob@example.org", "me oddsender", 2), "POST")
    assert status == 200 and "cannot go on the allow list" in page, page
    wait_until(lambda: len(env.delivered("oddsender")) == 1, 30, what="release via Postfix")
    assert env.state(qid) == "released"
    rc, out, _ = env.cli("access", "list", "sender")
    assert "a b" not in out
    assert "cannot be allowed" in env.p.log()


def test_allow_link_can_be_turned_off(env):
    qid = env.quarantine("noallow", sender="pal@example.net")
    env.round()
    wait_until(lambda: len(env.digests()) == 1, 30, what="digest")
    allow = link_for(env, "bob@example.org", "me noallow", 2)
    env.p.reload({"quarantine.digest_allow_link": "no"})
    # a GET never acts: poll with it until the reload is in force
    wait_until(lambda: http(allow)[0] == 403, 10, what="allow links refused")
    status, page = http(allow, "POST")
    assert status == 403 and "turned off" in page
    assert env.state(qid) == "held"
    rc, out, _ = env.cli("access", "list", "sender")
    assert "pal@example.net" not in out
    env.quarantine("noallow2")
    env.round()
    wait_until(lambda: len(env.digests()) == 2, 30, what="second digest")
    text, html = parts(env.digests()[-1])
    assert len(links(text)) == 2 and "always allow" not in text
    assert len(set(links(html))) == 2


def test_daemon_sends_the_round_on_schedule(workdir, make_capture, make_postfix, make_postern):
    env = Env(workdir, make_capture, make_postfix, make_postern,
              conf={"quarantine.digest": "hourly"})
    env.quarantine("sched")
    # the next full hour plus half a minute, on the test clock
    now = time.time() + env.offset
    env.set_clock(env.offset + int(3600 - now % 3600) + 30)
    wait_until(lambda: len(env.digests()) == 1, 30, what="the scheduled digest")
    assert "me sched" in parts(env.digests()[0])[0]
    wait_until(lambda: "digest: round sent: 1 recipients, 1 messages" in env.p.log(), 10,
               what="the round's log line")
    # the same slot is not sent again, and neither is the message
    rc, out = env.round()
    assert "digest: 0 recipients" in out


def test_round_claims_stay_a_days_worth(workdir, make_capture, make_postfix, make_postern):
    """Each scheduled round is claimed in the shared values
    (digest.slot.TIME); claiming one deletes the claims of slots more than a
    day older, so five daily rounds leave the last two, not five."""
    env = Env(workdir, make_capture, make_postfix, make_postern,
              conf={"quarantine.digest": "daily 08:00"})

    def claims():
        return [k for (k,) in env.p.rows(
            "SELECT key FROM meta WHERE key LIKE 'digest.slot.%' ORDER BY key")]
    slots = []
    for _ in range(5):
        # the next 08:00 (local time) plus half a minute, on the test clock
        now = time.time() + env.offset
        t = time.localtime(now)
        slot = int(time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 8, 0, 0, 0, 0, -1)))
        if slot <= now:
            slot = int(time.mktime((t.tm_year, t.tm_mon, t.tm_mday + 1, 8, 0, 0, 0, 0, -1)))
        env.set_clock(env.offset + int(slot - now) + 30)
        slots.append(slot)
        wait_until(lambda: "digest.slot.%d" % slot in claims(), 30,
                   what="the claim of the round of %d" % slot)
    # the claim is written before the old ones are deleted (two statements):
    # the test can look in between
    wait_until(lambda: len(claims()) <= 2, 10, what="the old claims deleted")
    left = claims()
    assert "digest.slot.%d" % slots[-1] in left and len(left) <= 2, (left, slots)
    assert set(left) <= {"digest.slot.%d" % s for s in slots[-2:]}, (left, slots)


def test_configtest_requires_public_url_and_a_schedule(make_postern, postfix):
    p = make_postern(postfix.addr, conf={"quarantine.digest": "daily 25:00"}, start=False)
    rc, out = p.configtest()
    assert rc == 1 and "quarantine.digest 'daily 25:00' is not a schedule" in out
    p.settings["quarantine.digest"] = "daily 08:00"
    rc, out = p.configtest()
    assert rc == 1 and "web.public_url is empty" in out
    p.settings["web.public_url"] = "http://127.0.0.1:1"
    p.settings["quarantine.digest_link_lifetime"] = "60d"
    rc, out = p.configtest()
    assert rc == 1 and "outlive its message" in out
    del p.settings["quarantine.digest_link_lifetime"]
    rc, out = p.configtest()
    assert rc == 0, out
