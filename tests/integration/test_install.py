"""Postern as a well-kept system service: `make install DESTDIR=...` lays out
the binary, the configuration (paths made for a system install), the rules,
the man pages and the systemd unit with its sysusers.d and tmpfiles.d
entries; systemd accepts the unit and rates its sandbox at most MEDIUM; the
installed binary serves port 25 inside the unit's sandbox (no systemd runs
here, so the sandbox is rebuilt from the unit's own lines: setpriv for the
user and capabilities, a seccomp filter for SystemCallFilter= and
RestrictAddressFamilies=, a read-only root for ProtectSystem=strict); and
the Debian package builds from a clean checkout of HEAD (committed work
only) with maintainer scripts that create the user and the directories.

Real parts: make, systemd-analyze, systemd-sysusers, systemd-tmpfiles,
mandoc, man-db, setpriv, libseccomp (python3-seccomp), git,
dpkg-buildpackage, the capture backend and unbound. Root is needed for
mount namespaces, setpriv and chown."""
import difflib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from harness import REPO, TempDir, free_port, make_message, smtp_client, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bind mounts, chown, setpriv)")

PREFIX = "/usr/local"
BIN = PREFIX + "/sbin/postern"
CONFDIR = PREFIX + "/etc/postern"
CONF = CONFDIR + "/postern.conf"
UNIT = PREFIX + "/lib/systemd/system/postern.service"
SYSUSERS = PREFIX + "/lib/sysusers.d/postern.conf"
TMPFILES = PREFIX + "/lib/tmpfiles.d/postern.conf"
STATEDIR = "/var/lib/postern"
SPOOLDIR = "/var/spool/postern"
NOBODY = 65534
CAP_NET_BIND_SERVICE = 1 << 10
EXPOSURE = re.compile(r"Overall exposure level for \S+: ([\d.]+) (\w+)")
ACCEPTABLE = ("SAFE", "OK", "MEDIUM")   # systemd's words, best first


def run(argv, **kw):
    """argv's result, text. Without the outer make's MAKEFLAGS (`make test`
    runs us): its jobserver and variables are not for the makes we start."""
    kw.setdefault("timeout", 300)
    kw["env"] = {k: v for k, v in kw.get("env", os.environ).items()
                 if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def make_install(destdir, *targets):
    r = run(["make", "-s", "-C", REPO, *(targets or ("install",)), "DESTDIR=" + destdir])
    assert r.returncode == 0, r.stdout + r.stderr
    return r


class Installed:
    """A `make install` into a fresh DESTDIR."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.root = tmp.join("root")
        make_install(self.root)

    def path(self, p):
        return self.root + p

    def read(self, p):
        with open(self.path(p)) as f:
            return f.read()


@pytest.fixture(scope="module")
def installed():
    tmp = TempDir(prefix="postern-install-")
    try:
        yield Installed(tmp)
    finally:
        tmp.cleanup()


def keyed_lines(lines, head=r"\[(\w+)\]", key=r"#?(\w+) ="):
    """(section, match of key or None, line) for each line of an INI-like
    text: the config, or the man page's [section] and "name =" tags."""
    sec = None
    for line in lines:
        m = re.match(head, line)
        if m:
            sec = m.group(1)
        yield sec, (re.match(key, line) if sec else None), line


def conf_values(text):
    """{"section.key": value} of the lines that set a key (not comments)."""
    return {"%s.%s" % (sec, k.group(1)): k.group(2).strip()
            for sec, k, _ in keyed_lines(text.splitlines(), key=r"(\w+) = ?(.*)$") if k}


def set_keys(text, values):
    """text with each "section.key" in values set (a commented default is
    uncommented): the installed file adjusted, not a new one."""
    values, out = dict(values), []
    for sec, k, line in keyed_lines(text.splitlines()):
        if k and "%s.%s" % (sec, k.group(1)) in values:
            line = "%s = %s" % (k.group(1), values.pop("%s.%s" % (sec, k.group(1))))
        out.append(line)
    assert not values, "not in the installed config: %s" % sorted(values)
    return "\n".join(out) + "\n"


def unit_values(text, key):
    return [l.split("=", 1)[1] for l in text.splitlines() if l.startswith(key + "=")]


def program_keys(binary, conf):
    r = run([binary, "configtest", "-v", "-c", conf])
    assert r.returncode == 0, r.stderr
    return {l.split()[0] for l in r.stdout.splitlines() if l.strip()}


# ---- the files ---------------------------------------------------------------
def test_install_lays_out_the_files(installed):
    want = {BIN: 0o755, CONF: 0o644, CONFDIR + "/rules.txt": 0o644, UNIT: 0o644,
            SYSUSERS: 0o644, TMPFILES: 0o644,
            PREFIX + "/share/man/man8/postern.8": 0o644,
            PREFIX + "/share/man/man5/postern.conf.5": 0o644,
            PREFIX + "/share/doc/postern/README.md": 0o644,
            PREFIX + "/share/doc/postern/deploy.md": 0o644}
    for p, mode in want.items():
        st = os.stat(installed.path(p))
        assert st.st_mode & 0o7777 == mode, "%s: %o" % (p, st.st_mode & 0o7777)
    with open(os.path.join(REPO, "etc/rules.txt")) as f:
        assert installed.read(CONFDIR + "/rules.txt") == f.read()
    # Nothing lands outside the prefix: state is made at run time.
    tops = {p[len(installed.root):].split("/")[1] for p in glob.glob(installed.root + "/*")}
    assert tops == {"usr"}, tops
    # The installed binary runs: no argument prints the usage, exit 2.
    r = run([installed.path(BIN)])
    assert r.returncode == 2 and r.stderr.startswith("usage: postern serve -c FILE"), r.stderr


def test_installed_config_differs_from_the_example_only_in_paths(installed):
    with open(os.path.join(REPO, "etc/postern.conf")) as f:
        example = f.read().splitlines()
    conf = installed.read(CONF)
    changed = [l[1:] for l in difflib.unified_diff(example, conf.splitlines(), n=0, lineterm="")
               if l[:1] in "+-" and l[:3] not in ("+++", "---")]
    # Comments may say where the file is; of the settings only these change.
    assert sorted(l for l in changed if l.strip() and not l.startswith("# ")) == sorted([
        "spool_dir = var/spool", "path = var/postern.db", "file = etc/rules.txt",
        "spool_dir = " + SPOOLDIR, "path = %s/postern.db" % STATEDIR,
        "file = %s/rules.txt" % CONFDIR]), changed
    assert "# with the one capability to bind port 25: leave proxy.user empty." in changed
    r = run([installed.path(BIN), "configtest", "-c", installed.path(CONF)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert conf_values(conf).get("proxy.user", "") == ""


def test_unit_sysusers_tmpfiles_and_config_agree(installed):
    """The unit may write exactly where the config puts the database and the
    spool, those are the directories tmpfiles.d makes for the user the unit
    runs as, and sysusers.d creates that user."""
    unit = installed.read(UNIT)
    conf = conf_values(installed.read(CONF))
    assert unit_values(unit, "ExecStart") == ["%s serve -c %s" % (BIN, CONF)]
    assert unit_values(unit, "User") == ["postern"]
    assert unit_values(unit, "NoNewPrivileges") == ["yes"]
    assert unit_values(unit, "ProtectSystem") == ["strict"]
    assert unit_values(unit, "CapabilityBoundingSet") == ["CAP_NET_BIND_SERVICE"]
    assert unit_values(unit, "AmbientCapabilities") == ["CAP_NET_BIND_SERVICE"]
    assert unit_values(unit, "KillSignal") == ["SIGTERM"]
    assert unit_values(unit, "ExecReload") == ["/bin/kill -HUP $MAINPID"]
    writable = " ".join(unit_values(unit, "ReadWritePaths")).split()
    assert sorted(writable) == sorted([os.path.dirname(conf["db.path"]), conf["proxy.spool_dir"]])
    tmpfiles = [l.split() for l in installed.read(TMPFILES).splitlines()
                if l and not l.startswith("#")]
    assert sorted(t[1] for t in tmpfiles if t[0] == "d") == sorted(writable)
    assert all(t[2:5] == ["0700", "postern", "postern"] for t in tmpfiles if t[0] == "d")
    assert ["z", CONF, "0640", "root", "postern", "-"] in tmpfiles
    users = [l.split()[:2] for l in installed.read(SYSUSERS).splitlines()
             if l and not l.startswith("#")]
    assert users == [["u", "postern"]]


def test_sysusers_and_tmpfiles_make_the_user_and_its_directories(installed, workdir):
    """What `make install` (as root) and the package's postinst run, applied
    to a copy of the install as its root directory."""
    root = workdir.join("root")
    shutil.copytree(installed.root, root, symlinks=True)
    os.makedirs(root + "/etc", exist_ok=True)
    r = run(["systemd-sysusers", "--root=" + root, root + SYSUSERS])
    assert r.returncode == 0, r.stderr
    with open(root + "/etc/passwd") as f:
        (pw,) = [l.split(":") for l in f.read().splitlines() if l.startswith("postern:")]
    assert pw[5] == STATEDIR and pw[6] in ("/usr/sbin/nologin", "/sbin/nologin"), pw
    uid, gid = int(pw[2]), int(pw[3])
    assert 0 < uid < 1000, "a system user: %d" % uid
    r = run(["systemd-tmpfiles", "--root=" + root, "--create", root + TMPFILES])
    assert r.returncode == 0, r.stderr
    for d in (STATEDIR, SPOOLDIR):
        st = os.stat(root + d)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (uid, gid, 0o700), d
    st = os.stat(root + CONF)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, gid, 0o640)


def test_reinstall_keeps_the_admins_config_and_uninstall_too(workdir):
    root = workdir.join("root")
    make_install(root)
    conf = root + CONF
    with open(conf) as f:
        fresh = f.read()
    edited = set_keys(fresh, {"proxy.hostname": "mx.admin.example"})
    with open(conf, "w") as f:
        f.write(edited)
    r = make_install(root)
    assert "kept your %s" % conf in r.stderr
    with open(conf) as f:
        assert f.read() == edited
    with open(conf + ".new") as f:
        assert f.read() == fresh
    make_install(root, "uninstall")
    for p in (BIN, UNIT, SYSUSERS, TMPFILES, PREFIX + "/share/man/man8/postern.8"):
        assert not os.path.exists(root + p), p
    assert not os.path.exists(root + PREFIX + "/share/doc/postern")
    with open(conf) as f:
        assert f.read() == edited


def test_install_as_root_without_destdir_makes_the_user_and_directories(workdir):
    """The live path: no DESTDIR, as root, `make install` runs sysusers.d and
    tmpfiles.d itself. Here it installs under a scratch prefix and
    localstatedir, in a mount namespace whose /etc is a copy, so the host's
    users stay untouched."""
    etc, top = workdir.join("etc"), workdir.join("top")
    shutil.copytree("/etc", etc, symlinks=True)
    r = run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
             'mount --bind "$1" /etc && shift && exec make -s -C "$@"', "sh", etc, REPO,
             "install", "prefix=%s/usr" % top, "localstatedir=%s/var" % top])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "systemctl daemon-reload && systemctl enable --now postern" in r.stdout
    with open(etc + "/passwd") as f:
        (pw,) = [l.split(":") for l in f.read().splitlines() if l.startswith("postern:")]
    uid, gid = int(pw[2]), int(pw[3])
    assert pw[5] == top + "/var/lib/postern", pw
    for d in ("/var/lib/postern", "/var/spool/postern"):
        st = os.stat(top + d)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (uid, gid, 0o700), d
    st = os.stat(top + "/usr/etc/postern/postern.conf")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, gid, 0o640)
    with open("/etc/passwd") as f:
        assert not any(l.startswith("postern:") for l in f), "the host's /etc was written"
    # Every installed text names the chosen paths, none the defaults.
    unit = read_text(top + "/usr/lib/systemd/system/postern.service")
    assert unit_values(unit, "ExecStart") == [
        "%s/usr/sbin/postern serve -c %s/usr/etc/postern/postern.conf" % (top, top)]
    assert unit_values(unit, "ReadWritePaths") == [
        "%s/var/lib/postern %s/var/spool/postern" % (top, top)]
    for p in glob.glob(top + "/usr/share/man/man*/*") + glob.glob(top + "/usr/lib/*/postern.*") \
            + glob.glob(top + "/usr/lib/systemd/system/postern.service"):
        assert "/usr/local/" not in read_text(p).replace(top, ""), p
    assert "%s/var/lib/postern/postern.db" % top in read_text(top + "/usr/share/man/man8/postern.8")


# ---- the unit, as systemd sees it ------------------------------------------
def verify(installed, unit_path):
    """systemd-analyze verify on a unit under the installed /usr/local, bind
    mounted over the real one in a private mount namespace, so the unit is
    checked where it is installed: its binary, /bin/kill and its man pages
    (Documentation=man:...) must all be found. (exit code, output)."""
    r = run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
             'mount --bind "$1" /usr/local && exec systemd-analyze verify "$2"', "sh",
             installed.path(PREFIX), unit_path])
    return r.returncode, r.stdout + r.stderr


def test_systemd_accepts_the_unit(installed):
    rc, out = verify(installed, UNIT)
    assert (rc, out) == (0, ""), out


def test_verify_catches_a_misspelt_directive(installed):
    """The check above can fail: systemd only warns (exit 0) about an unknown
    key, which is why it asserts silence."""
    bad = installed.path(PREFIX + "/lib/systemd/system/postern-typo.service")
    with open(bad, "w") as f:
        f.write(installed.read(UNIT).replace("ProtectSystem=strict", "ProtectSystm=strict"))
    try:
        rc, out = verify(installed, PREFIX + "/lib/systemd/system/postern-typo.service")
    finally:
        os.unlink(bad)
    assert "Unknown key 'ProtectSystm'" in out, out


def exposure(unit_path):
    r = run(["systemd-analyze", "security", "--offline=true", unit_path])
    m = EXPOSURE.search(r.stdout)
    assert m, r.stdout[-2000:] + r.stderr
    return float(m.group(1)), m.group(2), r.stdout


def test_sandbox_exposure_is_at_most_medium(installed):
    score, word, table = exposure(installed.path(UNIT))
    assert word in ACCEPTABLE, "exposure %.1f %s:\n%s" % (score, word, table)


def test_an_unsandboxed_unit_would_fail_the_exposure_check(installed, workdir):
    bare = workdir.join("postern.service")
    with open(bare, "w") as f:
        f.write("[Service]\nExecStart=%s serve -c %s\n" % (BIN, CONF))
    score, word, _ = exposure(bare)
    assert word not in ACCEPTABLE, (score, word)
    assert score > exposure(installed.path(UNIT))[0]


def test_rules_jit_is_why_memory_deny_write_execute_stays_off(installed, workdir):
    """PCRE2's JIT needs writable+executable memory: under
    MemoryDenyWriteExecute (here the kernel's PR_SET_MDWE, the same refusal)
    every rule falls back to the interpreter. Should a later PCRE2 JIT work
    under it, this fails: then turn MemoryDenyWriteExecute on in the unit."""
    import ctypes
    assert not unit_values(installed.read(UNIT), "MemoryDenyWriteExecute")
    msg = workdir.join("m.eml")
    with open(msg, "wb") as f:
        f.write(make_message("FREE MONEY"))
    argv = [installed.path(BIN), "rules", "test", "-c", installed.path(CONF),
            "caps | subject | /FREE/ | score 1", msg]

    def mdwe():
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(65, 1, 0, 0, 0) != 0:   # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")
    plain = run(argv)
    assert plain.returncode == 0 and "match subject" in plain.stdout, plain.stdout + plain.stderr
    assert "JIT unavailable" not in plain.stderr
    try:
        under = run(argv, preexec_fn=mdwe)
    except subprocess.SubprocessError as e:
        pytest.skip("kernel without PR_SET_MDWE (Linux < 6.3): %s" % e)
    assert under.returncode == 0 and "match subject" in under.stdout, under.stderr
    assert "JIT unavailable" in under.stderr, under.stderr


# ---- the man pages -----------------------------------------------------------
MAN8 = PREFIX + "/share/man/man8/postern.8"
MAN5 = PREFIX + "/share/man/man5/postern.conf.5"


@pytest.mark.parametrize("page,name", [(MAN8, "postern"), (MAN5, "postern.conf")])
def test_man_pages_are_clean_roff(installed, page, name):
    r = run(["mandoc", "-T", "lint", "-W", "warning", installed.path(page)])
    assert (r.returncode, r.stdout + r.stderr) == (0, ""), r.stdout + r.stderr
    r = run(["man", "--warnings", "-l", installed.path(page)],
            env=dict(os.environ, MANWIDTH="80"))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    text = re.sub(".\b", "", r.stdout)   # the pager's overstrike bold
    assert "NAME" in text and "SEE ALSO" in text, text
    r = run(["lexgrog", installed.path(page)])
    assert r.returncode == 0 and '"%s - ' % name in r.stdout, r.stdout + r.stderr
    with open(installed.path(page)) as f:
        assert CONF in f.read()   # other prefixes: test_install_as_root_without_destdir...


def test_conf_man_page_documents_every_key(installed):
    keys = {"%s.%s" % (sec, k.group(1)) for sec, k, _ in keyed_lines(
        installed.read(MAN5).splitlines(), head=r'\.SS "\[(\w+)\]"', key=r"\\fB(\w+)\\fR = ")
        if k}
    assert keys == program_keys(installed.path(BIN), installed.path(CONF))


def test_command_man_page_names_every_command(installed):
    usage = run([installed.path(BIN)]).stderr
    commands = set(re.findall(r"^(?:usage:)?\s+postern (\w+)", usage, re.M))
    assert len(commands) >= 8, usage
    page = installed.read(MAN8)
    documented = set(re.findall(r"^\.TP\n\.B (\w+)$", page, re.M))
    assert commands <= documented, commands - documented


# ---- serving as the unit runs it -------------------------------------------
SETPRIV = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
           "--no-new-privs"]
NO_CAPS = ["--inh-caps=-all", "--bounding-set=-all"]
FAMILIES = {"AF_UNIX": socket.AF_UNIX, "AF_INET": socket.AF_INET, "AF_INET6": socket.AF_INET6}
# Loads a seccomp filter (allow-list, EPERM otherwise; socket() only for the
# listed address families) and execs the rest of argv.
SECCOMP_EXEC = r"""
import errno, json, os, sys
import seccomp
spec = json.loads(sys.argv[1])
f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
for name in spec["allow"]:
    if name != "socket":
        try:
            f.add_rule(seccomp.ALLOW, name)
        except RuntimeError:   # not a system call of this architecture
            pass
for fam in spec["families"] if "socket" in spec["allow"] else ():
    f.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, fam))
f.load()
os.execv(sys.argv[2], sys.argv[2:])
"""
# Binds each writable directory onto itself, makes / read-only (the binds
# stay writable), then execs the rest.
READ_ONLY_ROOT = ('while [ "$1" != -- ]; do mount --bind "$1" "$1"; shift; done; shift; '
                  'mount -o remount,bind,ro / && exec "$@"')


def syscall_groups():
    """{"@group": [members]} from systemd's own table."""
    groups, cur = {}, None
    for line in run(["systemd-analyze", "syscall-filter"]).stdout.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), [])
        elif not line.startswith(" "):
            cur = None
        elif cur is not None and line.strip() and not line.strip().startswith("#"):
            cur.append(line.strip())
    return groups


def expand(names, groups):
    out = set()
    for n in names:
        out |= expand(groups[n], groups) if n.startswith("@") else {n}
    return out


def unit_sandbox(unit):
    """The unit's SystemCallFilter= (an allow-list, then ~ removals) and
    RestrictAddressFamilies=, as a spec for SECCOMP_EXEC; and setpriv's
    capability arguments from AmbientCapabilities= and CapabilityBoundingSet=."""
    groups, allow = syscall_groups(), set()
    for v in unit_values(unit, "SystemCallFilter"):
        if v.startswith("~"):
            allow -= expand(v[1:].split(), groups)
        else:
            allow |= expand(v.split(), groups)
    assert allow, "the unit sets no SystemCallFilter"
    families = [FAMILIES[f] for v in unit_values(unit, "RestrictAddressFamilies")
                for f in v.split()]
    caps = lambda key: ",".join("+" + c[len("CAP_"):].lower()
                                for v in unit_values(unit, key) for c in v.split())
    capargs = ["--inh-caps=-all," + caps("AmbientCapabilities"),
               "--ambient-caps=-all," + caps("AmbientCapabilities"),
               "--bounding-set=-all," + caps("CapabilityBoundingSet")]
    return {"allow": sorted(allow), "families": families}, capargs


def service_conf(installed, tmp, backend, resolver):
    """The installed config as an admin would run it on port 25, with the
    database and spool in directories made as tmpfiles.d makes them (owned
    by the service's user, 0700) and the config as root:group 0640."""
    state, spool = tmp.join("state"), tmp.join("spool")
    for d in (state, spool):
        os.makedirs(d)
        os.chown(d, NOBODY, NOBODY)
        os.chmod(d, 0o700)
    text = set_keys(installed.read(CONF), {
        "proxy.listen": "127.0.0.1:25", "proxy.backend": backend,
        "dns.resolver": resolver, "db.path": state + "/postern.db",
        "proxy.spool_dir": spool, "rules.file": installed.path(CONFDIR + "/rules.txt"),
        "web.listen": "127.0.0.1:%d" % free_port(), "greylist.enabled": "no"})
    path = tmp.join("postern.conf")
    with open(path, "w") as f:
        f.write(text)
    os.chown(path, 0, NOBODY)
    os.chmod(path, 0o640)
    return path, state, spool


def read_text(path):
    with open(path) as f:
        return f.read()


def status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(l.split(":\t", 1) for l in f.read().splitlines() if ":\t" in l)


def banner(proc):
    if proc.poll() is not None:
        raise RuntimeError("postern exited %s" % proc.returncode)
    try:
        with socket.create_connection(("127.0.0.1", 25), timeout=2) as s:
            ok = s.recv(512).startswith(b"220")
            s.sendall(b"QUIT\r\n")
            return ok
    except OSError:
        return False


@pytest.mark.netns
def test_serves_port_25_inside_the_units_sandbox(installed, workdir, capture, unbound):
    """The installed binary and config, run as the unit runs them, emulated
    from the unit's own lines: an unprivileged user with only the unit's
    capabilities and no new privileges (setpriv), its SystemCallFilter= and
    RestrictAddressFamilies= (a seccomp filter), and ProtectSystem=strict
    with the config's two directories writable (a read-only / in a mount
    namespace; stricter than the unit, whose /tmp is private and writable).
    It serves port 25, relays, reloads on SIGHUP and exits 0 on SIGTERM."""
    conf, state, spool = service_conf(installed, workdir, capture.addr, unbound.addr)
    spec, capargs = unit_sandbox(installed.read(UNIT))
    argv = (["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY_ROOT, "sh",
             state, spool, "--"] + SETPRIV + capargs +
            [sys.executable, "-c", SECCOMP_EXEC, json.dumps(spec),
             installed.path(BIN), "serve", "-c", conf])
    log = open(workdir.join("postern.log"), "w+")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=workdir.path)
    try:
        wait_until(lambda: banner(proc), 20, interval=0.1, what="the 220 banner on port 25")
        st = status(proc.pid)
        assert st["Uid"].split() == [str(NOBODY)] * 4
        for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
            assert int(st[cap], 16) == CAP_NET_BIND_SERVICE, (cap, st[cap])
        assert st["NoNewPrivs"].strip() == "1" and st["Seccomp"].strip() == "2"
        s = smtp_client(25)
        assert s.sendmail("a@example.org", ["b@example.org"], make_message("as a service")) == {}
        s.quit()
        (m,) = capture.wait_messages(1)
        assert b"as a service" in m.data
        proc.send_signal(signal.SIGHUP)      # ExecReload
        wait_until(lambda: "reload: configuration" in read_text(log.name), 10,
                   what="the reload log line")
        proc.send_signal(signal.SIGTERM)     # KillSignal
        assert proc.wait(30) == 0, read_text(log.name)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()
    out = read_text(log.name)
    assert "rules: imported" in out and "serve: stopped" in out, out
    assert not re.search(r"\berror\b|Operation not permitted|Read-only", out), out
    owners = {os.stat(p).st_uid for p in glob.glob(state + "/*")}
    assert owners == {NOBODY}, out


@pytest.mark.netns
def test_the_emulated_sandbox_can_refuse(installed, workdir, capture, unbound):
    """The emulation above is not a pass-through: its root is read-only but
    for the two directories, and without bind() in the filter the same
    start fails at the listener with EPERM."""
    conf, state, spool = service_conf(installed, workdir, capture.addr, unbound.addr)
    r = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY_ROOT, "sh",
             state, spool, "--", "sh", "-c", 'touch "$1/probe" && ! touch "$2/probe"', "sh",
             state, workdir.path])
    assert r.returncode == 0 and "Read-only file system" in r.stderr, r.stderr
    spec, capargs = unit_sandbox(installed.read(UNIT))
    spec["allow"].remove("bind")
    r = run(SETPRIV + capargs + [sys.executable, "-c", SECCOMP_EXEC, json.dumps(spec),
                                 installed.path(BIN), "serve", "-c", conf], timeout=60)
    assert r.returncode != 0
    assert "Operation not permitted" in r.stderr, r.stderr


@pytest.mark.netns
def test_without_the_capability_port_25_is_refused_clearly(installed, workdir, capture, unbound):
    conf, _, _ = service_conf(installed, workdir, capture.addr, unbound.addr)
    r = run(SETPRIV + NO_CAPS + [installed.path(BIN), "serve", "-c", conf], timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "127.0.0.1:25: Permission denied" in r.stderr, r.stderr


# ---- the Debian package ------------------------------------------------------
def build_deps(kind):
    with open(os.path.join(REPO, ".ci/deps")) as f:
        m = re.search(r'^%s="([^"]*)"' % kind, f.read(), re.M)
    return set(m.group(1).split())


def test_package_build_depends_cover_the_build_list():
    with open(os.path.join(REPO, "debian/control")) as f:
        m = re.search(r"^Build-Depends:(.*?)^\S", f.read(), re.M | re.S)
    listed = {re.sub(r"\s*\(.*", "", d).strip() for d in m.group(1).split(",")}
    assert build_deps("BUILD") - {"gcc", "make"} <= listed   # gcc, make: build-essential


class Package:
    """dpkg-buildpackage -us -uc -b on a clean clone of HEAD, once."""

    def __init__(self, tmp):
        self.tmp = tmp
        head = run(["git", "-C", REPO, "rev-parse", "HEAD"])
        if head.returncode != 0:
            pytest.skip("not a git checkout: %s" % head.stderr.strip())
        src = tmp.join("src")
        for argv in (["git", "clone", "-q", REPO, src],
                     ["git", "-C", src, "checkout", "-q", head.stdout.strip()]):
            r = run(argv)
            assert r.returncode == 0, r.stderr
        # The unit tests already ran in `make test`: nocheck keeps this to
        # the package build itself.
        env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck parallel=%d" % (os.cpu_count() or 1))
        r = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env, timeout=1200)
        assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
        (self.deb,) = glob.glob(tmp.join("postern_*_*.deb"))
        self.beside_tree = sorted(os.listdir(tmp.path))
        self.untracked = run(["git", "-C", src, "status", "--porcelain"]).stdout

    def dpkg_deb(self, option, *args):
        r = run(["dpkg-deb", option, self.deb, *args])
        assert r.returncode == 0, r.stderr
        return r.stdout


@pytest.fixture(scope="module")
def package():
    tmp = TempDir(prefix="postern-deb-")
    try:
        yield Package(tmp)
    finally:
        tmp.cleanup()


@pytest.mark.timeout(1500)
def test_package_builds_from_a_clean_checkout(package):
    files = {l.split()[-1] for l in package.dpkg_deb("-c").splitlines()}
    for p in ("./usr/sbin/postern", "./lib/systemd/system/postern.service",
              "./etc/postern/postern.conf", "./etc/postern/rules.txt",
              "./usr/lib/sysusers.d/postern.conf", "./usr/lib/tmpfiles.d/postern.conf",
              "./usr/share/man/man8/postern.8.gz", "./usr/share/man/man5/postern.conf.5.gz"):
        assert p in files, p
    assert package.dpkg_deb("-f", "Package", "Depends").count("systemd-sysusers") == 1
    with_conffiles = package.dpkg_deb("-I", "conffiles")
    assert set(with_conffiles.split()) == {"/etc/postern/postern.conf", "/etc/postern/rules.txt"}
    postinst = package.dpkg_deb("-I", "postinst")
    assert "systemd-sysusers" in postinst and "postern.conf" in postinst
    assert "systemd-tmpfiles" in postinst
    assert "deb-systemd-helper enable 'postern.service'" in postinst
    # Outside its tree the build writes only its products, beside it; inside,
    # nothing that .gitignore does not name.
    assert [n for n in package.beside_tree if not re.match(
        r"postern(-dbgsym)?_[^_]+_\w+\.(deb|buildinfo|changes)$", n)] == ["src"], \
        package.beside_tree
    assert package.untracked == "", package.untracked


@pytest.mark.timeout(1500)
def test_package_maintainer_scripts_create_the_user_and_directories(package, workdir):
    """The package's own postinst and postrm, run against an unpacked copy
    as DPKG_ROOT (as dpkg does for a foreign root); the systemd helpers are
    stubs that record their calls, so the host's systemd is never touched."""
    root, ctl, stubs = workdir.join("root"), workdir.join("DEBIAN"), workdir.join("stubs")
    for argv in (["dpkg-deb", "-x", package.deb, root], ["dpkg-deb", "-e", package.deb, ctl]):
        r = run(argv)
        assert r.returncode == 0, r.stderr
    calls = workdir.join("calls")
    os.makedirs(stubs)
    for name in ("deb-systemd-helper", "deb-systemd-invoke", "systemctl"):
        with open(os.path.join(stubs, name), "w") as f:
            f.write('#!/bin/sh\necho "%s $*" >> %s\n' % (name, calls))
        os.chmod(os.path.join(stubs, name), 0o755)
    env = dict(os.environ, DPKG_ROOT=root, PATH=stubs + ":" + os.environ["PATH"])
    r = run(["sh", "-e", ctl + "/postinst", "configure", ""], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(root + "/etc/passwd") as f:
        (pw,) = [l.split(":") for l in f.read().splitlines() if l.startswith("postern:")]
    uid, gid = int(pw[2]), int(pw[3])
    for d in ("/var/lib/postern", "/var/spool/postern"):
        st = os.stat(root + d)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (uid, gid, 0o700), d
    st = os.stat(root + "/etc/postern/postern.conf")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, gid, 0o640)
    with open(calls) as f:
        assert "deb-systemd-helper enable postern.service" in f.read()
    # The packaged binary accepts the packaged config (paths are Debian's).
    conf = root + "/etc/postern/postern.conf"
    assert conf_values(read_text(conf))["db.path"] == "/var/lib/postern/postern.db"
    r = run([root + "/usr/sbin/postern", "configtest", "-c", conf])
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(["sh", "-e", ctl + "/postrm", "purge"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not os.path.exists(root + "/var/lib/postern")
    assert not os.path.exists(root + "/var/spool/postern")
    assert os.path.exists(root + "/etc/passwd")
