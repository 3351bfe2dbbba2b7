"""A private Postfix instance (Debian's) as Postern's backend, per TESTING.md.

Public: Postfix.

    pf = Postfix(d.join("postfix"), reject_rcpts=["rejected@example.org"],
                 defer_senders=["defer@example.org"], message_size_limit=10240000)
    pf.start()           # returns once smtpd accepts on pf.port
    ... point Postern's proxy.backend at pf.addr ...
    pf.wait_log("client=unknown[127.0.0.2]")
    pf.stop()            # postfix stop; abort leftovers by pid

Mail is delivered nowhere (local_transport = discard:), the maillog goes to
DIR/maillog (pf.maillog()), and 127.0.0.0/8 is exempt from per-client
connection limits. XCLIENT/XFORWARD are authorised as README.md tells
admins: for 127.0.0.1 (Postern's own address) only. Postfix checks that
again against the address XCLIENT set, so test clients, which send from
other loopback addresses (127.0.0.5, ...), are Internet clients to it and a
backend connection stops offering XCLIENT after one introduction.
Options:
  xclient_hosts    "postern" (default: 127.0.0.1), "all" (static:all: a
                   loopback-only smtpd may authorise every address, which
                   keeps Postern's backend pool usable) or "none"; a string
                   is used as the main.cf value itself
  ipv6             listen on [::1] as well (inet_protocols = all)
  reject_rcpts     addresses answered "550 5.1.1 <addr>: Recipient address
                   rejected: no such user" at RCPT (check_recipient_access)
  defer_senders    envelope senders whose messages get "451 4.3.0 test
                   deferral" at end of data (smtpd_end_of_data_restrictions)
  reject_header    a header name: a message carrying it gets a 5xx at end of
                   data (header_checks REJECT)
  message_size_limit  bytes (Postfix's own, 5xx past it)
  main_extra       dict of further main.cf settings
  relay_to         "host:port": deliver every message there over SMTP (e.g. a
                   Capture), instead of discarding it, so a test reads what
                   Postfix delivered
  master_extra     further master.cf lines (e.g. the smtp client service,
                   for an instance that sends mail to Postern)
"""
import os
import pwd
import signal
import socket
import subprocess

from .net import LOOPBACK, free_port, wait_port, wait_until

_DAEMONS = """\
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
smtp      unix  -       -       n       -       -       smtp
"""


XCLIENT_HOSTS = {"postern": LOOPBACK, "all": "static:all", "none": ""}


class Postfix:
    def __init__(self, directory, reject_rcpts=(), defer_senders=(),
                 reject_header=None, message_size_limit=None, main_extra=None,
                 port=None, xclient_hosts="postern", ipv6=False, relay_to=None,
                 master_extra=""):
        self.dir = directory
        self.port = port or free_port()
        self.reject_rcpts = list(reject_rcpts)
        self.defer_senders = list(defer_senders)
        self.reject_header = reject_header
        self.message_size_limit = message_size_limit
        self.main_extra = dict(main_extra or {})
        self.xclient_hosts = XCLIENT_HOSTS.get(xclient_hosts, xclient_hosts)
        self.ipv6 = ipv6
        self.relay_to = relay_to
        self.master_extra = master_extra
        self.logfile = os.path.join(self.dir, "maillog")
        self.started = False

    @property
    def addr(self):
        return "%s:%d" % (LOOPBACK, self.port)

    def _main_cf(self):
        d = self.dir
        m = {
            "compatibility_level": "3.6",
            "queue_directory": os.path.join(d, "queue"),
            "data_directory": os.path.join(d, "data"),
            "command_directory": "/usr/sbin",
            "daemon_directory": "/usr/lib/postfix/sbin",
            "meta_directory": "/etc/postfix",
            "shlib_directory": "/usr/lib/postfix",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "backend.test",
            "mydomain": "test",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "inet_interfaces": LOOPBACK + (", [::1]" if self.ipv6 else ""),
            "inet_protocols": "all" if self.ipv6 else "ipv4",
            "maillog_file": self.logfile,
            "maillog_file_prefixes": d,
            "local_transport": "discard:",
            "default_transport": "discard:",
            "relay_transport": "discard:",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "smtp_dns_support_level": "disabled",
            "smtpd_peername_lookup": "no",
            "smtpd_authorized_xclient_hosts": self.xclient_hosts,
            "smtpd_authorized_xforward_hosts": self.xclient_hosts,
            "smtpd_client_event_limit_exceptions": "127.0.0.0/8",
            "smtpd_client_connection_count_limit": "0",
            "default_process_limit": "200",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": "permit_mynetworks",
            "smtpd_tls_security_level": "none",
            "biff": "no",
            "readme_directory": "no",
            "html_directory": "no",
            "manpage_directory": "/usr/share/man",
            "sample_directory": "/etc/postfix",
            "smtputf8_enable": "yes",
        }
        if self.reject_rcpts:
            m["smtpd_recipient_restrictions"] = "check_recipient_access %s, permit_mynetworks" \
                % self._map("rcpt_access", ["%s 550 5.1.1 no such user" % a for a in self.reject_rcpts])
        if self.defer_senders:
            m["smtpd_end_of_data_restrictions"] = "check_sender_access %s" \
                % self._map("eod_access", ["%s 451 4.3.0 test deferral" % a for a in self.defer_senders])
        if self.reject_header:
            m["header_checks"] = self._map("header_checks", [
                "/^%s:/ REJECT test rejection" % self.reject_header], "regexp")
        if self.message_size_limit is not None:
            m["message_size_limit"] = str(self.message_size_limit)
        if self.relay_to:
            host, port = self.relay_to.rsplit(":", 1)
            for t in ("local_transport", "default_transport", "relay_transport"):
                m[t] = "smtp:[%s]:%s" % (host, port)
        m.update(self.main_extra)
        return "".join("%s = %s\n" % kv for kv in m.items())

    def _map(self, name, lines, kind="texthash"):
        """Write a lookup table into the instance dir; returns "kind:path"."""
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write("".join(l + "\n" for l in lines))
        return "%s:%s" % (kind, path)

    def _master_cf(self):
        inet = "%s:%d inet n - n - - smtpd\n" % (LOOPBACK, self.port)
        if self.ipv6:
            inet += "[::1]:%d inet n - n - - smtpd\n" % self.port
        return inet + _DAEMONS + self.master_extra

    def _write(self):
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        pw = pwd.getpwnam("postfix")
        for sub in ("queue", "data"):
            p = os.path.join(self.dir, sub)
            os.makedirs(p, exist_ok=True)
        os.chown(os.path.join(self.dir, "data"), pw.pw_uid, pw.pw_gid)
        with open(os.path.join(self.dir, "main.cf"), "w") as f:
            f.write(self._main_cf())
        with open(os.path.join(self.dir, "master.cf"), "w") as f:
            f.write(self._master_cf())

    def _postfix(self, *args, check=True):
        r = subprocess.run(["postfix", "-c", self.dir] + list(args),
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError("postfix %s failed (%d): %s%s\nmaillog:\n%s"
                               % (" ".join(args), r.returncode, r.stdout,
                                  r.stderr, self.maillog()[-3000:]))
        return r

    def start(self, timeout=30.0):
        self._write()
        # set-permissions creates the queue tree with Postfix's ownerships.
        self._postfix("set-permissions", check=False)
        self._postfix("check")
        self._postfix("start")
        self.started = True
        try:
            wait_port(self.port, timeout=timeout)
        except BaseException:
            self.stop()   # a start that gives up leaves nothing running
            raise
        self._check_banner()
        return self

    def _check_banner(self):
        """master listens before smtpd can run: read a real 220 (a broken
        config shows as smtpd "fatal:" in the maillog and no banner)."""
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=10) as s:
                s.settimeout(10)
                banner = s.recv(512)
                s.sendall(b"QUIT\r\n")
        except OSError as e:
            banner = repr(e).encode()
        if not banner.startswith(b"220"):
            self.stop()
            raise RuntimeError("postfix smtpd gave no banner (%r); maillog:\n%s"
                               % (banner, self.maillog()[-3000:]))

    def master_pid(self):
        try:
            with open(os.path.join(self.dir, "queue", "pid", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        if not self.started:
            return
        self.started = False
        pid = self.master_pid()
        r = self._postfix("stop", check=False)
        if r.returncode != 0:
            self._postfix("abort", check=False)
        if pid:
            def gone():
                try:
                    os.kill(pid, 0)
                    return False
                except ProcessLookupError:
                    return True
            try:
                wait_until(gone, 15, what="postfix master to exit")
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)

    def maillog(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, text, timeout=15.0):
        """Wait until `text` appears in the maillog; returns the log."""
        return wait_until(lambda: text in self.maillog() and self.maillog(),
                          timeout, what="%r in postfix maillog" % text)

    def wait_until_after(self, offset, text, timeout=15.0):
        """Wait until `text` appears in the maillog after character offset
        `offset` (a session's later lines); returns the whole log."""
        return wait_until(lambda: text in self.maillog()[offset:] and self.maillog(),
                          timeout, what="%r in postfix maillog" % text)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
