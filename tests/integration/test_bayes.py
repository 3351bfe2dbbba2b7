"""The classifier end to end: `postern learn` (files, directories, mbox;
once per message; moves; --forget), `postern check` before and after the
minimum training, the running daemon picking up what another process
learned (X-Spam header and verdict row through the proxy), autolearn and
its balance guard, and the token cap holding memory bounded over 10,000
learned messages.

Real parts: build/postern (learn, check, serve), the harness's unbound and
capture backend, smtplib clients, the database read from outside
(Postern.rows: SQLite or PostgreSQL); every message is written by the test.
"""
import json
import math
import os
import random
import re
import subprocess
import time

from harness import POSTERN_BIN, wait_until
from harness.client import smtp_client
from webapi import TOKEN, Http

SPAM_WORDS = ("viagra cheap pills winner casino mortgage refinance click unsubscribe "
              "offer rolex bonus prize guaranteed lowest").split()
HAM_WORDS = ("meeting agenda kernel patch review lunch report build release thanks "
             "minutes draft schedule compiler branch").split()


def message(spam, n, words=40, rnd=None):
    rnd = rnd or random.Random(n * 2 + spam)
    vocab = SPAM_WORDS if spam else HAM_WORDS
    subj = ("Great offer %d" if spam else "Status report %d") % n
    body = " ".join(rnd.choice(vocab) for _ in range(words))
    return ("From: %s\r\nTo: bob@example.org\r\nSubject: %s\r\n"
            "Message-ID: <%d.%d@test>\r\n\r\n%s\r\n" % (
                "Promo <promo@deals.test>" if spam else "Alice <alice@corp.test>",
                subj, n, spam, body))


def write(directory, name, text):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def learn(conf_path, *args):
    r = subprocess.run([POSTERN_BIN, "learn", "-c", conf_path, *args],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return r.stderr


def meta(p):
    return p.rows("SELECT nspam, nham, ntokens FROM bayes_meta")[0]


def token_count(p):
    return p.rows("SELECT count(*) FROM bayes_tokens")[0][0]


def check(p, path):
    r = subprocess.run([POSTERN_BIN, "check", "-c", p.conf_path, "--ip", "192.0.2.7",
                        "--from", "a@sender.test", "--rcpt", "bob@example.org",
                        "--only", "bayes", path], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def prepared(make_postern, backend, conf=None):
    c = {"bayes.enabled": "yes", "bayes.min_learned": "10", "spf.enabled": "no", "dkim.enabled": "no",
         "dmarc.enabled": "no"}
    c.update(conf or {})
    p = make_postern(backend, conf=c, start=False)
    p.write_config()
    return p


def train(p, workdir, n=30):
    """n spam files in a directory, n ham messages in one mbox."""
    sdir = workdir.join("spam")
    for i in range(n):
        write(sdir, "%03d.eml" % i, message(1, i))
    mbox = "".join("From alice@corp.test Mon Jan  1 00:00:00 2024\n%s\n" %
                   message(0, i).replace("\r\n", "\n") for i in range(n))
    learn(p.conf_path, "spam", sdir)
    learn(p.conf_path, "ham", write(workdir.path, "ham.mbox", mbox))


def test_learn_once_move_forget(make_postern, capture, workdir):
    p = prepared(make_postern, capture.addr)
    d = workdir.join("one")
    paths = [write(d, "%d.eml" % i, message(1, 100 + i)) for i in range(3)]
    out = learn(p.conf_path, "spam", *paths)
    assert "3 messages: 3 changed" in out and "messages/s" in out, out
    assert meta(p)[:2] == (3, 0)
    # the same messages again, as a directory: nothing moves
    out = learn(p.conf_path, "spam", d)
    assert "3 messages: 0 changed" in out and "3 already so" in out, out
    before = token_count(p)
    assert meta(p)[:2] == (3, 0)
    # one of them as ham: moved, the totals follow exactly
    out = learn(p.conf_path, "ham", paths[0])
    assert "1 changed (1 moved" in out, out
    assert meta(p)[:2] == (2, 1)
    assert token_count(p) == before
    # forgotten, twice: the second time nothing is left to forget
    learn(p.conf_path, "ham", "--forget", paths[0])
    assert meta(p)[:2] == (2, 0)
    out = learn(p.conf_path, "spam", "--forget", paths[0])
    assert "0 changed" in out, out
    learn(p.conf_path, "spam", "--forget", *paths[1:])
    assert meta(p)[:2] == (0, 0)
    assert p.rows("SELECT count(*) FROM bayes_tokens WHERE spam + ham > 0") == [(0,)]


def test_learn_refuses_bad_usage(make_postern, capture, workdir):
    p = prepared(make_postern, capture.addr)
    r = subprocess.run([POSTERN_BIN, "learn", "-c", p.conf_path, "maybe", "x"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "usage" in r.stderr
    r = subprocess.run([POSTERN_BIN, "learn", "-c", p.conf_path, "spam",
                        workdir.join("missing.eml")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "missing.eml" in r.stderr


def test_check_untrained_then_trained(make_postern, capture, workdir):
    p = prepared(make_postern, capture.addr)
    spammy = write(workdir.path, "spammy.eml", message(1, 900))
    hammy = write(workdir.path, "hammy.eml", message(0, 901))
    j = check(p, spammy)
    assert j["bayes"]["result"] == "untrained"
    assert j["bayes"]["score"] == 0
    assert "not enough training" in j["bayes"]["reason"]
    train(p, workdir)
    j = check(p, spammy)
    b = j["bayes"]
    assert b["result"] == "spam" and b["score"] == 5.0, b
    assert b["probability"] > 0.99
    assert b["learned_spam"] == 30 and b["learned_ham"] == 30
    assert b["top_tokens"] and b["top_tokens"][0]["probability"] > 0.9
    assert any(t["token"] in SPAM_WORDS or t["token"].startswith("subject:")
               for t in b["top_tokens"]), b["top_tokens"]
    assert j["verdict"] == "tag"
    j = check(p, hammy)
    assert j["bayes"]["result"] == "ham" and j["bayes"]["score"] == -3.0, j["bayes"]
    assert j["bayes"]["probability"] < 0.01


def test_markov_sign_and_minimum(make_postern, capture, workdir):
    """The character-level Markov part through `postern check`: silent
    while a class has fewer than bayes.min_learned messages learned with
    its grams (here a database first learned with bayes.markov = no, as an
    older version learned it), its counts moving with learn, relearn and
    forget, then the right sign for a spammy and a hammy message, combined
    into the probability as docs/bayes.md says. The verdict takes
    bayes.spam_threshold while the words decide alone and
    bayes.markov_spam_threshold once the Markov part weighs in (set to 1
    here while it must not matter)."""
    p = prepared(make_postern, capture.addr, {"bayes.markov": "no",
                                              "bayes.markov_spam_threshold": "1"})
    spammy = write(workdir.path, "spammy.eml", message(1, 900))
    hammy = write(workdir.path, "hammy.eml", message(0, 901))
    train(p, workdir)    # 30 and 30, words only
    b = check(p, spammy)["bayes"]
    assert b["result"] == "spam" and b["markov"] is None, b
    assert b["markov_learned_spam"] == 0 and "markov" not in b["reason"], b
    assert b["probability"] == b["words_probability"]
    p.settings["bayes.markov"] = "yes"
    p.write_config()
    b = check(p, spammy)["bayes"]
    assert b["result"] == "spam" and b["markov"] is None, b
    assert b["probability"] == b["words_probability"]
    assert "; markov not enough training: 0 spam, 0 ham" in b["reason"], b["reason"]
    d = workdir.join("grams")
    spam = [write(d, "s%d.eml" % i, message(1, 200 + i)) for i in range(10)]
    ham = [write(d, "h%d.eml" % i, message(0, 300 + i)) for i in range(10)]
    learn(p.conf_path, "spam", *spam[:9])
    learn(p.conf_path, "ham", *ham[:9])
    b = check(p, spammy)["bayes"]
    assert b["markov"] is None and (b["markov_learned_spam"], b["markov_learned_ham"]) == (9, 9)
    assert "markov not enough training: 9 spam, 9 ham" in b["reason"], b["reason"]
    assert b["result"] == "spam", b
    p.settings["bayes.markov_spam_threshold"] = "0.6"
    p.write_config()
    learn(p.conf_path, "spam", spam[9])
    learn(p.conf_path, "ham", ham[9])
    for path, sign, result in ((spammy, 1, "spam"), (hammy, -1, "ham")):
        b = check(p, path)["bayes"]
        assert (b["markov_learned_spam"], b["markov_learned_ham"]) == (10, 10), b
        assert b["markov"] is not None and b["markov"] * sign > 0.1, b
        assert b["result"] == result, b
        t = (2 * b["words_probability"] - 1) + 5 * b["markov"]
        assert abs(b["probability"] - 1 / (1 + math.exp(-2 * t))) < 1e-9, b
        assert re.search(r"; markov [+-]\d\.\d{4}, words \d\.\d{4}", b["reason"]), b["reason"]
    # relearned as the other class, then forgotten: the gram-learned
    # counts follow, and below the minimum the part is silent again
    learn(p.conf_path, "ham", spam[0])
    b = check(p, spammy)["bayes"]
    assert (b["markov_learned_spam"], b["markov_learned_ham"]) == (9, 11) and b["markov"] is None
    learn(p.conf_path, "ham", "--forget", spam[0])
    b = check(p, spammy)["bayes"]
    assert (b["markov_learned_spam"], b["markov_learned_ham"]) == (9, 10) and b["markov"] is None
    # a weight of 0 shows the Markov part and keeps the words' probability
    learn(p.conf_path, "spam", spam[0])
    p.settings["bayes.markov_weight"] = "0"
    p.write_config()
    p.settings["bayes.markov_spam_threshold"] = "1"
    p.write_config()
    b = check(p, spammy)["bayes"]
    assert b["markov"] > 0 and b["probability"] == b["words_probability"], b
    assert b["result"] == "spam", b    # the words' threshold, 0.85
    p.settings["bayes.markov_weight"] = "0.01"   # weighed, lightly: below 1
    p.write_config()
    b = check(p, spammy)["bayes"]
    assert b["markov"] > 0 and 0.85 <= b["probability"] < 1, b
    assert b["result"] == "unsure", b  # weighed in: the Markov threshold, 1


def send(port, msg):
    with smtp_client(port) as s:
        s.ehlo("client.example.net")
        assert s.mail("sender@deals.test")[0] == 250
        assert s.rcpt("bob@example.org")[0] == 250
        return s.data(msg.encode())


def verdict_checks(p, subject):
    got = p.rows("SELECT checks, verdict FROM verdicts WHERE subject = ?", (subject,))
    return (json.loads(got[0][0]), got[0][1]) if got else (None, None)


def test_proxy_sees_learning_of_another_process(make_postern, capture, workdir):
    p = prepared(make_postern, capture.addr, {"bayes.autolearn": "no",
                                              "web.api_token": TOKEN})
    p.start()
    code, _ = send(p.port, message(1, 500))
    assert code == 250
    msgs = capture.wait_messages(1)
    assert msgs[0].header("X-Spam-Flag") == []
    wait_until(lambda: verdict_checks(p, "Great offer 500")[0] is not None, 15,
               what="the untrained verdict row")
    checks, _ = verdict_checks(p, "Great offer 500")
    b = [c for c in checks if c["check"] == "bayes"][0]
    assert b["result"] == "untrained" and "not enough training" in b["reason"]
    # learned by another process while the daemon runs: seen within a second
    train(p, workdir)

    def classified():
        code, _ = send(p.port, message(1, 501 + len(capture.messages)))
        return capture.messages[-1].header("X-Spam-Flag") == ["YES"]
    wait_until(classified, 20, interval=0.5, what="the daemon to use the new counts")
    spam_subject = capture.messages[-1].header("Subject")[0]
    code, _ = send(p.port, message(0, 777))
    assert code == 250
    last = capture.wait_messages(len(capture.messages))[-1]
    assert last.header("X-Spam-Flag") == []
    assert last.header("X-Spam-Score") == ["-3.0"]
    wait_until(lambda: verdict_checks(p, spam_subject)[0] is not None, 15,
               what="the spam verdict row")
    checks, verdict = verdict_checks(p, spam_subject)
    b = [c for c in checks if c["check"] == "bayes"][0]
    assert verdict == "tag" and b["result"] == "spam" and b["score"] == 5.0
    m = re.match(r"probability (\d\.\d+) .*; top: (.*)", b["reason"])
    assert m and float(m.group(1)) >= 0.99, b["reason"]
    assert "viagra" in m.group(2) or "subject:offer" in m.group(2), b["reason"]
    # the counters: learned per class, tokens, verdicts by result
    api = Http(p.web_port, token=TOKEN)
    st, _, text = api.get("/metrics")
    assert st == 200
    text = "\n".join(l for l in text.decode().splitlines() if l.startswith("postern_bayes"))
    assert 'postern_bayes_learned{class="spam"} 30' in text
    assert 'postern_bayes_learned{class="ham"} 30' in text
    # (untrained: the first message, and any sent before the daemon's copy
    # caught up with the learning)
    untrained = int(re.search(r'verdicts_total\{result="untrained"\} (\d+)', text).group(1))
    assert untrained >= 1
    assert re.search(r'postern_bayes_verdicts_total\{result="spam"\} [1-9]', text)
    assert 'postern_bayes_verdicts_total{result="ham"} 1' in text
    assert re.search(r"postern_bayes_tokens [1-9]\d*", text)
    st, _, stats = api.get("/api/stats")
    assert st == 200
    bs = stats["bayes"]
    assert bs["learned_spam"] == 30 and bs["learned_ham"] == 30 and bs["tokens"] > 0
    assert bs["verdicts"]["ham"] == 1 and bs["verdicts"]["untrained"] == untrained


def test_autolearn_from_other_checks_with_balance(make_postern, capture, workdir):
    p = prepared(make_postern, capture.addr, {
        "bayes.min_learned": "2", "bayes.autolearn_spam_score": "4",
        "bayes.autolearn_balance": "2", "policy.quarantine_score": "50",
        "policy.reject_score": "60"})
    rules = write(workdir.path, "rules.txt", "pills | subject | /Great offer/ | score 5\n")
    r = subprocess.run([POSTERN_BIN, "rules", "import", "-c", p.conf_path, rules],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    p.start()
    for i in range(2):
        assert send(p.port, message(1, 600 + i))[0] == 250
    wait_until(lambda: meta(p)[0] == 2, 15, what="two autolearned spam")
    time.sleep(1.2)   # BAYES_REFRESH_MS: the daemon's copy then knows both
    # the same message again is not learned twice
    assert send(p.port, message(1, 600))[0] == 250
    # spam is now 2 against 0 ham: past min_learned and the balance, so no more
    for i in range(3):
        assert send(p.port, message(1, 610 + i))[0] == 250
    capture.wait_messages(6)
    assert p.log().count("bayes: autolearn as spam") == 2
    assert meta(p)[:2] == (2, 0)
    # a message without the rule scores 0: neither spam nor ham (-1) enough
    assert send(p.port, message(0, 620))[0] == 250
    assert meta(p)[:2] == (2, 0)


def test_autolearn_skips_what_the_classifier_knows(make_postern, capture, workdir):
    """bayes.autolearn_until: a message the other checks call spam and the
    classifier already calls spam past 0.95 teaches nothing and is not
    learned; one the other checks call ham while the classifier calls it
    spam (its error) is. test_classified_on_the_loop_as_on_a_worker shows
    the first kind learned with the key at 1."""
    p = prepared(make_postern, capture.addr, {
        "web.api_token": TOKEN, "log.level": "debug", "rbl.zones": "",
        "rbl.rhsbl_zones": "", "bayes.autolearn_spam_score": "4",
        "bayes.autolearn_balance": "100", "policy.quarantine_score": "50",
        "policy.reject_score": "60"})
    rules = write(workdir.path, "rules.txt", "offer | subject | /Great offer/ | score 5\n"
                  "trusted | subject | /Trusted/ | score -2\n")
    r = subprocess.run([POSTERN_BIN, "rules", "import", "-c", p.conf_path, rules],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    train(p, workdir)
    known = message(1, 800)
    assert check(p, write(workdir.path, "known.eml", known))["bayes"]["probability"] >= 0.95
    p.start()
    assert send(p.port, known)[0] == 250
    assert send(p.port, message(1, 801).replace("Great offer", "Trusted"))[0] == 250
    got = capture.wait_messages(2)
    assert sorted(m.header("X-Spam-Score")[0] for m in got) == ["10.0", "3.0"]
    wait_until(lambda: meta(p)[1] == 31, 15, what="the message learned as ham")
    assert meta(p)[0] == 30
    assert metric(p, 'postern_bayes_autolearned_total{class="spam"}') == 0
    assert metric(p, 'postern_bayes_autolearned_total{class="ham"}') == 1
    assert p.log().count("no autolearn as spam: the classifier already says") == 1


def long_message(n, subject, first, rnd, frm="Alice <alice@corp.test>"):
    """A message of about 4 KB of words drawn from first, then 300 words
    ("tail0".."tail299") found nowhere else."""
    body = " ".join(rnd.choice(first) for _ in range(600))
    tail = " ".join("tail%d" % i for i in range(300))
    return ("From: %s\r\nTo: bob@example.org\r\n"
            "Subject: %s %d\r\nMessage-ID: <%d.long@test>\r\n\r\n%s\r\n%s\r\n"
            % (frm, subject, n, n, body, tail))


def test_first_pass_decides_long_messages(make_postern, capture, workdir):
    """bayes.first_pass_bytes (1500): a long message the classifier is sure
    of from its first 1,500 bytes of text (and the first half of the Markov
    part's) is decided on them, with the verdict that reading all of it
    gives; one it is unsure of is read whole (the same probability and
    Markov mean as with the key at 0). An autolearn of a message decided on
    its first bytes learns all of its text: afterwards the words after the
    cut are known, and the database holds what `postern learn` of the
    message makes."""
    p = prepared(make_postern, capture.addr, {
        "web.api_token": TOKEN, "rbl.zones": "", "rbl.rhsbl_zones": "",
        "bayes.autolearn_spam_score": "4", "bayes.autolearn_balance": "100",
        "policy.quarantine_score": "50", "policy.reject_score": "60"})
    rules = write(workdir.path, "rules.txt", "offer | subject | /Great offer/ | score 5\n")
    r = subprocess.run([POSTERN_BIN, "rules", "import", "-c", p.conf_path, rules],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    train(p, workdir)
    hammy = write(workdir.path, "long-ham.eml",
                  long_message(1, "Status report", HAM_WORDS, random.Random(1)))
    # words nobody learned, from a sender nobody wrote from: unsure
    unknown = write(workdir.path, "long-unknown.eml",
                    long_message(2, "t", ["q%d" % i for i in range(500)], random.Random(2),
                                 frm="x@y.test"))
    first = {path: check(p, path)["bayes"] for path in (hammy, unknown)}
    p.settings["bayes.first_pass_bytes"] = "0"
    p.write_config()
    whole = {path: check(p, path)["bayes"] for path in (hammy, unknown)}
    del p.settings["bayes.first_pass_bytes"]
    p.write_config()
    assert first[hammy]["result"] == whole[hammy]["result"] == "ham", (first, whole)
    assert "; sure on a first pass: 1500 bytes of text, 1500 of the Markov text" in \
        first[hammy]["reason"], first[hammy]
    assert "sure on" not in whole[hammy]["reason"]
    assert first[unknown]["result"] == "unsure", first[unknown]
    assert "sure on" not in first[unknown]["reason"], first[unknown]
    assert first[unknown]["probability"] == whole[unknown]["probability"]
    assert first[unknown]["markov"] == whole[unknown]["markov"]
    # the other checks call it spam, the classifier (sure, on its first
    # bytes) ham: learned as spam, from all of its text
    offer = long_message(3, "Great offer", HAM_WORDS, random.Random(1))
    b = check(p, write(workdir.path, "offer.eml", offer))["bayes"]
    assert b["result"] == "ham" and "sure on a first pass" in b["reason"], b
    tails = write(workdir.path, "tails.eml", "From: x@y.test\r\nSubject: t\r\n\r\n%s\r\n"
                  % " ".join("tail%d" % i for i in range(300)))
    assert not any(t["token"].startswith("tail") for t in check(p, tails)["bayes"]["top_tokens"])
    p.start()
    assert send(p.port, offer)[0] == 250
    wait_until(lambda: meta(p)[0] == 31, 15, what="the autolearned spam")
    top = check(p, tails)["bayes"]["top_tokens"]
    assert any(t["token"].startswith("tail") for t in top), top
    # the same tokens and Markov grams as `postern learn` of the message
    # into the same training gives
    q = prepared(make_postern, capture.addr)
    train(q, workdir)
    learn(q.conf_path, "spam", write(workdir.path, "offer-learn.eml", offer))
    assert meta(q) == meta(p)


def test_token_cap_bounds_memory(make_postern, capture, workdir):
    cap = 20000
    # two workers: each worker's first message grows memory once (its
    # database connection, its allocator arena), which is not what we measure
    # (the Markov part's grams share the cap: 256 bytes of each message's
    # text still add up to 500 gram and context rows to its ~120 tokens;
    # the default 6,000 bytes made this test four times as long)
    p = prepared(make_postern, capture.addr, {"bayes.max_tokens": str(cap),
                                              "bayes.autolearn": "no",
                                              "bayes.markov_bytes": "256",
                                              "policy.workers": "2"})
    p.start()
    rnd = random.Random(7)
    rss = []
    for chunk in range(10):
        # 1,000 messages of fresh random words: ~120,000 tokens uncapped
        text = "".join("From x@test Mon Jan  1 00:00:00 2024\n%s\n" % (
            "Subject: m%d\n\n%s\n" % (chunk * 1000 + i, " ".join(
                "w%x" % rnd.getrandbits(40) for _ in range(40)))) for i in range(1000))
        learn(p.conf_path, "spam" if chunk % 2 else "ham",
              write(workdir.path, "chunk.mbox", text))
        assert token_count(p) <= cap
        assert meta(p)[2] <= cap
        # the daemon refreshes its copy at its next message
        send(p.port, message(1, 10000 + chunk))
        with open("/proc/%d/status" % p.proc.pid) as f:
            rss.append(int([l for l in f if l.startswith("VmRSS:")][0].split()[1]))
    assert meta(p)[:2] == (5000, 5000)
    # after the copy reached the cap, memory stays flat (kB; a table of
    # 20,000 tokens is 512 kB, so 8 MB is slack for the allocator)
    assert max(rss[3:]) - rss[3] < 8 * 1024, rss


def test_bulk_learning_never_defers_mail(make_postern, capture, workdir):
    """`postern learn` of a big mailbox commits a batch after a batch, with
    hardly a pause between them; the daemon's writer, which needs the same
    write lock for each verdict row, must still get its turn, or after its
    busy timeout it calls the database broken and answers 451 at MAIL."""
    p = prepared(make_postern, capture.addr, {"bayes.autolearn": "no"})
    p.start()
    rnd = random.Random(11)
    mbox = write(workdir.path, "bulk.mbox", "".join(
        "From x@test Mon Jan  1 00:00:00 2024\nSubject: b%d\n\n%s\n" % (
            i, " ".join("w%x" % rnd.getrandbits(40) for _ in range(40)))
        for i in range(4000)))
    job = subprocess.Popen([POSTERN_BIN, "learn", "-c", p.conf_path, "spam", mbox],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    codes, n, t_end = [], 0, time.monotonic() + 120
    try:
        # mail for as long as the learn runs (bounded in count and time)
        while job.poll() is None and n < 2000 and time.monotonic() < t_end:
            codes.append(send(p.port, message(1, 20000 + n))[0])
            n += 1
    finally:
        _, err = job.communicate(timeout=120)
    assert job.returncode == 0, err
    # the learn outlasted the writer's busy timeout many times over
    assert n >= 50, n
    assert codes == [250] * n
    assert "writes failing" not in p.log()
    wait_until(lambda: p.rows("SELECT count(*) FROM verdicts")[0][0] == n, 15,
               what="every verdict row")


def metric(p, name):
    st, _, text = Http(p.web_port, token=TOKEN).get("/metrics")
    assert st == 200
    m = re.search(r"^%s (\d+)$" % re.escape(name), text.decode(), re.M)
    assert m, name
    return int(m.group(1))


def test_classified_on_the_loop_as_on_a_worker(make_postern, capture, workdir):
    """Within policy.inline_bytes the DATA stage -- the classifier and a
    content rule -- runs on the I/O loop, without the hand-off to a worker,
    and gives the headers a worker gives (policy.inline_bytes = 0). Each
    message's verdict and autolearn count once, also when the loop's run
    is undone because the decision is a quarantine (a worker stores it)."""
    from policyenv import stage_counts
    rules = write(workdir.path, "rules.txt", "offer | subject | /Great offer/ | score 4\n"
                  "held | body | /holdme/ | score 4\n")
    n = 6
    seen = {}
    for inline in ("65536", "0"):
        p = prepared(make_postern, capture.addr, {
            "web.api_token": TOKEN, "policy.inline_bytes": inline, "rbl.zones": "",
            "rbl.rhsbl_zones": "", "bayes.autolearn_spam_score": "4",
            "bayes.autolearn_balance": "100", "bayes.autolearn_until": "1",
            "policy.quarantine_score": "12", "policy.reject_score": "50"})
        r = subprocess.run([POSTERN_BIN, "rules", "import", "-c", p.conf_path, rules],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        train(p, workdir)
        p.start()
        send(p.port, message(0, 799))    # warm: rDNS cached, rule set read
        before = stage_counts(p.web_port, TOKEN)
        got = capture.wait_messages(len(capture.accepted()))
        base = len(got)
        for i in range(n):
            assert send(p.port, message(1, 700 + i))[0] == 250
        after = stage_counts(p.web_port, TOKEN)
        worker = after[1] - before[1]
        if inline == "0":
            assert worker >= n                 # every DATA stage on a worker
        else:
            assert worker < n, (before, after)  # some (most) on the loop
        got = capture.wait_messages(base + n)[base:]
        seen[inline] = sorted((m.header("Subject")[0], m.header("X-Spam-Score"),
                               m.header("X-Spam-Flag")) for m in got)
        # quarantined: decided on the loop, undone, stored by a worker
        spam = message(1, 750).replace("\r\n\r\n", "\r\n\r\nholdme ", 1)
        assert send(p.port, spam)[0] == 250
        wait_until(lambda: p.rows("SELECT count(*) FROM quarantine")[0][0] == 1, 15,
                   what="the quarantined message")
        assert len(capture.wait_messages(base + n)) == base + n
        assert metric(p, 'postern_bayes_verdicts_total{result="spam"}') == n + 1
        assert metric(p, 'postern_bayes_autolearned_total{class="spam"}') == n + 1
        wait_until(lambda: meta(p)[0] == 30 + n + 1, 15, what="the autolearned spam")
        assert p.log().count("bayes: autolearn as spam") == n + 1
        p.stop()
    assert seen["65536"] == seen["0"]
    assert all(flag == ["YES"] and score == ["9.0"] for _, score, flag in seen["0"])
