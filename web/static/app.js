/*
 * app.js -- the Postern dashboard. Plain DOM, no framework.
 *
 * Safety rule: everything shown comes from mail senders or admins, so text
 * is only ever set with textContent / value / createTextNode, never parsed
 * as markup (tests/integration/test_api.py greps this file for the HTML
 * sinks). A message's HTML is shown as its source text. State changes
 * carry the session's CSRF token.
 */
'use strict';

const P = { csrf: null, user: null, view: null, timer: null, charts: {},
  range: 'hour', verdicts: [], verdictBefore: 0, quar: [], rules: [], editing: 0,
  grey: { triplets: [], auto: [] }, access: [] };

const $ = (id) => document.getElementById(id);

/* A view's loads can overlap (its own first load, a search, the reload
 * after an action, a refresh timer) and be answered out of order. Each
 * load takes a ticket, and an answer is drawn only while its ticket is the
 * newest: ticket('quar') starts a load; ticket('verdicts', true) joins the
 * current one (a refresh that must not void a search on its way). */
const tickets = {};
function ticket(name, join) {
  if (!join) tickets[name] = (tickets[name] || 0) + 1;
  const t = tickets[name];
  return () => tickets[name] === t;
}

/* el('td', {class: 'x'}, 'text', child) -- children as text or nodes. */
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) {
    if (k === null || k === undefined) continue;
    e.appendChild(typeof k === 'object' ? k : document.createTextNode(String(k)));
  }
  return e;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

async function api(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  if (method !== 'GET' && P.csrf) opts.headers['X-CSRF-Token'] = P.csrf;
  const r = await fetch(path, opts);
  const ct = r.headers.get('Content-Type') || '';
  const data = ct.startsWith('application/json') ? await r.json() : await r.text();
  if (r.status === 401 && path !== '/api/login') { showLogin(); throw new Error('please log in'); }
  if (!r.ok) {
    const err = new Error((data && data.error) || ('HTTP ' + r.status));
    err.status = r.status; err.data = data;
    throw err;
  }
  return data;
}

function flash(msg, bad) {
  const f = $('flash');
  f.textContent = msg;
  f.className = 'flash' + (bad ? ' bad' : '');
  f.hidden = false;
  clearTimeout(flash.t);
  flash.t = setTimeout(() => { f.hidden = true; }, bad ? 8000 : 4000);
}

const fmtTime = (ts) => ts ? new Date(ts * 1000).toLocaleString() : '';
const fmtScore = (s) => (typeof s === 'number' ? s.toFixed(1) : '');
const badge = (v) => el('span', { class: 'badge ' + String(v || '').replace(/[^a-z]/g, '') }, v || '');
const list = (a) => Array.isArray(a) ? a.join(', ') : (a || '');

/* ---------------------------------------------------------------- login */

function showLogin() {
  $('top').hidden = true;
  for (const v of document.querySelectorAll('.view')) v.hidden = true;
  $('view-login').hidden = false;
  stopTimer();
}

async function login(ev) {
  ev.preventDefault();
  const errp = $('login-error');
  errp.hidden = true;
  try {
    const r = await api('POST', '/api/login', { user: $('login-user').value, password: $('login-password').value });
    $('login-password').value = '';
    started(r);
  } catch (e) {
    errp.textContent = e.message;
    errp.hidden = false;
  }
}

function started(s) {
  P.csrf = s.csrf; P.user = s.user;
  $('who').textContent = s.user;
  $('top').hidden = false;
  $('view-login').hidden = true;
  route();
}

async function logout() {
  try { await api('POST', '/api/logout'); } catch (e) { /* gone anyway */ }
  P.csrf = null;
  showLogin();
}

/* -------------------------------------------------------------- routing */

const VIEWS = { overview: drawOverview, verdicts: loadVerdicts, quarantine: loadQuarantine,
  rules: loadRules, lists: loadLists, domains: loadDomains };
/* What a view redraws while it is open, and how often (ms). */
const REFRESH = { overview: [() => drawOverview(), 10000], verdicts: [() => newerVerdicts(), 3000] };

function stopTimer() { if (P.timer) clearInterval(P.timer); P.timer = null; }

/* Show the view the hash names and load it. Its refresh timer starts here,
 * not when the load answers: a load answered after the admin moved on
 * would start a timer no route stops. The section gets data-loaded once
 * this route's load has been drawn (tests wait for it). */
function route() {
  if (!P.csrf) return;
  const name = (location.hash || '#overview').slice(1);
  const view = VIEWS[name] ? name : 'overview';
  const current = ticket('route');
  const sec = $('view-' + view);
  P.view = view;
  stopTimer();
  delete sec.dataset.loaded;
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== 'view-' + view;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('on', a.dataset.view === view);
  VIEWS[view]().then(() => { if (current()) sec.dataset.loaded = 'yes'; })
    .catch((e) => flash(e.message, true));
  const r = REFRESH[view];
  if (r) P.timer = setInterval(() => r[0]().catch(() => {}), r[1]);
}

/* ------------------------------------------------------------- overview */

/* How transactions ended (/api/stats "outcome:<o>"): accept is mail the
 * MTA took; backend-* is the MTA's own answer, the rest Postern's or the
 * client's. */
const OUTCOME_KINDS = ['accept', 'quarantine', 'reject', 'tempfail', 'backend-reject',
  'backend-tempfail', 'backend-lost', 'abandoned'];
const OUTCOME_COLORS = { accept: '#1e7b34', quarantine: '#7b3fa8', reject: '#b3261e', tempfail: '#1f5fbf',
  'backend-reject': '#e0746c', 'backend-tempfail': '#7fa6e0', 'backend-lost': '#5a6b80', abandoned: '#b8bec8' };
const BUCKET = { hour: 60, day: 1800, week: 21600 };

function tile(label, n) {
  return el('div', { class: 'tile' }, el('div', { class: 'n' }, String(n)), el('div', { class: 'l' }, label));
}

function topTable(id, rows) {
  const t = clear($(id));
  if (!rows.length) t.appendChild(el('tr', {}, el('td', { class: 'hint' }, 'nothing yet')));
  for (const [name, n] of rows) t.appendChild(el('tr', {}, el('td', {}, name), el('td', {}, String(n))));
}

async function drawOverview() {
  const current = ticket('overview');
  const s = await api('GET', '/api/stats?range=' + P.range);
  if (!current()) return;	// a newer draw (another range, the timer) was asked for
  const tot = s.totals || {};
  const live = s.live || {};
  const sum = (k) => tot['outcome:' + k] || 0;
  const tiles = clear($('tiles'));
  tiles.append(tile('transactions (' + s.range + ')', OUTCOME_KINDS.reduce((a, k) => a + sum(k), 0)),
    tile('accepted by the MTA', sum('accept')), tile('quarantined', sum('quarantine')),
    tile('rejected', sum('reject')), tile('tempfailed', sum('tempfail')),
    tile('refused by the MTA', sum('backend-reject') + sum('backend-tempfail')),
    tile('MTA unreachable', sum('backend-lost')), tile('abandoned', sum('abandoned')),
    tile('sessions open', live.sessions_active || 0), tile('sessions since start', live.sessions || 0),
    tile('database', live.db_ok ? 'ok' : 'FAILING'));
  drawBayesTiles(s.bayes);
  drawTimeChart(s);
  drawVerdictChart(sum);
  const top = s.top || {};
  topTable('top-clients', top.clients || []);
  topTable('top-domains', top.sender_domains || []);
  topTable('top-rules', top.rules || []);
  const lists = await api('GET', '/api/lists');
  if (current()) drawDnsLists(lists);
}

/* Each DNS list's health (rbl.health_interval): a list whose state is not
 * ok is skipped by policy until it answers its test entries again. */
function drawDnsLists(d) {
  const tb = clear($('dnslists').tBodies[0]);
  const rows = d.lists || [];
  if (!rows.length)
    tb.appendChild(el('tr', {}, el('td', { colSpan: 8, class: 'hint' },
      d.interval ? 'No DNS lists configured.' : 'List probes are off (rbl.health_interval = 0).')));
  const share = (x) => x.share_this_hour === null ? '' : ' (' + Math.round(x.share_this_hour * 100) + '%)';
  for (const x of rows)
    tb.appendChild(el('tr', { 'data-zone': x.zone }, el('td', {}, x.zone), el('td', {}, x.kind),
      el('td', {}, el('span', { class: 'badge ' + (x.state === 'ok' ? 'pass' : x.state === 'unknown' ? '' : 'fail') }, x.state)),
      el('td', { class: 'mono' }, x.answers.listed_entry), el('td', { class: 'mono' }, x.answers.unlisted_entry),
      el('td', {}, x.last_probe ? x.latency_ms + ' ms' : ''), el('td', {}, x.listed_this_hour + share(x)),
      el('td', {}, fmtTime(x.last_probe))));
}

/* The classifier: what it has learned (every process), and its verdicts
 * since this process started. */
function drawBayesTiles(b) {
  const t = clear($('bayes-tiles'));
  if (!b) { t.appendChild(el('p', { class: 'hint' }, 'The classifier\'s counts could not be read.')); return; }
  const v = b.verdicts || {};
  t.append(tile('learned as spam', b.learned_spam || 0), tile('learned as ham', b.learned_ham || 0),
    tile('tokens', b.tokens || 0), tile('verdicts: spam', v.spam || 0), tile('verdicts: ham', v.ham || 0),
    tile('verdicts: unsure', v.unsure || 0), tile('verdicts: untrained', v.untrained || 0));
}

function drawTimeChart(s) {
  if (typeof Chart === 'undefined') return;
  const step = BUCKET[s.range] || 60;
  const start = s.since - (s.since % step);
  const n = Math.ceil((s.now - start) / step);
  const labels = [];
  const series = {};
  for (const k of OUTCOME_KINDS) series[k] = new Array(n).fill(0);
  for (let i = 0; i < n; i++) {
    const d = new Date((start + i * step) * 1000);
    labels.push(s.range === 'hour' || s.range === 'day'
      ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
      : d.toLocaleString([], { weekday: 'short', hour: '2-digit' }));
  }
  for (const m of s.minutes || []) {
    if (!m.name.startsWith('outcome:')) continue;
    const k = m.name.slice(8);
    const i = Math.floor((m.minute - start) / step);
    if (series[k] && i >= 0 && i < n) series[k][i] += m.n;
  }
  const datasets = OUTCOME_KINDS.map((k) => ({ label: k, data: series[k],
    backgroundColor: OUTCOME_COLORS[k], borderWidth: 0 }));
  if (P.charts.time) {
    P.charts.time.data.labels = labels;
    P.charts.time.data.datasets.forEach((d, i) => { d.data = datasets[i].data; });
    P.charts.time.update('none');
    return;
  }
  P.charts.time = new Chart($('chart-time'), { type: 'bar', data: { labels, datasets },
    options: { responsive: true, maintainAspectRatio: false, animation: false,
      scales: { y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
        x: { stacked: true, ticks: { maxTicksLimit: 12 } } } } });
}

function drawVerdictChart(sum) {
  if (typeof Chart === 'undefined') return;
  const data = OUTCOME_KINDS.map(sum);
  if (P.charts.verdicts) {
    P.charts.verdicts.data.datasets[0].data = data;
    P.charts.verdicts.update('none');
    return;
  }
  P.charts.verdicts = new Chart($('chart-verdicts'), { type: 'doughnut',
    data: { labels: OUTCOME_KINDS, datasets: [{ data, backgroundColor: OUTCOME_KINDS.map((k) => OUTCOME_COLORS[k]) }] },
    options: { responsive: true, maintainAspectRatio: false, animation: false } });
}

/* ------------------------------------------------------------- verdicts */

/* The verdict log, newest first; "more" appends older rows. While the page
 * is open, newer transactions are prepended every few seconds. */
async function loadVerdicts(more) {
  const q = more ? P.verdictQ : $('verdict-q').value.trim();
  const current = ticket('verdicts');
  let url = '/api/verdicts?limit=100';
  if (q) url += '&q=' + encodeURIComponent(q);
  if (more && P.verdictBefore) url += '&before=' + P.verdictBefore;
  P.verdictLoads = (P.verdictLoads || 0) + 1;
  let r;
  try { r = await api('GET', url); } finally { P.verdictLoads--; }
  if (!current()) return;	// a newer search was asked for meanwhile: its answer wins
  P.verdicts = more ? P.verdicts.concat(r.verdicts) : r.verdicts;
  P.verdictQ = q;
  $('verdict-table').dataset.q = q;	// which search the rows answer
  P.verdictBefore = r.verdicts.length ? r.verdicts[r.verdicts.length - 1].id : 0;
  $('verdict-more').hidden = r.verdicts.length < 100;
  drawVerdicts();
  if (!more) $('verdict-detail').hidden = true;
}

/* The refresh: rows newer than the newest shown, for the search shown (not
 * one typed and not yet asked for). None while a load is on its way (the
 * list it draws is the one to refresh; rows of the shown search would be
 * prepended to it), and dropped if a load started meanwhile. */
async function newerVerdicts() {
  if (P.verdictLoads) return;
  const q = P.verdictQ || '';
  const current = ticket('verdicts', true);
  const r = await api('GET', '/api/verdicts?limit=100' + (q ? '&q=' + encodeURIComponent(q) : ''));
  if (!current()) return;
  const top = P.verdicts.length ? P.verdicts[0].id : 0;
  const fresh = r.verdicts.filter((v) => v.id > top);
  if (!fresh.length) return;
  P.verdicts = fresh.concat(P.verdicts);
  drawVerdicts();
}

function drawVerdicts() {
  const tb = clear($('verdict-table').tBodies[0]);
  if (!P.verdicts.length) tb.appendChild(el('tr', {}, el('td', { colSpan: 8, class: 'hint' }, 'No transactions yet.')));
  for (const v of P.verdicts) {
    tb.appendChild(el('tr', { on: { click: (ev) => showVerdict(v, ev.currentTarget) } },
      el('td', {}, fmtTime(v.ts)), el('td', {}, v.client_ip), el('td', {}, v.mail_from),
      el('td', {}, list(v.rcpts)), el('td', { class: 'subj' }, v.subject),
      el('td', { class: 'num' }, fmtScore(v.score)), el('td', {}, badge(v.verdict)),
      el('td', { class: 'outcome' }, badge(v.outcome))));
  }
}

function kv(pairs) {
  const dl = el('dl', { class: 'kv' });
  for (const [k, v] of pairs)
    if (v !== undefined && v !== null && v !== '') dl.append(el('dt', {}, k), el('dd', {}, v));
  return dl;
}

/* Every check's result and reason, as a table. */
function checksTable(checks) {
  const t = el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'Check'), el('th', {}, 'Result'),
    el('th', { class: 'num' }, 'Score'), el('th', {}, 'Reason'))));
  const tb = el('tbody');
  for (const c of checks || [])
    tb.appendChild(el('tr', {}, el('td', {}, c.check), el('td', {}, badge(c.result)),
      el('td', { class: 'num' }, fmtScore(c.score)), el('td', {}, c.reason || '')));
  t.appendChild(tb);
  return t;
}

/* The classifier's verdict, read from its check's reason, which
 * policy/bayes.c (bayes_reason) writes as "probability P (U of N tokens;
 * S spam, H ham learned); top: TOKEN F, TOKEN F, ...". Token text comes
 * from the message: it is only ever shown as text. */
function bayesInfo(checks) {
  const c = (checks || []).find((x) => x.check === 'bayes');
  if (!c) return null;
  const r = c.reason || '';
  const m = /^probability ([0-9.]+) \((\d+) of (\d+) tokens/.exec(r);
  const mk = /; markov ([+-]\d+\.\d+), words ([01]\.\d+)/.exec(r);
  const fp = /; sure on a first pass: (\d+) bytes of text, (\d+) of the Markov text/.exec(r);
  const info = { result: c.result, score: c.score, reason: r, prob: m ? parseFloat(m[1]) : null,
    used: m ? m[2] : '', tokens: m ? m[3] : '', top: [],
    markov: mk ? mk[1] + ' (words alone ' + mk[2] + ')' : '',
    read: fp ? 'a first pass (sure): ' + fp[1] + ' bytes of text, ' + fp[2] + ' of the Markov text' : m ? 'all' : '' };
  const at = r.indexOf('; top: ');
  if (at >= 0) {
    const re = /(.+?) ([01]\.\d{3})(?:, |$)/g;
    const rest = r.slice(at + 7);
    for (let t = re.exec(rest); t; t = re.exec(rest)) info.top.push([t[1], parseFloat(t[2])]);
  }
  return info;
}

function bayesBox(checks) {
  const b = bayesInfo(checks);
  if (!b) return null;
  const box = el('div', { class: 'bayes' }, el('h3', {}, 'Classifier'),
    kv([['Verdict', badge(b.result)], ['Spam probability', b.prob === null ? '' : b.prob.toFixed(4)],
      ['Tokens weighed', b.prob === null ? '' : b.used + ' of ' + b.tokens],
      ['Markov part', b.markov], ['Text read', b.read], ['Score', fmtScore(b.score)],
      ['Note', b.prob === null ? b.reason : '']]));
  if (b.top.length) {
    const tb = el('tbody');
    for (const [tok, f] of b.top)
      tb.appendChild(el('tr', {}, el('td', { class: 'mono tok' }, tok),
        el('td', {}, badge(f >= 0.5 ? 'spam' : 'ham')), el('td', { class: 'num' }, f.toFixed(3))));
    box.appendChild(el('table', { class: 'bayes-top' }, el('thead', {}, el('tr', {},
      el('th', {}, 'Token that weighed most'), el('th', {}, 'Leans'), el('th', { class: 'num' }, 'p(spam)'))), tb));
  }
  return box;
}

/* "Spam" / "Not spam": teach the classifier; the message stays held. */
function learnButtons(id) {
  return el('div', { class: 'row learn' },
    el('button', { type: 'button', class: 'learn-spam', on: { click: () => learnAs(id, 'spam') } }, 'Spam'),
    el('button', { type: 'button', class: 'ghost learn-ham', on: { click: () => learnAs(id, 'ham') } }, 'Not spam'));
}

async function learnAs(id, cls) {
  try {
    const r = await api('POST', '/api/learn', { id, class: cls });
    flash('Learned ' + id + ' as ' + cls + (r.changed ? (r.was ? ' (was ' + r.was + ')' : '') : ' (already)'));
  } catch (e) { flash(e.message, true); }
}

/* A quarantine verdict names its message in the reply the client got
 * (logged as backend_reply: the quarantine answered in the backend's
 * place); while that message is still held, the verdict offers the
 * learning buttons. The detail's data-held says "yes" or "no" once the
 * check is done (tests wait for it), unless another detail was opened
 * meanwhile (current). */
async function verdictLearn(v, d, current) {
  const m = v.verdict === 'quarantine' &&
    /quarantined as ([A-Za-z0-9_-]+)/.exec((v.backend_reply || '') + ' ' + (v.reply || ''));
  let q = null;
  if (m) try { q = await api('GET', '/api/quarantine/' + encodeURIComponent(m[1])); } catch (e) { q = null; }
  if (!current()) return;
  const held = !!q && q.state === 'held';
  if (held) d.appendChild(el('div', {}, el('h3', {}, 'Held as ' + m[1]), learnButtons(m[1])));
  d.dataset.held = held ? 'yes' : 'no';
}

function showVerdict(v, tr) {
  for (const r of tr.parentNode.children) r.classList.remove('sel');
  tr.classList.add('sel');
  const current = ticket('verdict-detail');
  const d = clear($('verdict-detail'));
  delete d.dataset.held;
  d.append(el('h3', {}, 'Transaction ' + (v.sid || v.id)),
    kv([['Time', fmtTime(v.ts)], ['Client', v.client_ip + (v.client_name ? ' (' + v.client_name + ')' : '')],
      ['HELO', v.helo], ['From', v.mail_from], ['To', list(v.rcpts)], ['Subject', v.subject],
      ['Message-ID', v.msgid], ['Size', v.size + ' bytes'], ['Score', fmtScore(v.score)],
      ['Verdict', badge(v.verdict)], ['Outcome', badge(v.outcome)],
      ['Ended at', v.stage], ['Our reply', v.reply], ['MTA reply', v.mta_reply],
      ['Time taken', v.ms + ' ms']]));
  d.appendChild(checksTable(v.checks));
  d.appendChild(ruleFromButtons(v));
  const bb = bayesBox(v.checks);
  if (bb) d.appendChild(bb);
  verdictLearn(v, d, current).catch(() => {});
  d.hidden = false;
  d.scrollIntoView({ block: 'nearest' });
}

/* "Make a rule from this": the rules editor opens pre-filled from the
 * verdict's sender or subject (the text escaped, so the rule matches it
 * literally), log-only so it can be watched first; for a quarantined
 * message its id is filled in to test the rule against it before saving. */
const reEscape = (s) => s.replace(/[.*+?^${}()|[\]\\\/]/g, '\\$&');
const ruleName = (prefix, s) => (prefix + s.replace(/[^A-Za-z0-9_.-]+/g, '_')).slice(0, 64);

function ruleFrom(v, kind) {
  const qm = /quarantined as ([A-Za-z0-9_-]+)/.exec((v.backend_reply || '') + ' ' + (v.reply || ''));
  const rule = kind === 'sender'
    ? { name: ruleName('sender_', v.mail_from), target: 'mail_from', pattern: '^' + reEscape(v.mail_from) + '$', flags: 'i' }
    : { name: ruleName('subject_', v.subject), target: 'subject', pattern: reEscape(v.subject), flags: 'i' };
  P.prefill = Object.assign(rule, { action: 'score', score: 1, enabled: true, log_only: true,
    test_qid: qm ? qm[1] : '' });
  location.hash = '#rules';
}

function ruleFromButtons(v) {
  return el('div', { class: 'row rule-from' }, 'Make a rule from this: ',
    v.mail_from ? el('button', { type: 'button', class: 'small ghost', on: { click: () => ruleFrom(v, 'sender') } }, 'sender') : null,
    v.subject ? el('button', { type: 'button', class: 'small ghost', on: { click: () => ruleFrom(v, 'subject') } }, 'subject') : null);
}

/* ----------------------------------------------------------- quarantine */

const qid = (m) => String(m.id);

/* What put a message in quarantine: the checks that scored, rules first. */
function reasonText(m) {
  const rs = Array.isArray(m.reasons) ? m.reasons : [];
  const hits = rs.filter((r) => r.check === 'rule' || r.score > 0);
  return (hits.length ? hits : rs).map((r) => r.check === 'rule' ? 'rule ' + (r.reason || '')
    : r.check + '=' + r.result).join(', ');
}

async function loadQuarantine() {
  const q = $('quar-q').value.trim();
  const state = $('quar-state').value;
  const current = ticket('quar');
  const r = await api('GET', '/api/quarantine?limit=200' + (q ? '&q=' + encodeURIComponent(q) : '') +
    (state ? '&state=' + state : ''));
  if (!current()) return;	// a newer search was asked for meanwhile: its answer wins
  P.quar = r.messages || [];
  const tb = clear($('quar-table').tBodies[0]);
  $('quar-table').dataset.q = q;	// which search the rows answer (a late load replaces an earlier one's)
  $('quar-all').checked = false;
  if (!P.quar.length) tb.appendChild(el('tr', {}, el('td', { colSpan: 8, class: 'hint' }, 'The quarantine is empty.')));
  for (const m of P.quar) {
    const box = el('input', { type: 'checkbox', class: 'pick', 'data-id': qid(m), 'aria-label': 'select' });
    box.addEventListener('click', (ev) => ev.stopPropagation());
    tb.appendChild(el('tr', { 'data-id': qid(m), on: { click: (ev) => previewQuar(m, ev.currentTarget) } },
      el('td', {}, box), el('td', {}, fmtTime(m.ts || m.received || m.created)),
      el('td', {}, m.mail_from || m.sender || ''), el('td', {}, list(m.rcpts || m.recipients)),
      el('td', { class: 'subj' }, m.subject || ''), el('td', { class: 'num' }, fmtScore(m.score)),
      el('td', {}, reasonText(m)),
      el('td', {}, m.state === 'held'
        ? el('button', { type: 'button', class: 'small release', on: { click: (ev) => { ev.stopPropagation(); quarAct('release', [qid(m)]); } } }, 'Release')
        : badge(m.state))));
  }
  $('quar-preview').hidden = true;
}

async function previewQuar(m, tr) {
  for (const r of tr.parentNode.children) r.classList.remove('sel');
  tr.classList.add('sel');
  const id = qid(m);
  const current = ticket('quar-preview');
  const [detail, raw] = await Promise.all([api('GET', '/api/quarantine/' + encodeURIComponent(id)),
    api('GET', '/api/quarantine/' + encodeURIComponent(id) + '/raw')]);
  if (!current()) return;	// another row was clicked meanwhile
  const d = clear($('quar-preview'));
  const q = detail;
  const pairs = [['Received', fmtTime(q.ts)],
    ['Client', (q.client_ip || '') + (q.client_name ? ' (' + q.client_name + ')' : '')],
    ['HELO', q.helo], ['From', q.mail_from], ['To', list(q.rcpts)], ['Subject', q.subject],
    ['Message-ID', q.msgid], ['Size', q.size + ' bytes'], ['Score', fmtScore(q.score)],
    ['State', badge(q.state)]];
  if (q.released_at) pairs.push(['Released', fmtTime(q.released_at) + ' by ' + (q.released_by || '')]);
  d.append(...[el('h3', {}, 'Message ' + id), kv(pairs), checksTable(q.reasons), bayesBox(q.reasons),
    q.state === 'held' ? learnButtons(id) : null,
    el('div', { class: 'row' },
      q.state === 'held' ? el('button', { type: 'button', on: { click: () => quarAct('release', [id]) } }, 'Release') : null,
      el('button', { type: 'button', class: 'danger', on: { click: () => quarAct('delete', [id]) } }, 'Delete'),
      el('button', { type: 'button', class: 'danger', on: { click: () => quarAct('spam', [id]) } }, 'Delete as spam'),
      el('a', { href: '/api/quarantine/' + encodeURIComponent(id) + '/raw', download: id + '.eml' }, 'Download')),
    el('h3', {}, 'Headers and body, as text'),
    el('pre', { id: 'quar-raw' }, typeof raw === 'string' ? raw : JSON.stringify(raw))].filter(Boolean));
  d.hidden = false;
  d.scrollIntoView({ block: 'nearest' });
}

/* What each action says when done: release (learns ham), delete, spam
 * (learns spam, then deletes). */
const QUAR_DONE = { release: 'Released ', delete: 'Deleted ', spam: 'Deleted as spam ' };

async function quarAct(action, ids) {
  if (!ids.length) { flash('Select messages first.', true); return; }
  if (action !== 'release' && !confirm((action === 'spam' ? 'Learn as spam and delete ' : 'Delete ') +
    ids.length + ' message(s) for good?')) return;
  try {
    if (ids.length === 1) {
      const path = '/api/quarantine/' + encodeURIComponent(ids[0]);
      await (action === 'delete' ? api('DELETE', path) : api('POST', path + '/' + action, {}));
      flash(QUAR_DONE[action] + ids[0]);
    } else {
      const r = await api('POST', '/api/quarantine/bulk', { action, ids });
      const bad = r.results.filter((x) => x.result !== 'ok');
      flash(action + ': ' + (ids.length - bad.length) + ' done' + (bad.length ? ', ' + bad.length + ' failed' : ''), bad.length > 0);
    }
  } catch (e) { flash(e.message, true); }
  await loadQuarantine();
}

const picked = () => [...document.querySelectorAll('#quar-table .pick:checked')].map((b) => b.dataset.id);

/* ---------------------------------------------------------------- rules */

/* A rule's last 30 days of hits as bars, oldest first; the title says the
 * numbers. SVG attributes, not styles: the CSP allows no inline style. */
const SVG = 'http://www.w3.org/2000/svg';
function sparkline(daily) {
  const w = 3, h = 16, max = Math.max(1, ...daily);
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('width', String(daily.length * w));
  svg.setAttribute('height', String(h));
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'hits per day, last ' + daily.length + ' days: ' + daily.join(' '));
  const base = document.createElementNS(SVG, 'rect');
  base.setAttribute('class', 'base');
  base.setAttribute('y', String(h - 1));
  base.setAttribute('width', String(daily.length * w));
  base.setAttribute('height', '1');
  svg.appendChild(base);
  daily.forEach((n, i) => {
    const bh = n ? Math.max(1, Math.round((n / max) * h)) : 0;
    const r = document.createElementNS(SVG, 'rect');
    r.setAttribute('x', String(i * w));
    r.setAttribute('y', String(h - bh));
    r.setAttribute('width', String(w - 1));
    r.setAttribute('height', String(bh));
    svg.appendChild(r);
  });
  return svg;
}

function hitsCell(hits) {
  const h = hits || { today: 0, days7: 0, days30: 0, daily: [] };
  return el('td', { class: 'hits', title: 'today / 7 days / 30 days' },
    el('span', { class: 'num' }, h.today + ' / ' + h.days7 + ' / ' + h.days30), ' ',
    sparkline(h.daily || []));
}

async function loadRules() {
  const current = ticket('rules');
  const r = await api('GET', '/api/rules');
  if (!current()) return;	// a save or delete reloads the list again: its answer wins
  P.rules = r.rules || [];
  const tb = clear($('rule-table').tBodies[0]);
  if (!P.rules.length) tb.appendChild(el('tr', {}, el('td', { colSpan: 8, class: 'hint' }, 'No rules yet.')));
  for (const rule of P.rules) {
    const on = el('input', { type: 'checkbox', checked: !!rule.enabled, 'aria-label': 'enabled' });
    on.addEventListener('click', (ev) => ev.stopPropagation());
    on.addEventListener('change', () => saveRule(Object.assign({}, rule, { enabled: on.checked }), rule.id));
    tb.appendChild(el('tr', { on: { click: () => editRule(rule) } },
      el('td', {}, on), el('td', {}, rule.name), el('td', {}, rule.target),
      el('td', { class: 'mono subj' }, '/' + rule.pattern + '/' + (rule.flags || '')),
      el('td', {}, badge(rule.action), rule.log_only ? ' ' : null,
        rule.log_only ? el('span', { class: 'badge logonly' }, 'log-only') : null),
      el('td', { class: 'num' }, fmtScore(rule.score)), hitsCell(rule.hits),
      el('td', {}, el('button', { type: 'button', class: 'small danger', on: { click: (ev) => { ev.stopPropagation(); deleteRule(rule); } } }, 'Delete'))));
  }
  if (P.prefill) { editRule(P.prefill); P.prefill = null; }
}

function ruleFromForm() {
  const t = $('rule-target').value;
  return { name: $('rule-name').value.trim(), target: t === 'header' ? 'header:' + $('rule-header').value.trim() : t,
    pattern: $('rule-pattern').value, flags: $('rule-flags').value.trim(), action: $('rule-action').value,
    score: parseFloat($('rule-score').value || '0') || 0, enabled: $('rule-enabled').checked,
    log_only: $('rule-logonly').checked };
}

function editRule(rule) {
  P.editing = rule && rule.id ? rule.id : 0;
  $('rule-form-title').textContent = P.editing ? 'Edit rule ' + rule.name : 'New rule';
  const target = rule ? rule.target : 'subject';
  const isHeader = target.startsWith('header:');
  $('rule-name').value = rule ? rule.name : '';
  $('rule-target').value = isHeader ? 'header' : target;
  $('rule-header').value = isHeader ? target.slice(7) : '';
  $('rule-header-label').hidden = !isHeader;
  $('rule-pattern').value = rule ? rule.pattern : '';
  $('rule-flags').value = rule ? rule.flags || '' : 'i';
  $('rule-action').value = rule ? rule.action : 'score';
  $('rule-score').value = rule ? rule.score : 1;
  $('rule-enabled').checked = rule ? !!rule.enabled : true;
  $('rule-logonly').checked = rule ? !!rule.log_only : false;
  $('rule-test-result').textContent = '';
  $('rule-test-qid').value = rule && rule.test_qid ? rule.test_qid : '';
  if (rule && rule.test_qid) $('rule-test-box').open = true;
  $('rule-form').hidden = false;
  checkRule();
  $('rule-name').focus();
}

/* Validate as the admin types: the server compiles the pattern. */
async function checkRule() {
  const hint = $('rule-check');
  const where = $('rule-where');
  const rule = ruleFromForm();
  const current = ticket('rule-check');	// an older check's answer must not overwrite this one
  where.hidden = true;
  $('rule-pattern').classList.remove('bad');
  if (!rule.name || !rule.pattern) { hint.textContent = 'Name and pattern are required.'; hint.className = 'hint'; return false; }
  try {
    await api('POST', '/api/rules/validate', rule);
    if (!current()) return false;
    hint.textContent = 'Pattern compiles.';
    hint.className = 'hint good';
    return true;
  } catch (e) {
    if (!current()) return false;
    hint.textContent = e.message;
    hint.className = 'hint bad';
    if (e.data && typeof e.data.offset === 'number') {
      $('rule-pattern').classList.add('bad');
      where.textContent = rule.pattern + '\n' + ' '.repeat(e.data.offset) + '^ here';
      where.hidden = false;
    }
    return false;
  }
}

function debounce(fn, ms) { let t; return () => { clearTimeout(t); t = setTimeout(fn, ms); }; }

async function saveRule(rule, id) {
  try {
    if (id) await api('PUT', '/api/rules/' + id, rule);
    else await api('POST', '/api/rules', rule);
    flash('Rule ' + rule.name + ' saved.');
    $('rule-form').hidden = true;
  } catch (e) { flash(e.message, true); }
  await loadRules();
}

async function deleteRule(rule) {
  if (!confirm('Delete rule ' + rule.name + '?')) return;
  try { await api('DELETE', '/api/rules/' + rule.id); flash('Rule ' + rule.name + ' deleted.'); } catch (e) { flash(e.message, true); }
  await loadRules();
}

async function testRule() {
  const out = $('rule-test-result');
  const body = { rule: ruleFromForm() };
  const qidv = $('rule-test-qid').value.trim();
  if (qidv) body.quarantine_id = qidv; else body.message = $('rule-test-msg').value.replace(/\r?\n/g, '\r\n');
  const current = ticket('rule-test');
  try {
    const r = await api('POST', '/api/rules/test', body);
    if (!current()) return;
    out.textContent = r.matched ? 'Matches in ' + r.where + ' at ' + r.offset + ': \u201c' + r.excerpt + '\u201d' : 'No match.';
    out.className = 'hint ' + (r.matched ? 'good' : '');
  } catch (e) { if (current()) { out.textContent = e.message; out.className = 'hint bad'; } }
}

/* ------------------------------------------------ greylist and access */

async function loadLists() {
  const current = ticket('lists');
  const [g, a] = await Promise.all([api('GET', '/api/greylist?limit=500'), api('GET', '/api/access')]);
  if (!current()) return;	// an action reloads the lists again: its answer wins
  P.grey = g; P.access = a.entries || [];
  drawGrey();
  drawAccess();
}

const matches = (q, ...fields) => !q || fields.some((f) => String(f || '').toLowerCase().includes(q));

function drawGrey() {
  const q = $('grey-q').value.trim().toLowerCase();
  const tb = clear($('grey-table').tBodies[0]);
  const rows = (P.grey.triplets || []).filter((t) => matches(q, t.net, t.sender, t.rcpt));
  if (!rows.length) tb.appendChild(el('tr', {}, el('td', { colSpan: 9, class: 'hint' }, 'No greylist entries.')));
  for (const t of rows)
    tb.appendChild(el('tr', {}, el('td', {}, t.net), el('td', {}, t.sender), el('td', {}, t.rcpt),
      el('td', {}, t.passed ? 'passed' : 'deferred: ' + t.reason),
      el('td', {}, fmtTime(t.first_seen)), el('td', {}, t.passed ? '' : fmtTime(t.pass_at)),
      el('td', {}, String(t.attempts)), el('td', {}, fmtTime(t.last_seen)),
      el('td', {}, t.passed ? '' : el('button', { type: 'button', class: 'small grey-pass', on: { click: () => greyHand('pass', t) } }, 'Pass'),
        el('button', { type: 'button', class: 'small grey-forget', on: { click: () => greyHand('forget', t) } }, 'Forget'),
        el('button', { type: 'button', class: 'small', on: { click: () => addAccess('allow', 'client', t.net, 'from greylist') } }, 'Allowlist'))));
  const ta = clear($('grey-auto').tBodies[0]);
  for (const x of (P.grey.auto || []).filter((x) => matches(q, x.net)))
    ta.appendChild(el('tr', {}, el('td', {}, x.net), el('td', {}, String(x.passes)), el('td', {}, fmtTime(x.last_seen))));
}

function drawAccess() {
  const q = $('access-q').value.trim().toLowerCase();
  const tb = clear($('access-table').tBodies[0]);
  const rows = P.access.filter((e) => matches(q, e.list, e.kind, e.value, e.note));
  if (!rows.length) tb.appendChild(el('tr', {}, el('td', { colSpan: 6, class: 'hint' }, 'No entries.')));
  for (const e of rows)
    tb.appendChild(el('tr', {}, el('td', {}, badge(e.list === 'allow' ? 'accept' : 'reject')), el('td', {}, e.kind),
      el('td', {}, e.value), el('td', {}, e.note), el('td', {}, fmtTime(e.created)),
      el('td', {}, el('button', { type: 'button', class: 'small danger', on: { click: () => delAccess(e) } }, 'Remove'))));
  for (const b of tb.querySelectorAll('.badge')) b.textContent = b.className.includes('accept') ? 'allow' : 'deny';
}

/* Pass a triplet by hand (its next attempt goes through) or forget it. */
async function greyHand(action, t) {
  try {
    await api('POST', '/api/greylist/' + action, { net: t.net, sender: t.sender, rcpt: t.rcpt });
    flash((action === 'pass' ? 'Passed ' : 'Forgot ') + t.sender + ' to ' + t.rcpt);
  } catch (e) { flash(e.message, true); }
  await loadLists();
}

async function addAccess(listName, kind, value, note) {
  try {
    const r = await api('POST', '/api/access', { list: listName, kind, value, note });
    flash(r.created ? 'Added ' + listName + ' ' + kind + ' ' + value : 'Already listed: ' + value);
  } catch (e) { flash(e.message, true); }
  await loadLists();
}

async function delAccess(e) {
  try {
    await api('DELETE', '/api/access?list=' + encodeURIComponent(e.list) + '&kind=' + encodeURIComponent(e.kind) + '&value=' + encodeURIComponent(e.value));
    flash('Removed ' + e.value);
  } catch (err) { flash(err.message, true); }
  await loadLists();
}

/* ------------------------------------------------------ domain policies */

/* Every [domain] section and dashboard policy next to the global one
 * (/api/domains); a value a policy sets itself is marked "set". A
 * dashboard policy can be edited (its values back in the form) and
 * deleted; a config section only in the file. */
const DOM_KEYS = [['tag_score', 'policy.tag_score', 'dom-tag'],
  ['quarantine_score', 'policy.quarantine_score', 'dom-quar'],
  ['reject_score', 'policy.reject_score', 'dom-reject'], ['greylisting', 'greylist.enabled'],
  ['allow_senders', 'access.allow_senders', 'dom-allow-senders'],
  ['deny_senders', 'access.deny_senders', 'dom-deny-senders'],
  ['allow_clients', 'access.allow_clients', 'dom-allow-clients'],
  ['deny_clients', 'access.deny_clients', 'dom-deny-clients']];

async function loadDomains() {
  const current = ticket('domains');
  const r = await api('GET', '/api/domains');
  if (!current()) return;	// a save or delete reloads the table again: its answer wins
  $('dom-early').textContent = String(r.global.reject_score_before_rcpt);
  const tb = clear($('domain-table').tBodies[0]);
  const cell = (p, k) => {
    const v = p[k[0]];
    const text = Array.isArray(v) ? v.join(', ') : typeof v === 'boolean' ? (v ? 'on' : 'off') : String(v);
    return el('td', { class: p.set && p.set.includes(k[1]) ? 'set' : 'inherited' }, text);
  };
  const source = (d) => {
    if (d.source !== 'dashboard') return el('td', {}, 'config');
    return el('td', {}, d.shadowed ? 'dashboard (the config wins) ' : 'dashboard ',
      el('button', { type: 'button', class: 'dom-edit', on: { click: () => editDomain(d) } }, 'Edit'),
      el('button', { type: 'button', class: 'dom-del', on: { click: () => delDomain(d.domain) } }, 'Delete'));
  };
  const row = (name, p, cls, src) => el('tr', { class: cls }, el('td', {}, name), ...DOM_KEYS.map((k) => cell(p, k)), src);
  tb.appendChild(row('global', r.global, 'global', el('td', {}, '')));
  for (const d of r.domains)
    tb.appendChild(row(d.subdomains ? '*' + d.domain : d.domain, d,
      (d.same_as_global ? 'domain same' : 'domain') + (d.source === 'dashboard' ? ' dash' : ''), source(d)));
}

/* The form as the API's JSON: an empty field is the global value; the
 * server checks every value as the config parser would. */
function domainFromForm() {
  const p = {};
  for (const k of DOM_KEYS) {
    if (!k[2]) continue;
    const v = $(k[2]).value.trim();
    if (v !== '') p[k[0]] = v;
  }
  if ($('dom-grey').value !== 'inherit') p.greylisting = $('dom-grey').value === 'on';
  return p;
}

function editDomain(d) {
  $('dom-name').value = d.domain;
  for (const k of DOM_KEYS) {
    if (!k[2]) continue;
    const v = d[k[0]];
    $(k[2]).value = d.set.includes(k[1]) ? (Array.isArray(v) ? v.join(', ') : String(v)) : '';
  }
  $('dom-grey').value = d.set.includes('greylist.enabled') ? (d.greylisting ? 'on' : 'off') : 'inherit';
}

async function saveDomain() {
  const name = $('dom-name').value.trim();
  try {
    const r = await api('PUT', '/api/domains/' + encodeURIComponent(name), domainFromForm());
    flash('Saved the policy of ' + r.domain);
    $('dom-form').reset();
  } catch (e) { flash(e.message, true); }
  await loadDomains();
}

async function delDomain(name) {
  try {
    await api('DELETE', '/api/domains/' + encodeURIComponent(name));
    flash('Deleted the policy of ' + name);
  } catch (e) { flash(e.message, true); }
  await loadDomains();
}

/* ---------------------------------------------------------------- start */

function wire() {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', route);
  for (const b of document.querySelectorAll('#range button'))
    b.addEventListener('click', () => {
      P.range = b.dataset.range;
      for (const o of document.querySelectorAll('#range button')) o.classList.toggle('on', o === b);
      drawOverview().catch((e) => flash(e.message, true));
    });
  $('verdict-search').addEventListener('submit', (ev) => { ev.preventDefault(); loadVerdicts().catch((e) => flash(e.message, true)); });
  $('verdict-more').addEventListener('click', () => loadVerdicts(true).catch((e) => flash(e.message, true)));
  $('quar-search').addEventListener('submit', (ev) => { ev.preventDefault(); loadQuarantine().catch((e) => flash(e.message, true)); });
  $('quar-state').addEventListener('change', () => loadQuarantine().catch((e) => flash(e.message, true)));
  $('quar-all').addEventListener('change', () => { for (const b of document.querySelectorAll('#quar-table .pick')) b.checked = $('quar-all').checked; });
  $('quar-bulk-release').addEventListener('click', () => quarAct('release', picked()));
  $('quar-bulk-delete').addEventListener('click', () => quarAct('delete', picked()));
  $('quar-bulk-spam').addEventListener('click', () => quarAct('spam', picked()));
  $('rule-new').addEventListener('click', () => editRule(null));
  $('rule-cancel').addEventListener('click', () => { $('rule-form').hidden = true; });
  $('rule-target').addEventListener('change', () => { $('rule-header-label').hidden = $('rule-target').value !== 'header'; checkRule(); });
  const later = debounce(checkRule, 250);
  for (const id of ['rule-name', 'rule-pattern', 'rule-flags', 'rule-header', 'rule-score']) $(id).addEventListener('input', later);
  $('rule-action').addEventListener('change', later);
  $('rule-test').addEventListener('click', testRule);
  $('rule-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (await checkRule()) await saveRule(ruleFromForm(), P.editing);
  });
  $('grey-q').addEventListener('input', drawGrey);
  $('access-q').addEventListener('input', drawAccess);
  $('dom-form').addEventListener('submit', (ev) => { ev.preventDefault(); saveDomain(); });
  $('access-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    addAccess($('access-list').value, $('access-kind').value, $('access-value').value.trim(), $('access-note').value.trim());
    $('access-value').value = '';
    $('access-note').value = '';
  });
}

document.addEventListener('DOMContentLoaded', async () => {
  wire();
  try {
    const s = await fetch('/api/session', { credentials: 'same-origin' });
    if (s.ok) { const j = await s.json(); if (j.csrf) { started(j); return; } }
  } catch (e) { /* fall through to the login form */ }
  showLogin();
});
