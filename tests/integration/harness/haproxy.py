"""Debian's HAProxy as a TCP load balancer in front of Postern, on loopback.

Public: HAProxy.

    h = HAProxy(d.join("haproxy"), target=p.addr, send="send-proxy-v2",
                server_opts="check inter 500",   # more of the server line
                backend_opts="option smtpchk")   # lines before it
    h.start()        # returns once its frontend listens (checked with ss,
                     # not by connecting: a probe would reach the target)
    h.port, h.addr   # where clients connect
    h.log()          # what it wrote on stderr
    h.stop()         # SIGTERM to its PID, waits

One frontend in TCP mode, one server line: `send` is "send-proxy" (PROXY
v1), "send-proxy-v2" or "" (none). It runs in the foreground (-db) and
connects to the target from 127.0.0.1.
"""
import os
import subprocess

from .net import LOOPBACK, free_port, read_log, terminate, wait_until

CONFIG = """global
    maxconn 200

defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s

frontend smtp
    bind {addr}
    default_backend mx

backend mx
    {backend_opts}
    server postern {target} {send} {server_opts}
"""


class HAProxy:
    def __init__(self, directory, target, send="send-proxy-v2", server_opts="",
                 backend_opts="", port=None):
        self.dir = directory
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.target = target
        self.send = send
        self.server_opts = server_opts
        self.backend_opts = backend_opts
        self.conf_path = os.path.join(self.dir, "haproxy.cfg")
        self.logfile = os.path.join(self.dir, "haproxy.log")
        self.proc = None

    @property
    def addr(self):
        return "%s:%d" % (LOOPBACK, self.port)

    def _listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError("haproxy exited %s at start:\n%s"
                               % (self.proc.returncode, self.log()))
        r = subprocess.run(["ss", "-Hltn", "sport = :%d" % self.port],
                           capture_output=True, text=True, timeout=10)
        return "%s:%d" % (LOOPBACK, self.port) in r.stdout

    def start(self, timeout=15.0):
        with open(self.conf_path, "w") as f:
            f.write(CONFIG.format(addr=self.addr, target=self.target, send=self.send,
                                  server_opts=self.server_opts,
                                  backend_opts=self.backend_opts))
        check = subprocess.run(["haproxy", "-c", "-f", self.conf_path],
                               capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError("haproxy -c: %s%s" % (check.stdout, check.stderr))
        log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.conf_path],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir)
        log.close()
        try:
            wait_until(self._listening, timeout, what="haproxy on %s" % self.addr)
        except (TimeoutError, RuntimeError):
            self.stop()
            raise
        return self

    def log(self):
        return read_log(self.logfile)

    def stop(self, timeout=15.0):
        if self.proc is not None:
            terminate(self.proc, timeout)
            self.proc = None
