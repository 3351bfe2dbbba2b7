"""No DNS leaks: in a fresh network namespace (only lo), with the system
resolver replaced by a trap, Postern must ask only the unbound named in
dns.resolver -- libspf2/libopendkim must not fall back to resolv.conf."""
import pytest

from harness import IN_NETNS, make_message, smtp_client, trap_system_resolver, wait_until


@pytest.mark.netns
def test_no_dns_leak_in_fresh_netns(make_unbound, make_capture, make_postern):
    assert IN_NETNS
    trap, undo = trap_system_resolver()
    try:
        u = make_unbound(local_data=['example.org. TXT "v=spf1 ip4:127.0.0.2 -all"',
                                     'client.example.org. A 127.0.0.2',
                                     '2.0.0.127.in-addr.arpa. PTR client.example.org.'],
                         extra="  log-queries: yes")
        cap = make_capture()
        p = make_postern(cap.addr, resolver=u.addr)
        s = smtp_client(p.port, source="127.0.0.2")
        s.ehlo("client.example.org")
        assert s.sendmail("a@example.org", ["b@example.org"], make_message("netns")) == {}
        s.quit()
        (m,) = cap.wait_messages(1)
        # Postern did use DNS, through our unbound ...
        wait_until(lambda: "example.org. TXT IN" in u.log(), 10,
                   what="Postern's SPF query at the test unbound")
        ar = m.header("Authentication-Results")[0]
        assert "spf=pass" in ar, ar
        assert p.stop(check=True) == 0
        # ... and never through the system resolver.
        assert trap.queries == 0, "%d queries leaked to resolv.conf" % trap.queries
    finally:
        undo()
