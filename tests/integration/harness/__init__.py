"""Postern's real-server test harness (Debian's unbound, Postfix, HAProxy,
our own capture SMTP server, Postern itself), loopback only.

Other test folders import it as `from harness import ...` once
tests/integration is on sys.path (conftest.py there puts it), or through
the pytest fixtures defined in tests/integration/conftest.py.
"""
from .net import LOOPBACK, TIME_SCALE, TempDir, free_port, port_open, wait_port, wait_until
from .unbound import BlackHole, Unbound
from .postfix import Postfix
from .haproxy import HAProxy
from .capture import Capture, CapMessage, CapSession
from .client import RawSMTP, Reply, smtp_client
from .postern import POSTERN_BIN, REPO, Postern, make_cert
from .mail import ADDED_HEADERS, make_message, split_added, stuff
from .netns import IN_NETNS, netns_argv, trap_system_resolver

__all__ = ["LOOPBACK", "TIME_SCALE", "TempDir", "free_port", "port_open", "wait_port",
           "wait_until", "BlackHole", "Unbound", "Postfix", "HAProxy", "Capture",
           "CapMessage", "CapSession", "RawSMTP", "Reply", "smtp_client",
           "POSTERN_BIN", "REPO", "Postern", "make_cert", "IN_NETNS",
           "netns_argv", "trap_system_resolver", "ADDED_HEADERS", "make_message",
           "split_added", "stuff"]
