"""DNS block and allow lists (RFC 5782) through Postern's policy, against a
real unbound serving list zones: listed, not listed, several codes with
filters, a list that times out, list-side error codes (127.255.255.x),
allow lists with negative weights, IPv6 nibble names, RHSBL for the HELO
name and the sender domain, a bad zones setting, and over SMTP: a client
rejected at connect never reaches the backend.
"""
import pytest

from harness.capture import Capture
from harness.net import wait_until
from policyenv import PolicyEnv, smtp_session, stage_counts

RECORDS = [
    # bl.test: 192.0.2.1 plain, .3 with two codes, .5 a list-side error
    "1.2.0.192.bl.test. 300 IN A 127.0.0.2",
    "3.2.0.192.bl.test. 300 IN A 127.0.0.4",
    "3.2.0.192.bl.test. 300 IN A 127.0.0.10",
    "5.2.0.192.bl.test. 300 IN A 127.255.255.254",
    # 2001:db8::1 in nibble form
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test. 300 IN A 127.0.0.2",
    # the allow list knows 192.0.2.7 and 192.0.2.1
    "7.2.0.192.wl.test. 300 IN A 127.0.0.2",
    "1.2.0.192.wl.test. 300 IN A 127.0.0.2",
    # domain lists
    "spam.example.dbl.test. 300 IN A 127.0.1.2",
    "badhelo.example.dbl.test. 300 IN A 127.0.1.2",
]


@pytest.fixture(scope="module")
def env():
    e = PolicyEnv(RECORDS, slow_zones=["slow.test."],
                  conf="[greylist]\nenabled = no\n").start()
    yield e
    e.stop()


def with_zones(env, zones, rhsbl="", extra=""):
    env.write_conf("[greylist]\nenabled = no\n[rbl]\nzones = %s\nrhsbl_zones = %s\n%s"
                   % (zones, rhsbl, extra))


def results(doc, check):
    return [r for r in doc["results"] if r["check"] == check]


def test_listed_client_rejected_at_connect_with_the_list_named(env):
    with_zones(env, "bl.test*10")
    d = env.check("192.0.2.1", helo="h.example", mail="a@example.org", rcpts=["b@example.net"])
    assert d["verdict"] == "reject"
    assert d["stage"] == "connect"
    assert d["reply"] == "554 5.7.1 Service unavailable; client 192.0.2.1 listed at bl.test"


def test_not_listed_accepted(env):
    with_zones(env, "bl.test*10")
    d = env.check("192.0.2.99", mail="a@example.org", rcpts=["b@example.net"])
    assert d["verdict"] == "accept"
    assert results(d, "rbl") == []


def test_weight_below_reject_only_adds_score(env):
    with_zones(env, "bl.test*4")
    d = env.check("192.0.2.1")
    assert d["verdict"] == "accept"
    assert d["score"] == 4
    assert results(d, "rbl")[0]["result"] == "listed"


def test_return_code_filters(env):
    # 192.0.2.3 answers 127.0.0.4 and 127.0.0.10
    with_zones(env, "bl.test=127.0.0.2*10")
    assert env.check("192.0.2.3")["verdict"] == "accept"
    with_zones(env, "bl.test=127.0.0.[10..11]*10")
    assert env.check("192.0.2.3")["verdict"] == "reject"
    with_zones(env, "bl.test=127.0.0.[3;4]*10")
    assert env.check("192.0.2.3")["verdict"] == "reject"
    assert env.check("192.0.2.1")["verdict"] == "accept"      # 127.0.0.2 filtered out


def test_weights_add_up_once_per_list(env):
    # two codes from one list count once; two lists both count
    with_zones(env, "bl.test*3, bl.test=127.0.0.4*2")
    d = env.check("192.0.2.3")
    assert d["score"] == 5
    assert len(results(d, "rbl")) == 2


def test_list_that_times_out_counts_as_not_listed(env):
    with_zones(env, "slow.test*10, bl.test*10")
    d = env.check("192.0.2.99")
    assert d["verdict"] == "accept"
    assert [r["result"] for r in results(d, "rbl")] == ["temperror"]
    assert "slow.test did not answer" in d["_log"]
    assert "counted as not listed" in d["_log"]
    # the other list still works in the same run
    assert env.check("192.0.2.1")["verdict"] == "reject"


def test_list_side_error_code_ignored_with_warning(env):
    with_zones(env, "bl.test*10")
    d = env.check("192.0.2.5")
    assert d["verdict"] == "accept"
    assert results(d, "rbl") == []
    assert "127.255.255.254" in d["_log"] and "ignored" in d["_log"]


def test_allow_list_negative_weight(env):
    with_zones(env, "bl.test*5, wl.test*-3")
    d = env.check("192.0.2.1")                # on both
    assert d["score"] == 2
    assert results(d, "dnswl")[0]["result"] == "listed"
    d = env.check("192.0.2.7")
    assert d["score"] == -3
    assert d["verdict"] == "accept"


def test_ipv6_nibble_query(env):
    with_zones(env, "bl.test*10")
    assert env.check("2001:db8::1")["verdict"] == "reject"
    assert env.check("2001:db8::2")["verdict"] == "accept"


def test_rhsbl_sender_domain_and_helo(env):
    with_zones(env, "", rhsbl="dbl.test*10")
    d = env.check("192.0.2.99", helo="mail.good.example", mail="x@spam.example",
                  rcpts=["b@example.net"])
    assert d["verdict"] == "reject"
    assert d["stage"] == "mail"
    assert d["reply"] == "550 5.7.1 Service unavailable; sender domain spam.example listed at dbl.test"
    d = env.check("192.0.2.99", helo="badhelo.example", mail="x@good.example")
    assert d["verdict"] == "reject"
    assert d["stage"] == "helo"
    assert "HELO name badhelo.example listed at dbl.test" in d["reply"]
    d = env.check("192.0.2.99", helo="[192.0.2.99]", mail="x@good.example",
                  rcpts=["b@example.net"])
    assert d["verdict"] == "accept"


def test_bad_zone_setting_is_a_config_error(env):
    with_zones(env, "bl.test=127.0.0.[9..2]")
    import subprocess
    from policyenv import POSTERN
    p = subprocess.run([POSTERN, "check", "-c", env.conf, "--ip", "192.0.2.1"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "bad DNS list 'bl.test=127.0.0.[9..2]'" in p.stderr
    p = subprocess.run([POSTERN, "configtest", "-c", env.conf],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "rbl.zones: bad DNS list 'bl.test=127.0.0.[9..2]'" in p.stderr
    with_zones(env, "bl.test=127.0.0.[2..9]*3", rhsbl="dbl.test*x")
    p = subprocess.run([POSTERN, "configtest", "-c", env.conf],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "rbl.rhsbl_zones: bad DNS list 'dbl.test*x'" in p.stderr


def test_smtp_listed_client_never_reaches_backend():
    sink = Capture().start()
    e = PolicyEnv(["1.0.0.127.bl.test. 300 IN A 127.0.0.2"],
                  conf="[greylist]\nenabled = no\n[rbl]\nzones = bl.test*10\n").start()
    try:
        e.serve(sink)
        s = smtp_session(e.port, source="127.0.0.1")
        assert s.banner[0] == 554
        assert b"listed at bl.test" in s.banner[1]
        s.close()
        # an unlisted source address goes through
        s = smtp_session(e.port, source="127.0.0.2")
        assert s.banner[0] == 220
        s.sendmail("a@example.org", ["b@example.net"], b"Subject: hi\r\n\r\nhello\r\n")
        s.quit()
        assert len(sink.accepted()) == 1
        assert e.stop_serving() == 0
    finally:
        e.stop()
        sink.stop()


@pytest.mark.netns
def test_no_lookup_leaves_the_configured_resolver():
    """In a private network namespace whose system resolver is a trap:
    block lists, domain lists and a session over SMTP ask only the test's
    unbound (dns.resolver), never /etc/resolv.conf."""
    from harness.netns import trap_system_resolver
    trap, undo = trap_system_resolver()
    sink = Capture().start()
    e = PolicyEnv(RECORDS, slow_zones=["slow.test."],
                  conf="[greylist]\nenabled = no\n[rbl]\nzones = bl.test*20, slow.test*1, wl.test*-1\n"
                       "rhsbl_zones = dbl.test*10\n").start()
    try:
        assert e.check("192.0.2.1")["verdict"] == "reject"
        d = e.check("192.0.2.99", helo="mx.good.example", mail="x@spam.example")
        assert d["verdict"] == "reject" and d["stage"] == "mail"
        e.serve(sink)
        s = smtp_session(e.port, source="127.0.0.2")
        s.sendmail("a@example.org", ["b@example.net"], b"Subject: x\r\n\r\nbody\r\n")
        s.quit()
        assert len(sink.accepted()) == 1
        assert e.stop_serving() == 0
        assert e.bh.queries >= 1            # the slow list was asked, via unbound
        assert trap.queries == 0            # and nothing went to the system resolver
    finally:
        e.stop()
        sink.stop()
        undo()


def test_reload_with_a_bad_list_setting_keeps_serving():
    sink = Capture().start()
    e = PolicyEnv(["1.0.0.127.bl.test. 300 IN A 127.0.0.2"],
                  conf="[greylist]\nenabled = no\n[rbl]\nzones = bl.test*10\n").start()
    try:
        e.serve(sink)
        assert smtp_session(e.port, source="127.0.0.1").banner[0] == 554
        e.p.reload({"rbl.zones": "bl.test=127.0.0.[2"})
        wait_until(lambda: "not asked until it is fixed" in e.log(), what="the reload")
        s = smtp_session(e.port, source="127.0.0.1")
        assert s.banner[0] == 220
        s.quit()
        e.p.reload({"rbl.zones": "bl.test*10"})
        wait_until(lambda: smtp_session(e.port, source="127.0.0.1").banner[0] == 554,
                   what="the list to apply again")
        assert e.stop_serving() == 0
    finally:
        e.stop()
        sink.stop()


def test_smtp_cached_domain_lists_run_inline():
    """HELO and MAIL whose only blocking check is a domain list run on the
    I/O loop once the answers are cached (listed or not), with the same
    results as on a worker; names not yet cached still go to a worker."""
    token = "t" * 40
    sink = Capture().start()
    e = PolicyEnv(RECORDS, conf="[greylist]\nenabled = no\n[rbl]\nrhsbl_zones = dbl.test*1\n"
                                "[web]\napi_token = %s\n" % token).start()

    def session(helo, sender):
        before = stage_counts(e.p.web_port, token)
        s = smtp_session(e.port)
        assert s.ehlo(helo)[0] == 250
        assert s.mail(sender)[0] == 250
        assert s.rcpt("b@example.net")[0] == 250
        s.rset()
        s.quit()
        after = stage_counts(e.p.web_port, token)
        return after[0] - before[0], after[1] - before[1]

    try:
        e.serve(sink)
        session("badhelo.example", "x@spam.example")         # fills the cache
        cached = session("badhelo.example", "x@spam.example")
        fresh = session("new.example", "x@fresh.example")
        assert cached[0] - fresh[0] == 2, (cached, fresh)    # HELO and MAIL inline
        assert fresh[1] - cached[1] == 2, (cached, fresh)
        assert cached[0] + cached[1] == fresh[0] + fresh[1]
        assert e.stop_serving() == 0
        # the listings were found inline as they were on a worker
        log = e.log()
        assert log.count("HELO name badhelo.example listed at dbl.test") == 2, log
        assert log.count("sender domain spam.example listed at dbl.test") == 2, log
    finally:
        e.stop()
        sink.stop()
