/*
 * dmail.c -- see dmail.h. The text of both parts is put together with
 * '\n' line ends and quoted-printable encoded at the end (RFC 2045 6.7),
 * which also makes the CRLFs and keeps every line under 77 characters.
 */
#include "policy/dmail.h"
#include "lib/buf.h"
#include "lib/utf8.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DMAIL_QP_LINE		76	/* RFC 2045 6.7 (5) */
#define DMAIL_WORD_BYTES	45	/* input bytes per encoded-word: 60 base64 chars */

static const char *dmail_actions[][2] = {
	[DLINK_RELEASE] = { "Release", "Release" },
	[DLINK_DELETE] = { "Delete", "Delete" },
	[DLINK_ALLOW] = { "Release and always allow this sender", "Release + allow sender" },
};

static void	 dmail_qp(struct buf *out, const char *text);
static void	 dmail_subject(struct buf *out, const char *s);
static void	 dmail_date(char *out, size_t sz, time_t t, int header);
static void	 dmail_count(char *out, size_t sz, int total);
static char	*dmail_link(const struct dmail_head *, const struct dmail_item *,
		    enum dlink_action, const unsigned char *key);
static void	 dmail_text(struct buf *, const struct dmail_head *,
		    const struct dmail_item *, int n, char *(*links)[3]);
static void	 dmail_html(struct buf *, const struct dmail_head *,
		    const struct dmail_item *, int n, char *(*links)[3]);

char *
dmail_clean(const char *s, size_t max)
{
	struct buf b = { 0 };
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)p), l;

	for (size_t i = 0; i < n; i += l ? l : 1) {
		l = utf8_seq((const char *)p + i, n - i);
		if (b.len + (l ? l : 1) > max)
			break;
		if (l == 0 || (l == 1 && (p[i] < 0x20 || p[i] == 0x7f)))
			buf_addc(&b, p[i] == '\t' ? ' ' : '?');
		else
			buf_add(&b, p + i, l);
	}
	buf_str(&b);
	return buf_take(&b);
}

void
dmail_html_escape(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++)
		switch (*s) {
		case '&': buf_adds(b, "&amp;"); break;
		case '<': buf_adds(b, "&lt;"); break;
		case '>': buf_adds(b, "&gt;"); break;
		case '"': buf_adds(b, "&quot;"); break;
		case '\'': buf_adds(b, "&#39;"); break;
		default: buf_addc(b, *s);
		}
}

/* text ('\n' lines) as quoted-printable with CRLF line ends. */
static void
dmail_qp(struct buf *out, const char *text)
{
	size_t col = 0;

	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
		char enc[4];
		int plain = (*p >= 33 && *p <= 126 && *p != '=') ||
		    (*p == ' ' && p[1] != '\n' && p[1] != '\0');
		size_t w = plain ? 1 : 3;

		if (*p == '\n') {
			buf_adds(out, "\r\n");
			col = 0;
			continue;
		}
		if (col + w > DMAIL_QP_LINE - 1) {	/* room for the soft break's '=' */
			buf_adds(out, "=\r\n");
			col = 0;
		}
		snprintf(enc, sizeof(enc), plain ? "%c" : "=%02X", *p);
		buf_adds(out, enc);
		col += w;
	}
	buf_adds(out, "\r\n");
}

/* The Subject field's body: as it is when printable ASCII, else RFC 2047
 * B encoded-words of whole UTF-8 sequences, folded one per line. */
static void
dmail_subject(struct buf *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0;
	int ascii = 1;

	for (size_t k = 0; k < n; k++)
		if (p[k] < 0x20 || p[k] >= 0x7f)
			ascii = 0;
	if (ascii) {
		buf_adds(out, s);
		return;
	}
	while (i < n) {
		size_t j = i, l;
		unsigned char enc[DMAIL_WORD_BYTES * 2];
		while (j < n && (l = utf8_seq((const char *)p + j, n - j)) > 0 && j + l - i <= DMAIL_WORD_BYTES)
			j += l;
		if (j == i)
			j++;		/* dmail_clean made it valid; never reached */
		EVP_EncodeBlock(enc, p + i, (int)(j - i));
		buf_printf(out, "%s=?UTF-8?B?%s?=", i > 0 ? "\r\n " : "", enc);
		i = j;
	}
}

/* RFC 5322 3.3 date-time in local time (header) or a short form (body). */
static void
dmail_date(char *out, size_t sz, time_t t, int header)
{
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(out, sz, header ? "%a, %d %b %Y %H:%M:%S %z" : "%Y-%m-%d %H:%M %Z", &tm);
}

/* "2 new messages were" / "1 new message was" */
static void
dmail_count(char *out, size_t sz, int total)
{
	snprintf(out, sz, "%d new message%s", total, total == 1 ? " was" : "s were");
}

static char *
dmail_link(const struct dmail_head *h, const struct dmail_item *it, enum dlink_action a,
    const unsigned char *key)
{
	struct dlink l = { .action = a, .expires = h->expires };
	char *tok, *url;

	memcpy(l.id, it->id, sizeof(l.id));
	snprintf(l.rcpt, sizeof(l.rcpt), "%s", h->rcpt);
	tok = dlink_sign(key, &l);
	url = xasprintf("%s/digest/%s", h->base, tok);
	free(tok);
	return url;
}

static void
dmail_text(struct buf *b, const struct dmail_head *h, const struct dmail_item *it, int n,
    char *(*links)[3])
{
	char when[64], until[64], count[48];

	dmail_date(until, sizeof(until), h->expires, 0);
	dmail_count(count, sizeof(count), n + h->more);
	buf_printf(b, "%s held in the quarantine for %s.\n"
	    "Nothing reaches your mailbox unless you release it. The links work\n"
	    "until %s; each opens a page where you confirm.\n\n", count, h->rcpt, until);
	for (int i = 0; i < n; i++) {
		dmail_date(when, sizeof(when), it[i].ts, 0);
		buf_printf(b, "%d. From:    %s\n   Subject: %s\n   Score:   %.1f (%s)\n"
		    "   Held:    %s\n", i + 1, it[i].from, it[i].subject, it[i].score,
		    it[i].reason, when);
		for (int a = 0; a < 2 + h->allow; a++)
			buf_printf(b, "   %s:\n   %s\n", dmail_actions[a][0], links[i][a]);
		buf_adds(b, "\n");
	}
	if (h->more > 0)
		buf_printf(b, "%d more held message%s not listed here; your mail administrator "
		    "can see them.\n", h->more, h->more == 1 ? " is" : "s are");
}

static void
dmail_html(struct buf *b, const struct dmail_head *h, const struct dmail_item *it, int n,
    char *(*links)[3])
{
	char when[64], until[64], count[48];

	dmail_date(until, sizeof(until), h->expires, 0);
	dmail_count(count, sizeof(count), n + h->more);
	buf_adds(b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
	    "<title>Quarantine digest</title></head><body>\n<p>");
	buf_printf(b, "%s held in the quarantine for <b>", count);
	dmail_html_escape(b, h->rcpt);
	buf_printf(b, "</b>. Nothing reaches your mailbox unless you release it. The links "
	    "work until %s; each opens a page where you confirm.</p>\n<table border=\"1\" "
	    "cellpadding=\"4\" cellspacing=\"0\">\n<tr><th>From</th><th>Subject</th>"
	    "<th>Score</th><th>Reason</th><th>Held</th><th>Actions</th></tr>\n", until);
	for (int i = 0; i < n; i++) {
		const char *cells[] = { it[i].from, it[i].subject };
		dmail_date(when, sizeof(when), it[i].ts, 0);
		buf_adds(b, "<tr class=\"msg\">");
		for (size_t k = 0; k < ARRAY_SIZE(cells); k++) {
			buf_adds(b, "<td>");
			dmail_html_escape(b, cells[k]);
			buf_adds(b, "</td>");
		}
		buf_printf(b, "<td>%.1f</td><td>", it[i].score);
		dmail_html_escape(b, it[i].reason);
		buf_printf(b, "</td><td>%s</td><td>", when);
		for (int a = 0; a < 2 + h->allow; a++) {
			buf_adds(b, a ? " | <a href=\"" : "<a href=\"");
			dmail_html_escape(b, links[i][a]);
			buf_printf(b, "\">%s</a>", dmail_actions[a][1]);
		}
		buf_adds(b, "</td></tr>\n");
	}
	buf_adds(b, "</table>\n");
	if (h->more > 0)
		buf_printf(b, "<p>%d more held message%s not listed here; your mail "
		    "administrator can see them.</p>\n", h->more, h->more == 1 ? " is" : "s are");
	buf_adds(b, "</body></html>\n");
}

char *
dmail_compose(const struct dmail_head *h, const struct dmail_item *it, int n,
    const unsigned char key[DLINK_KEY_LEN], size_t *len)
{
	struct buf m = { 0 }, text = { 0 }, html = { 0 };
	char date[64], id[ID_LEN + 1], *subj, boundary[48];
	char *(*urls)[3] = xcalloc((size_t)(n > 0 ? n : 1), sizeof(*urls));
	int total = n + h->more;

	for (int i = 0; i < n; i++)
		for (int a = 0; a < 2 + h->allow; a++)
			urls[i][a] = dmail_link(h, &it[i], (enum dlink_action)a, key);
	dmail_text(&text, h, it, n, urls);
	dmail_html(&html, h, it, n, urls);
	id_new(id);
	snprintf(boundary, sizeof(boundary), "=_postern_digest_%s", id);
	dmail_date(date, sizeof(date), h->now, 1);
	subj = total == 1 && n == 1 ?
	    xasprintf("Quarantine: 1 message held for you: %s", it[0].subject) :
	    xasprintf("Quarantine: %d messages held for you", total);
	buf_printf(&m, "Date: %s\r\nFrom: Postern quarantine <%s>\r\nTo: <%s>\r\nSubject: ",
	    date, h->from, h->rcpt);
	dmail_subject(&m, subj);
	buf_printf(&m, "\r\nMessage-ID: <%s.digest@%s>\r\nAuto-Submitted: auto-generated\r\n"
	    "X-Auto-Response-Suppress: All\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n"
	    "This is a MIME message: a text and an HTML version of the same digest.\r\n",
	    id, h->hostname, boundary);
	buf_printf(&m, "\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n", boundary);
	dmail_qp(&m, buf_str(&text));
	buf_printf(&m, "\r\n--%s\r\nContent-Type: text/html; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n", boundary);
	dmail_qp(&m, buf_str(&html));
	buf_printf(&m, "\r\n--%s--\r\n", boundary);
	for (int i = 0; i < n; i++)
		for (int a = 0; a < 3; a++)
			free(urls[i][a]);
	free(urls);
	free(subj);
	buf_free(&text);
	buf_free(&html);
	*len = m.len;
	buf_str(&m);
	return buf_take(&m);
}
