"""The dashboard in a real headless Chromium (Debian's chromium,
chromium-driver and python3-selenium): log in, watch a message's verdict
appear, build a rule in the editor and see the next message match it,
release from the quarantine and see the backend get it, and prove that
attacker-written subjects and bodies are shown as text and run nothing.
Every page is photographed into tests/artifacts/ at desktop and phone
width."""
import os
import re
import shutil
import tempfile
import time
import urllib.parse

import pytest

from harness import wait_until
from webapi import PASSWORD, USER, Stack, send_mail

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (ElementClickInterceptedException,  # noqa: E402
                                        ElementNotInteractableException,
                                        NoAlertPresentException,
                                        StaleElementReferenceException)
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "artifacts")
XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(1)>"
HOSTILE_BODY = ("<html><body onload=alert(3)><b>bold</b>"
                "<script>alert(2)</script></body></html>\n")


@pytest.fixture(scope="module")
def st():
    s = Stack().start()
    yield s
    s.close()


@pytest.fixture(scope="module")
def drv():
    profile = tempfile.mkdtemp(prefix="postern-chromium-")
    opts = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
              "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
              "--user-data-dir=" + profile, "--window-size=1280,900"):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(shutil.which("chromedriver") or
                                         "/usr/bin/chromedriver"), options=opts)
    d.set_page_load_timeout(30)
    # POSTERN_TEST_UI_LATENCY_MS=N delays each of the browser's requests by N ms:
    # what a loaded machine does by chance, on purpose (shakes out tests
    # that act before the page's loads have answered)
    latency = int(os.environ.get("POSTERN_TEST_UI_LATENCY_MS", "0"))
    if latency:
        d.set_network_conditions(latency=latency, download_throughput=1 << 30,
                                 upload_throughput=1 << 30)
    # POSTERN_TEST_UI_JITTER_MS=N holds each answer the page's fetch() gets
    # back by a random 0..N ms: answers land out of order, as on a loaded
    # machine
    jitter = int(os.environ.get("POSTERN_TEST_UI_JITTER_MS", "0"))
    if jitter:
        d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
const fetch0 = window.fetch;
window.fetch = async (...args) => {
  const r = await fetch0(...args);
  await new Promise((ok) => setTimeout(ok, Math.random() * %d));
  return r;
};""" % jitter})
    os.makedirs(ARTIFACTS, exist_ok=True)
    yield d
    d.quit()
    shutil.rmtree(profile, ignore_errors=True)


def shot(drv, name):
    drv.save_screenshot(os.path.join(ARTIFACTS, "ui-%s.png" % name))


def no_alert(drv):
    try:
        a = drv.switch_to.alert
    except NoAlertPresentException:
        return True
    text = a.text
    a.dismiss()
    raise AssertionError("a JavaScript dialog opened: %r" % text)


def wait_el(drv, css, timeout=15, text=None):
    """The first visible element matching css (and containing text). The
    page re-renders lists as data arrives, so a stale element means look
    again."""
    def find():
        try:
            for e in drv.find_elements(By.CSS_SELECTOR, css):
                if e.is_displayed() and (text is None or text in e.text):
                    return e
        except StaleElementReferenceException:
            pass
        return None
    return wait_until(find, timeout, interval=0.1,
                      what="%s%s on the page" % (css, " with %r" % text if text else ""))


def click(drv, css, text=None, timeout=15, inner=None):
    """Click the element wait_el finds (or the `inner` css inside it), again
    if it went stale meanwhile (a redraw), was hidden (a list reloading) or
    was covered (the sticky flash): the driver refuses those clicks before
    dispatching them, so none is ever made twice."""
    def attempt():
        try:
            e = wait_el(drv, css, timeout, text)
            (e.find_element(By.CSS_SELECTOR, inner) if inner else e).click()
            return True
        except (StaleElementReferenceException, ElementClickInterceptedException,
                ElementNotInteractableException):
            return False
    wait_until(attempt, timeout, interval=0.1, what="a click on %s" % css)


def texts(drv, css):
    """The text of every element matching css, read in one atomic step."""
    return drv.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.innerText)", css)


# The cells' texts of the first shown element matching css (a table row)
# whose text contains text; null while there is none. One script, so a
# redraw cannot come between finding the row and reading it.
_ROW_CELLS = """
const [css, text] = arguments;
for (const e of document.querySelectorAll(css))
  if (e.getClientRects().length && e.innerText.includes(text))
    return [e.innerText, [...e.querySelectorAll('td')].map((c) => c.innerText)];
return null;"""


def row_of(drv, css, text, timeout=15):
    """(text, cell texts) of the first shown element matching css that
    contains text, found and read in one atomic step: an element held
    across steps goes stale when its list is redrawn."""
    return tuple(wait_until(lambda: drv.execute_script(_ROW_CELLS, css, text), timeout,
                            interval=0.1, what="%s with %r on the page" % (css, text)))


def table_cells(drv, css):
    """Every row matching css as its cell texts, read in one atomic step."""
    return drv.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".map((r) => [...r.querySelectorAll('td')].map((c) => c.innerText))", css)


def flashed(drv, text, bad=False):
    """Wait until the flash line (#flash, an error's #flash.bad) says text.
    It hides itself after 4 s (8 s for an error), and a loaded machine may
    look later than that: its words are read whether still shown or not
    (app.js's flash() sets them only to show them)."""
    wait_until(lambda: text in drv.execute_script(
        "const f = document.querySelector(arguments[0]); return f ? f.textContent : ''",
        "#flash.bad" if bad else "#flash"), 15, interval=0.1,
        what="the flash to say %r" % text)


def csp_violations(drv):
    return [l["message"] for l in drv.get_log("browser")
            if "Content Security Policy" in l["message"] or "Refused to" in l["message"]]


def go(drv, st, view):
    """Open a view and wait until the load its route started has been
    drawn (app.js marks the section data-loaded): a test that acts before
    then has its search, tick or click undone by that load's answer."""
    drv.get(st.base + "/#" + view)
    wait_el(drv, "#view-%s[data-loaded]" % view)


def logged_in(drv, st):
    drv.get(st.base + "/")
    wait_until(lambda: drv.find_element(By.ID, "top").is_displayed() or
               drv.find_element(By.ID, "view-login").is_displayed(), 15,
               what="the page to decide login or app")
    if drv.find_element(By.ID, "view-login").is_displayed():
        drv.find_element(By.ID, "login-user").send_keys(USER)
        drv.find_element(By.ID, "login-password").send_keys(PASSWORD)
        drv.find_element(By.CSS_SELECTOR, "#login-form button").click()
        wait_el(drv, "#top")


def test_login_page_then_overview(st, drv):
    # Start logged out whichever test ran before in this browser.
    drv.get(st.base + "/")
    drv.delete_all_cookies()
    drv.get(st.base + "/")
    wait_el(drv, "#login-form")
    shot(drv, "login")
    drv.find_element(By.ID, "login-user").send_keys(USER)
    drv.find_element(By.ID, "login-password").send_keys("not the password")
    drv.find_element(By.CSS_SELECTOR, "#login-form button").click()
    assert "wrong" in wait_el(drv, "#login-error").text
    drv.find_element(By.ID, "login-password").clear()
    logged_in(drv, st)
    wait_el(drv, "#tiles .tile")
    # the overview counts what the MTA took, and what it refused, apart
    assert "accepted by the MTA" in wait_el(drv, "#tiles").text
    assert "refused by the MTA" in wait_el(drv, "#tiles").text
    wait_el(drv, "#chart-time")
    # Chart.js drew on its canvas (the embedded Debian copy loaded).
    assert drv.execute_script("return typeof Chart") == "function"
    assert drv.execute_script("return Chart.getChart(document.getElementById('chart-time')) != null")
    assert wait_el(drv, "#who").text == USER
    # The session cookie is HttpOnly: page script cannot read it.
    assert "postern_session" not in drv.execute_script("return document.cookie")
    assert any(c["name"] == "postern_session" and c["httpOnly"] and
               c.get("sameSite") == "Strict" for c in drv.get_cookies())
    assert not csp_violations(drv)
    shot(drv, "overview")


def test_sent_message_appears_in_verdict_log(st, drv):
    logged_in(drv, st)
    go(drv, st, "verdicts")
    subject = "ui-hello-%d" % time.time_ns()
    assert send_mail(st.postern.port, subject)[0] == 250
    # The open page shows it by itself (no reload, no click).
    row, _ = row_of(drv, "#verdict-table tbody tr", subject, timeout=20)
    assert "127.0.0.2" in row and "accept" in row
    click(drv, "#verdict-table tbody tr", text=subject)
    detail = wait_el(drv, "#verdict-detail")
    assert subject in detail.text and "spf" in detail.text and "pass" in detail.text
    # the backend's own answer, labelled as the MTA's (not ours)
    assert "MTA reply" in detail.text and "Backend reply" not in detail.text
    assert "250" in detail.text and "Outcome" in detail.text
    shot(drv, "verdicts")
    # Overview counts it (the refresh runs every 10 s; reload instead).
    go(drv, st, "overview")
    wait_el(drv, "#top-clients td", text="127.0.0.2")
    shot(drv, "overview-traffic")


def test_hostile_subjects_are_text_and_run_nothing(st, drv):
    logged_in(drv, st)
    tag = "xss-%d" % time.time_ns()
    for s in (XSS_SCRIPT + " " + tag, XSS_IMG + " " + tag):
        assert send_mail(st.postern.port, s)[0] == 250
        st.wait_verdict(s)
    go(drv, st, "verdicts")
    drv.find_element(By.ID, "verdict-q").send_keys(tag)
    drv.find_element(By.CSS_SELECTOR, "#verdict-search button").click()
    # the rows that answer the search (a refresh of the unfiltered list
    # landing after it is dropped by app.js, not drawn)
    cells = wait_until(lambda: drv.find_element(By.ID, "verdict-table").get_attribute("data-q") == tag
                       and (lambda c: c if len(c) == 2 else None)(
                           texts(drv, "#verdict-table td.subj")), 15, what="the two hostile rows alone")
    assert sorted(cells) == sorted([XSS_SCRIPT + " " + tag, XSS_IMG + " " + tag])
    assert not drv.find_elements(By.CSS_SELECTOR, "#verdict-table img, #verdict-table script")
    click(drv, "#verdict-table tbody tr", text=XSS_IMG)
    assert XSS_IMG in wait_el(drv, "#verdict-detail").text
    assert not drv.find_elements(By.CSS_SELECTOR, "main img")
    time.sleep(0.5)   # give a would-be onerror handler its chance to fire
    assert no_alert(drv)
    assert drv.execute_script("return window.__xss === undefined")
    shot(drv, "verdicts-hostile")


# Hold back the answer the page's fetch() gets for the next request whose
# URL matches a regex, by some ms: the order in which a loaded server
# happens to answer, made on purpose. window.__held counts the held-back
# requests not yet answered to the page.
_DELAY = """
const [pattern, ms] = arguments;
if (!window.__delays) {
  window.__delays = [];
  window.__held = 0;
  const fetch0 = window.fetch;
  window.fetch = async (url, opts) => {
    const i = window.__delays.findIndex(([re]) => new RegExp(re).test(String(url)));
    if (i < 0) return fetch0(url, opts);
    const [, wait] = window.__delays.splice(i, 1)[0];
    window.__held++;
    try {
      const r = await fetch0(url, opts);
      await new Promise((ok) => setTimeout(ok, wait));
      return r;
    } finally { window.__held--; }
  };
}
window.__delays.push([pattern, ms]);"""


def delay_answer(drv, pattern, ms):
    """The answer to the page's next request whose URL matches the regex
    pattern reaches the page ms late (until the page is loaded again)."""
    drv.execute_script(_DELAY, pattern, ms)


def held_answers_landed(drv, timeout=20):
    wait_until(lambda: drv.execute_script("return window.__held === 0 && !window.__delays.length"),
               timeout, interval=0.1, what="the held-back answers to reach the page")


def test_verdict_log_refreshes_after_a_late_overview(st, drv):
    """Leaving the overview before its first draw has answered: the
    overview's 10 s timer used to start when that answer came, in the
    verdict log, which then saw a timer set and never started its own 3 s
    refresh. The log shows new mail by itself all the same."""
    logged_in(drv, st)
    delay_answer(drv, r"/api/stats", 1500)
    delay_answer(drv, r"/api/verdicts", 4000)
    # the overview routed, then at once the log (one script: no webdriver
    # round trip between them on a loaded machine)
    drv.execute_async_script("""
const done = arguments[0];
window.addEventListener('hashchange', () => setTimeout(() => { location.hash = '#verdicts'; done(); }, 0),
  { once: true });
location.hash = '#overview';""")
    wait_el(drv, "#view-verdicts")
    held_answers_landed(drv)    # both answers drawn: the overview's came first
    wait_el(drv, "#verdict-table tbody tr")
    subject = "ui-late-overview-%d" % time.time_ns()
    assert send_mail(st.postern.port, subject)[0] == 250
    st.wait_verdict(subject)
    row, _ = row_of(drv, "#verdict-table tbody tr", subject, timeout=20)
    assert "accept" in row


def test_verdict_search_outlives_an_older_load(st, drv):
    """A search asked for while the unfiltered list is on its way: the
    unfiltered answer, landing last, must not replace the search's rows."""
    tag = "late-%d" % time.time_ns()
    for i in range(2):
        assert send_mail(st.postern.port, "%s %d" % (tag, i))[0] == 250
        st.wait_verdict("%s %d" % (tag, i))
    assert send_mail(st.postern.port, "not the search %d" % time.time_ns())[0] == 250
    logged_in(drv, st)
    drv.get(st.base + "/#verdicts")
    wait_el(drv, "#verdict-table tbody tr")
    delay_answer(drv, r"/api/verdicts\?limit=100$", 3000)    # unfiltered only
    drv.find_element(By.CSS_SELECTOR, "#verdict-search button").click()   # q empty: unfiltered
    drv.find_element(By.ID, "verdict-q").send_keys(tag)
    drv.find_element(By.CSS_SELECTOR, "#verdict-search button").click()
    wait_until(lambda: len(texts(drv, "#verdict-table td.subj")) == 2, 15,
               what="the search's two rows")
    held_answers_landed(drv)
    cells = texts(drv, "#verdict-table td.subj")
    assert sorted(cells) == ["%s %d" % (tag, i) for i in range(2)], cells


def fill_rule(drv, name, pattern, action):
    drv.find_element(By.ID, "rule-name").clear()
    drv.find_element(By.ID, "rule-name").send_keys(name)
    drv.find_element(By.ID, "rule-pattern").clear()
    drv.find_element(By.ID, "rule-pattern").send_keys(pattern)
    drv.execute_script("document.getElementById('rule-action').value = arguments[0];"
                       "document.getElementById('rule-action').dispatchEvent(new Event('change'))",
                       action)


def test_rule_built_in_editor_matches_next_message(st, drv):
    logged_in(drv, st)
    go(drv, st, "rules")
    drv.find_element(By.ID, "rule-new").click()
    wait_el(drv, "#rule-form")
    # A bad pattern is refused as it is typed, and the editor says where.
    fill_rule(drv, "ui_quarantine", "UI-QUAR-(\\d+", "quarantine")
    hint = wait_el(drv, "#rule-check.bad", text="offset")
    assert "offset" in hint.text
    assert "^ here" in wait_el(drv, "#rule-where").text
    shot(drv, "rules-bad-pattern")
    fill_rule(drv, "ui_quarantine", "UI-QUAR-\\d+", "quarantine")
    wait_el(drv, "#rule-check.good", text="compiles")
    # Try it on a pasted message before saving.
    drv.find_element(By.CSS_SELECTOR, "#rule-test-box summary").click()
    drv.find_element(By.ID, "rule-test-msg").send_keys(
        "From: a@b.test\nSubject: hello UI-QUAR-42\n\nbody\n")
    drv.find_element(By.ID, "rule-test").click()
    assert "Matches in subject" in wait_el(drv, "#rule-test-result", text="Matches").text
    shot(drv, "rules-editor")
    drv.find_element(By.ID, "rule-save").click()
    wait_el(drv, "#rule-table tbody tr", text="ui_quarantine")
    flashed(drv, "saved")
    assert not drv.find_element(By.ID, "rule-form").is_displayed()
    shot(drv, "rules")
    # The switch in the list disables and enables it again.
    api = st.bearer()

    def enabled():
        return [r["enabled"] for r in api.get("/api/rules")[2]["rules"]
                if r["name"] == "ui_quarantine"][0]
    # (its own row: other tests' rules may be listed first)
    # the editor's own "saved" is still in the flash: clear it, so the
    # toggle's message is the one read
    drv.execute_script("document.getElementById('flash').textContent = ''")
    click(drv, "#rule-table tbody tr", text="ui_quarantine", inner="input[type=checkbox]")
    wait_until(lambda: enabled() is False, 10, what="the rule to be disabled")
    flashed(drv, "saved")
    click(drv, "#rule-table tbody tr", text="ui_quarantine", inner="input[type=checkbox]")
    wait_until(lambda: enabled() is True, 10, what="the rule to be enabled again")
    # The next message matches it: quarantined, not delivered.
    before = len(st.cap.accepted())
    code, text = send_mail(st.postern.port, "UI-QUAR-7 " + XSS_IMG, body=HOSTILE_BODY)
    assert code == 250 and "quarantined as" in text, text
    assert len(st.cap.accepted()) == before


@pytest.fixture(scope="module")
def held_rule(st):
    """A quarantine rule made through the API, so the quarantine tests hold
    their own messages whatever ran before them (the editor test's rule
    matches other subjects: its own assertion stays about its own rule)."""
    status, _, r = st.bearer().post("/api/rules", {
        "name": "ui_held", "target": "subject", "pattern": "UI-HELD-\\d+",
        "action": "quarantine"})
    assert status == 201, r
    return r


def test_quarantine_preview_is_text_and_release_delivers(st, drv, held_rule):
    logged_in(drv, st)
    held = "UI-HELD-7 %d" % time.time_ns()
    code, text = send_mail(st.postern.port, held + " " + XSS_IMG, body=HOSTILE_BODY)
    assert code == 250 and "quarantined as" in text, text
    go(drv, st, "quarantine")
    row, _ = row_of(drv, "#quar-table tbody tr", held)
    assert XSS_IMG in row
    click(drv, "#quar-table tbody tr", text=held)
    pre = wait_el(drv, "#quar-raw").text
    assert "<script>alert(2)</script>" in pre and "<b>bold</b>" in pre
    assert not drv.find_elements(By.CSS_SELECTOR, "#quar-preview b, #quar-preview script, "
                                                  "#quar-preview img")
    assert no_alert(drv)
    shot(drv, "quarantine-preview")
    before = len(st.cap.accepted())
    click(drv, "#quar-preview button", text="Release")
    flashed(drv, "Released")
    msgs = st.cap.wait_messages(before + 1)
    assert held.encode() in msgs[-1].data and msgs[-1].header("X-Postern-Released")
    # Gone from the held list; listed under "released" with its state.
    wait_until(lambda: not [t for t in texts(drv, "#quar-table tbody tr") if held in t],
               10, what="the released message to leave the held list")
    drv.execute_script("const s = document.getElementById('quar-state'); s.value = 'released';"
                       "s.dispatchEvent(new Event('change'))")
    row, _ = row_of(drv, "#quar-table tbody tr", held)
    assert "released" in row
    shot(drv, "quarantine")
    assert no_alert(drv)


def quar_bulk(drv, st, tag, button):
    """Search the quarantine for tag, tick the two messages it finds, press
    the bulk button, accept its confirmation (whose text is returned) and
    wait for "2 done"."""
    go(drv, st, "quarantine")
    drv.find_element(By.ID, "quar-q").send_keys(tag)
    drv.find_element(By.CSS_SELECTOR, "#quar-search button").click()
    # the view's own unfiltered load may land after the search's: wait for
    # the rows that answer the search, or the tick below is lost to a redraw
    wait_until(lambda: drv.find_element(By.ID, "quar-table").get_attribute("data-q") == tag and
               len([t for t in texts(drv, "#quar-table tbody tr") if tag in t]) == 2,
               15, what="both messages listed for the search")
    click(drv, "#quar-all")
    click(drv, button)
    confirm = wait_until(lambda: _alert(drv), 10, what="the confirmation dialog")
    text = confirm.text
    confirm.accept()
    flashed(drv, "2 done")
    return text


def test_quarantine_search_outlives_an_older_load(st, drv, held_rule):
    """The race CI met in the bulk tests, made every time: the unfiltered
    list answers after the search asked for later, and must not replace
    the search's rows (nor clear their ticks)."""
    tag = "qlate-%d" % time.time_ns()
    for i in range(2):
        code, text = send_mail(st.postern.port, "UI-HELD-%d %s" % (200 + i, tag))
        assert "quarantined as" in text, text
    code, text = send_mail(st.postern.port, "UI-HELD-299 not the search %d" % time.time_ns())
    assert "quarantined as" in text, text
    logged_in(drv, st)
    go(drv, st, "quarantine")
    delay_answer(drv, r"/api/quarantine\?limit=200&state=held$", 3000)     # unfiltered only
    drv.find_element(By.CSS_SELECTOR, "#quar-search button").click()     # q empty: unfiltered
    drv.find_element(By.ID, "quar-q").send_keys(tag)
    drv.find_element(By.CSS_SELECTOR, "#quar-search button").click()
    wait_until(lambda: len(texts(drv, "#quar-table td.subj")) == 2, 15, what="the search's rows")
    click(drv, "#quar-all")
    held_answers_landed(drv)
    assert drv.find_element(By.ID, "quar-table").get_attribute("data-q") == tag
    assert sorted(texts(drv, "#quar-table td.subj")) == ["UI-HELD-%d %s" % (200 + i, tag)
                                                          for i in range(2)]
    assert drv.execute_script("return [...document.querySelectorAll('#quar-table .pick')]"
                              ".every((b) => b.checked)")


def test_quarantine_bulk_delete(st, drv, held_rule):
    logged_in(drv, st)
    tag = "bulk-%d" % time.time_ns()
    for i in range(2):
        code, text = send_mail(st.postern.port, "UI-HELD-%d %s" % (100 + i, tag))
        assert "quarantined as" in text, text
    assert "Delete 2 message" in quar_bulk(drv, st, tag, "#quar-bulk-delete")
    api = st.bearer()
    wait_until(lambda: not [m for m in api.get("/api/quarantine?q=" + tag)[2]["messages"]],
               10, what="both messages deleted")
    shot(drv, "quarantine-bulk")


def _alert(drv):
    try:
        return drv.switch_to.alert
    except NoAlertPresentException:
        return None


def test_lists_page_allowlist_and_remove(st, drv):
    logged_in(drv, st)
    go(drv, st, "lists")
    drv.find_element(By.ID, "access-value").send_keys("198.51.100.0/24")
    drv.find_element(By.ID, "access-note").send_keys("partner relay")
    drv.find_element(By.CSS_SELECTOR, "#access-form button").click()
    row, _ = row_of(drv, "#access-table tbody tr", "198.51.100.0/24")
    assert "partner relay" in row and "allow" in row
    rows = st.bearer().get("/api/access")[2]["entries"]
    assert any(r["value"] == "198.51.100.0/24" for r in rows)
    shot(drv, "lists")
    click(drv, "#access-table tbody tr", text="198.51.100.0/24", inner="button")
    wait_until(lambda: not [r for r in st.bearer().get("/api/access")[2]["entries"]
                            if r["value"] == "198.51.100.0/24"], 10,
               what="the entry to be removed")


def test_greylist_page_shows_reason_and_passes_by_hand(drv):
    """A stack with greylisting on: the deferred triplet is listed with its
    reason and attempts; Pass lets the next attempt through at once, Forget
    removes it (its next attempt is a new triplet)."""
    from harness import smtp_client
    g = Stack(conf={"greylist.enabled": "yes", "greylist.auto_allow": "0"}).start()
    try:
        def rcpt():
            with smtp_client(g.postern.port, source="127.0.0.2") as s:
                s.ehlo("client.sender.test")
                s.mail("alice@sender.test")
                return s.rcpt("bob@example.org")[0]

        assert rcpt() == 450
        assert rcpt() == 450
        logged_in(drv, g)
        go(drv, g, "lists")
        row, cells = row_of(drv, "#grey-table tbody tr", "bob@example.org")
        assert "deferred: retry too early" in row and "alice@sender.test" in row
        assert cells[6] == "2"      # attempts
        shot(drv, "greylist")
        click(drv, "#grey-table tbody tr button.grey-pass")
        wait_until(lambda: [t["passed"] for t in g.bearer().get("/api/greylist")[2]["triplets"]]
                   == [1], 10, what="the triplet to pass")
        wait_el(drv, "#grey-table tbody tr", text="passed")
        assert send_mail(g.postern.port, "after a pass by hand")[0] == 250
        click(drv, "#grey-table tbody tr button.grey-forget")
        wait_until(lambda: g.bearer().get("/api/greylist")[2]["triplets"] == [], 10,
                   what="the triplet to be forgotten")
        wait_el(drv, "#grey-table tbody tr", text="No greylist entries.")
        assert rcpt() == 450
    finally:
        g.close()


@pytest.mark.parametrize("view", ["overview", "verdicts", "quarantine", "rules", "lists", "domains"])
def test_phone_width_has_no_page_overflow(st, drv, view):
    logged_in(drv, st)
    drv.set_window_size(390, 844)
    try:
        go(drv, st, view)        # its data drawn: the width is the full page's
        over = drv.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth")
        shot(drv, "phone-" + view)
        assert over <= 1, "page is %dpx wider than a phone" % over
    finally:
        drv.set_window_size(1280, 900)
    assert not csp_violations(drv)


def test_rule_hits_sparkline_and_log_only_switch(st, drv):
    """The rules page shows a rule's hits (today / 7 / 30 days) and a bar
    per day; the editor's "Log only" box shows and clears the flag."""
    api = st.bearer()
    status, _, rule = api.post("/api/rules", {
        "name": "ui_spark", "target": "subject", "pattern": "SPARK-HIT-\\d+",
        "action": "reject", "score": 5, "log_only": True})
    assert status == 201, rule
    for i in range(2):
        code, text = send_mail(st.postern.port, "SPARK-HIT-%d" % i)
        assert code == 250, text        # log-only: no reject
    wait_until(lambda: [r for r in api.get("/api/rules")[2]["rules"]
                        if r["name"] == "ui_spark"][0]["hits"]["today"] == 2, 20,
               what="the hits to be counted")
    logged_in(drv, st)
    go(drv, st, "rules")
    row, _ = row_of(drv, "#rule-table tbody tr", "ui_spark")
    assert "2 / 2 / 2" in row and "log-only" in row
    bars = drv.execute_script(
        "const r = [...document.querySelectorAll('#rule-table tbody tr')]"
        "  .find(t => t.innerText.includes('ui_spark'));"
        "return [...r.querySelectorAll('svg.spark rect:not(.base)')].map(b => +b.getAttribute('height'))")
    assert len(bars) == 30 and bars[-1] == 16 and bars[:-1] == [0] * 29
    shot(drv, "rules-hits")
    # the editor shows the flag; clearing it and saving makes the rule act
    click(drv, "#rule-table tbody tr", text="ui_spark")
    wait_el(drv, "#rule-form")
    assert drv.find_element(By.ID, "rule-logonly").is_selected()
    wait_el(drv, "#rule-check.good", text="compiles")
    drv.find_element(By.ID, "rule-logonly").click()
    drv.find_element(By.ID, "rule-save").click()
    wait_until(lambda: api.get("/api/rules/%d" % rule["id"])[2]["log_only"] is False, 10,
               what="log_only to be cleared")
    assert api.get("/api/rules/%d" % rule["id"])[2]["action"] == "reject"
    assert not csp_violations(drv)
    code, text = send_mail(st.postern.port, "SPARK-HIT-9")
    assert code == 550 and "ui_spark" in text


def test_make_rule_from_verdict(st, drv):
    """"Make a rule from this" on a verdict opens the editor pre-filled from
    its subject, escaped to match literally and log-only; saved, it matches
    the same subject again and not one differing where a regex would not
    care."""
    subject = "Rule (from) me? v1.5 $9"
    assert send_mail(st.postern.port, subject)[0] == 250
    logged_in(drv, st)
    go(drv, st, "verdicts")
    click(drv, "#verdict-table tbody tr", text=subject, timeout=20)
    click(drv, "#verdict-detail .rule-from button", text="subject")
    wait_el(drv, "#rule-form")
    assert drv.find_element(By.ID, "rule-form-title").text == "New rule"
    assert drv.find_element(By.ID, "rule-target").get_attribute("value") == "subject"
    pattern = drv.find_element(By.ID, "rule-pattern").get_attribute("value")
    assert pattern == r"Rule \(from\) me\? v1\.5 \$9"
    assert drv.find_element(By.ID, "rule-logonly").is_selected()
    name = drv.find_element(By.ID, "rule-name").get_attribute("value")
    assert name == "subject_Rule_from_me_v1.5_9"
    wait_el(drv, "#rule-check.good", text="compiles")
    drv.find_element(By.ID, "rule-save").click()
    wait_el(drv, "#rule-table tbody tr", text=name)
    assert not csp_violations(drv)
    api = st.bearer()
    saved = [r for r in api.get("/api/rules")[2]["rules"] if r["name"] == name][0]
    assert saved["log_only"] is True and saved["pattern"] == pattern
    # the same subject matches; "v1x5" would match an unescaped "." but not this
    assert send_mail(st.postern.port, subject)[0] == 250
    assert send_mail(st.postern.port, "Rule (from) me? v1x5 $9")[0] == 250
    hit = {"check": "rule", "result": "log-only", "score": 0, "reason": name}
    wait_until(lambda: any(hit in v["checks"] for v in api.get(
        "/api/verdicts?q=" + urllib.parse.quote("v1.5"))[2]["verdicts"]), 20,
        what="the new rule to match its message")
    other = st.wait_verdict("v1x5")
    assert hit not in other["checks"]
