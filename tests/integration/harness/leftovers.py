"""One private temporary root per test run, and a check that nothing the run
started outlives it.

Public: RunRoot.

    root = RunRoot().enter()   # tempfile.tempdir and $TMPDIR point into it
    ... every TempDir, mkdtemp, postfix queue, unbound, postern, chromium
        profile of the run lives under root.path ...
    left = root.leftovers()    # [(pid, "cmdline")] still using it
    root.kill(left)            # SIGKILL them (they are ours: the path is
                               # unique to this run)
    root.remove()

A process belongs to the run when its working directory or its command line
names a path under the root: Postern runs in its test dir, unbound names its
config there, Postfix's master and daemons sit in its queue directory,
Chromium names its profile. Owned by conftest.py; main thread only.
"""
import os
import shutil
import signal
import tempfile


class RunRoot:
    def __init__(self, prefix="postern-run-"):
        self.path = tempfile.mkdtemp(prefix=prefix)
        # Postfix's unprivileged daemons walk into test dirs below this one.
        os.chmod(self.path, 0o755)
        self._saved = None

    def enter(self):
        """Make the root the default temporary directory of this process and
        of everything it starts."""
        self._saved = (tempfile.tempdir, os.environ.get("TMPDIR"))
        tempfile.tempdir = self.path
        os.environ["TMPDIR"] = self.path
        return self

    def leave(self):
        if self._saved is None:
            return
        tempfile.tempdir, tmpdir = self._saved
        if tmpdir is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = tmpdir
        self._saved = None

    def _uses_root(self, pid):
        try:
            cwd = os.readlink("/proc/%d/cwd" % pid)
        except OSError:
            cwd = ""
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            return None
        under = cwd == self.path or cwd.startswith(self.path + "/")
        return cmd if (under or self.path in cmd) else None

    def leftovers(self):
        """Processes other than this one still using the root."""
        me = os.getpid()
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == me:
                continue
            cmd = self._uses_root(int(name))
            if cmd is not None:
                found.append((int(name), cmd[:200]))
        return found

    @staticmethod
    def kill(procs):
        for pid, _ in procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def remove(self):
        if os.environ.get("POSTERN_KEEP_TMP"):
            return
        shutil.rmtree(self.path, ignore_errors=True)
