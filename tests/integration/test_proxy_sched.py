"""proxy.sched_batch: the I/O threads run as SCHED_BATCH by default (a
wakeup does not preempt the MTA on the same core), as SCHED_OTHER when it
is off, and a SIGHUP switches them without a restart. Read from the
kernel (sched_getscheduler of each thread), not from our log."""
import os

from harness import smtp_client, wait_until


def io_policies(pid):
    """{tid: policy} of the threads named postern-io."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        # a short-lived thread (a one-off job's) may end between the
        # listing and the read; the I/O threads live as long as the daemon
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() == "postern-io":
                    out[int(tid)] = os.sched_getscheduler(int(tid))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def test_io_threads_batch_by_default_and_follow_sighup(make_postern, capture):
    p = make_postern(capture.addr, conf={"proxy.threads": 2})
    pol = io_policies(p.proc.pid)
    assert len(pol) == 2
    assert set(pol.values()) == {os.SCHED_BATCH}
    # the worker threads keep the normal policy
    assert os.sched_getscheduler(p.proc.pid) == os.SCHED_OTHER
    p.reload({"proxy.sched_batch": "no"})
    wait_until(lambda: set(io_policies(p.proc.pid).values()) == {os.SCHED_OTHER}, 10,
               what="I/O threads back to SCHED_OTHER after SIGHUP")
    # and they still serve mail
    with smtp_client(p.port) as s:
        s.sendmail("a@example.org", ["b@example.net"], b"Subject: x\r\n\r\nbody\r\n")
    assert len(capture.wait_messages(1)) == 1


def test_io_threads_other_when_off(make_postern, capture):
    p = make_postern(capture.addr, conf={"proxy.sched_batch": "no"})
    assert set(io_policies(p.proc.pid).values()) == {os.SCHED_OTHER}
