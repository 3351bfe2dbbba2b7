/*
 * dpage.c -- /digest/TOKEN: the page a digest's link opens (see
 * policy/dlink.h for the token, policy/digest.h for the digests).
 *
 * No login: the signed token is the authority, for one message, one
 * action and one recipient, until it expires. A GET only shows what the
 * link will do, to which message, with one button; the button's POST
 * does it. Mail security scanners (Safe Links, URL rewriting gateways,
 * preview bots) fetch every link of a message as it arrives; if a GET
 * acted, each digest would release or delete everything it lists before
 * its reader saw it. They do not submit forms.
 *
 * Release is exactly once (quar_claim inside qsend_release): a second use
 * of the link says the message was already released (409). Delete
 * removes the message (404 afterwards). Allow adds the sender's address
 * to the allow list (policy/access.h: kind sender), then releases.
 * Refusals: 400 malformed, 403 altered or for another recipient, 410
 * expired, 404 no longer held, 503 database or backend trouble.
 *
 * Exposure: every string from the message is HTML-escaped
 * (dmail_html_escape); the page carries web.c's CSP (no script at all).
 * Public call: dpage_route (web_int.h).
 * Thread: libmicrohttpd's request threads; a release blocks on the backend.
 */
#include "db/db.h"
#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/util.h"
#include "policy/access.h"
#include "policy/dlink.h"
#include "policy/dmail.h"
#include "proxy/qsend.h"
#include "web/web_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The message as the page shows it, copied out of the row. */
struct dpage_msg {
	int	 found;
	int	 for_rcpt;		/* the token's recipient is one of its own */
	char	 state[16];
	time_t	 ts;
	double	 score;
	char	*from, *subject;
};

static const char *dpage_verbs[][2] = {	/* what the button says; what was done */
	[DLINK_RELEASE] = { "Release this message to your mailbox", "Released" },
	[DLINK_DELETE] = { "Delete this message", "Deleted" },
	[DLINK_ALLOW] = { "Release it and always allow this sender", "Released, sender allowed" },
};

static void	 dpage_page(struct web_resp *, int status, const char *title,
		    const char *text, const struct dpage_msg *, const char *button);
static int	 dpage_row(void *arg, const struct db_quar_row *);
static int	 dpage_check(struct web_req *, struct web_resp *, struct dlink *,
		    struct dpage_msg *);
static void	 dpage_act(struct web_req *, struct web_resp *, const struct dlink *,
		    struct dpage_msg *);
static void	 dpage_msg_free(struct dpage_msg *);

/* A whole page: title, one sentence, the message, maybe the button. */
static void
dpage_page(struct web_resp *resp, int status, const char *title, const char *text,
    const struct dpage_msg *m, const char *button)
{
	struct buf b = { 0 };
	char when[64];
	struct tm tm;

	buf_adds(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	    "<meta name=\"viewport\" content=\"width=device-width\">"
	    "<meta name=\"robots\" content=\"noindex\"><title>");
	dmail_html_escape(&b, title);
	buf_adds(&b, "</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head>\n"
	    "<body class=\"digest\"><main><h1 id=\"title\">");
	dmail_html_escape(&b, title);
	buf_adds(&b, "</h1>\n<p id=\"text\">");
	dmail_html_escape(&b, text);
	buf_adds(&b, "</p>\n");
	if (m != NULL && m->found) {
		localtime_r(&m->ts, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M %Z", &tm);
		buf_adds(&b, "<table id=\"msg\"><tr><th>From</th><td id=\"from\">");
		dmail_html_escape(&b, m->from);
		buf_adds(&b, "</td></tr><tr><th>Subject</th><td id=\"subject\">");
		dmail_html_escape(&b, m->subject);
		buf_printf(&b, "</td></tr><tr><th>Score</th><td>%.1f</td></tr>"
		    "<tr><th>Held since</th><td>%s</td></tr></table>\n", m->score, when);
	}
	if (button != NULL) {
		/* action="" posts back to this very URL, token included */
		buf_adds(&b, "<form method=\"post\" action=\"\"><button type=\"submit\" "
		    "id=\"confirm\">");
		dmail_html_escape(&b, button);
		buf_adds(&b, "</button></form>\n");
	}
	buf_adds(&b, "</main></body></html>\n");
	resp->status = status;
	resp->ctype = "text/html; charset=utf-8";
	resp->len = b.len;
	buf_str(&b);
	resp->body = buf_take(&b);
}

static int
dpage_row(void *arg, const struct db_quar_row *row)
{
	struct dpage_msg *m = arg;
	const char *rcpt = m->from;	/* the token's recipient, until replaced */

	m->found = 1;
	for (int i = 0; i < row->q.nrcpts; i++)
		if (strcasecmp(row->q.rcpts[i], rcpt) == 0)
			m->for_rcpt = 1;
	snprintf(m->state, sizeof(m->state), "%s", row->state);
	m->ts = row->q.ts;
	m->score = row->q.score;
	m->from = dmail_clean(*row->q.mail_from ? row->q.mail_from : "<>", LIM_PATH);
	m->subject = dmail_clean(row->q.subject, DMAIL_SUBJECT_MAX);
	return 0;
}

static void
dpage_msg_free(struct dpage_msg *m)
{
	if (m->found) {
		free(m->from);
		free(m->subject);
	}
	memset(m, 0, sizeof(*m));
}

/* The token and the message it names: 0 (l and m filled), or -1 with
 * the refusal page in resp. */
static int
dpage_check(struct web_req *r, struct web_resp *resp, struct dlink *l, struct dpage_msg *m)
{
	unsigned char key[DLINK_KEY_LEN];
	char when[64], text[160];
	struct tm tm;
	enum dlink_err e;

	memset(m, 0, sizeof(*m));
	if (dlink_key(key) == -1) {
		dpage_page(resp, 503, "Try again later", "The server cannot check links "
		    "right now (database trouble).", NULL, NULL);
		return -1;
	}
	e = dlink_verify(key, r->path + strlen("/digest/"), time_wall(), l);
	memset(key, 0, sizeof(key));
	if (e != DLINK_OK)
		log_info("web: digest link refused from %s: %s", r->from, e == DLINK_EXPIRED ?
		    "expired" : e == DLINK_BAD_SIG ? "bad signature" : "malformed");
	switch (e) {
	case DLINK_OK:
		break;
	case DLINK_MALFORMED:
		dpage_page(resp, 400, "Not a valid link", "This is not a whole quarantine "
		    "link; it may have been cut or changed. Open it from the digest again.",
		    NULL, NULL);
		return -1;
	case DLINK_BAD_SIG:
		dpage_page(resp, 403, "Link refused", "This link was changed, or was not "
		    "made by this server. Nothing was done.", NULL, NULL);
		return -1;
	case DLINK_EXPIRED:
		localtime_r(&l->expires, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M %Z", &tm);
		snprintf(text, sizeof(text), "This link expired on %s. Nothing was done; "
		    "ask your mail administrator.", when);
		dpage_page(resp, 410, "Link expired", text, NULL, NULL);
		return -1;
	}
	if (l->action == DLINK_ALLOW && !r->conf->quarantine_digest_allow_link) {
		dpage_page(resp, 403, "Link refused", "Allowing senders from a digest is "
		    "turned off here. Nothing was done; the message's release link still "
		    "works.", NULL, NULL);
		return -1;
	}
	m->from = l->rcpt;		/* dpage_row reads it before it fills in */
	if (db_quar_get(l->id, dpage_row, m) == -1) {
		memset(m, 0, sizeof(*m));
		dpage_page(resp, 503, "Try again later", "The quarantine cannot be read "
		    "right now.", NULL, NULL);
		return -1;
	}
	if (!m->found) {
		memset(m, 0, sizeof(*m));
		dpage_page(resp, 404, "No longer in the quarantine", "This message was "
		    "deleted or has expired. Nothing was done.", NULL, NULL);
		return -1;
	}
	if (!m->for_rcpt) {
		dpage_page(resp, 403, "Link refused", "This link is not for a recipient of "
		    "this message. Nothing was done.", NULL, NULL);
		return -1;
	}
	if (l->action != DLINK_DELETE && strcmp(m->state, "held") != 0) {
		dpage_page(resp, 409, "Already released", strcmp(m->state, "released") == 0 ?
		    "This message was already released; a link releases it once." :
		    "This message is being released right now.", m, NULL);
		return -1;
	}
	return 0;
}

/* The POST: do what the link says. */
static void
dpage_act(struct web_req *r, struct web_resp *resp, const struct dlink *l,
    struct dpage_msg *m)
{
	char err[512], who[LIM_PATH + 16], note[LIM_PATH + 64], why[256];
	int rc;

	snprintf(who, sizeof(who), "digest:%s", l->rcpt);
	if (l->action == DLINK_DELETE) {
		rc = db_quar_delete(l->id);
		log_info("web: digest link of %s: delete %s: %s", l->rcpt, l->id,
		    rc == 0 ? "deleted" : rc == 1 ? "not found" : "error");
		if (rc == 0)
			dpage_page(resp, 200, "Deleted", "The message was deleted from the "
			    "quarantine.", m, NULL);
		else
			dpage_page(resp, rc == 1 ? 409 : 503, rc == 1 ? "Not deleted" :
			    "Try again later", rc == 1 ? "The message is being released or is "
			    "gone already." : "The quarantine cannot be changed right now.", m, NULL);
		return;
	}
	const char *done = "The message was released and is on its way to your mailbox.";
	if (l->action == DLINK_ALLOW && strcmp(m->from, "<>") != 0) {
		snprintf(note, sizeof(note), "digest: allowed by %s (message %s)", l->rcpt, l->id);
		if (access_entry_valid("allow", "sender", m->from, 1, why, sizeof(why)) == -1) {
			/* no retry would make it valid: release without the entry */
			log_warn("web: digest link of %s: sender %s cannot be allowed (%s); "
			    "releasing only", l->rcpt, m->from, why);
			done = "The message was released and is on its way to your mailbox. "
			    "Its sender's address cannot go on the allow list.";
		} else if (db_access_add("allow", "sender", m->from, note) == -1) {
			dpage_page(resp, 503, "Try again later", "The sender could not be added "
			    "to the allow list; nothing was done.", m, NULL);
			return;
		} else
			log_info("web: digest link of %s: sender %s allowed", l->rcpt, m->from);
	}
	rc = qsend_release(r->conf, l->id, who, err, sizeof(err));
	if (rc == 0)
		dpage_page(resp, 200, dpage_verbs[l->action][1], done, m, NULL);
	else if (rc == 2)
		dpage_page(resp, 409, "Already released", "This message was already "
		    "released; a link releases it once.", m, NULL);
	else if (rc == 1)
		dpage_page(resp, 404, "No longer in the quarantine", "This message was "
		    "deleted or has expired.", m, NULL);
	else
		dpage_page(resp, 503, "Not released yet", "The mail server did not take the "
		    "message right now; it is still held. Try the link again later.", m, NULL);
}

void
dpage_route(struct web_req *r, struct web_resp *resp)
{
	struct dlink l;
	struct dpage_msg m;
	int get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;

	if (!get && strcmp(r->method, "POST") != 0) {
		dpage_page(resp, 405, "Not allowed", "Open the link from the digest.", NULL, NULL);
		return;
	}
	if (dpage_check(r, resp, &l, &m) == -1) {
		dpage_msg_free(&m);
		return;
	}
	if (get)
		dpage_page(resp, 200, dpage_verbs[l.action][0], l.action == DLINK_ALLOW ?
		    "The message below goes to your mailbox, and later mail from its sender "
		    "is accepted without the spam checks." : l.action == DLINK_DELETE ?
		    "The message below is removed from the quarantine for good." :
		    "The message below goes to your mailbox.", &m, dpage_verbs[l.action][0]);
	else
		dpage_act(r, resp, &l, &m);
	dpage_msg_free(&m);
}
