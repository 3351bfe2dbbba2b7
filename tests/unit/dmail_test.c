/* dmail_test.c -- policy/dmail: a digest message's text is cleaned,
 * escaped and encoded so that no message text escapes its place. */
#include "lib/buf.h"
#include "policy/dmail.h"
#include "t.h"

static const unsigned char key[DLINK_KEY_LEN] = "0123456789abcdef0123456789abcdef";

static char *
compose(const char *subject, int n, size_t *len)
{
	struct dmail_item it[2] = {
		{ .id = "0123456789AB", .ts = 1700000000, .score = 7.5 },
		{ .id = "0123456789AC", .ts = 1700000100, .score = 9 },
	};
	struct dmail_head h = { .rcpt = "bob@example.org", .from = "q@example.org",
	    .base = "https://mx.example.org", .hostname = "mx.example.org",
	    .now = 1700000200, .expires = 1700100000, .allow = 1 };
	char *m;

	for (int i = 0; i < 2; i++) {
		it[i].from = dmail_clean("evil\r\nBcc: x@y", 256);
		it[i].subject = dmail_clean(subject, DMAIL_SUBJECT_MAX);
		it[i].reason = dmail_clean("rule: <b>", DMAIL_REASON_MAX);
	}
	m = dmail_compose(&h, it, n, key, len);
	for (int i = 0; i < 2; i++) {
		free(it[i].from);
		free(it[i].subject);
		free(it[i].reason);
	}
	return m;
}

T_CASE(clean_drops_controls_and_bad_utf8_and_cuts_whole_chars)
{
	char *s = dmail_clean("a\r\nb\x01\xff\xc3\xa9", 100);

	T_EQ_STR(s, "a??b??\xc3\xa9");
	free(s);
	s = dmail_clean("ab\xc3\xa9", 3);	/* the 2-byte character does not fit */
	T_EQ_STR(s, "ab");
	free(s);
	s = dmail_clean(NULL, 10);
	T_EQ_STR(s, "");
	free(s);
}

T_CASE(html_escape_every_special)
{
	struct buf b = { 0 };

	dmail_html_escape(&b, "<a href=\"x\" onclick='y'>&</a>");
	T_EQ_STR(buf_str(&b), "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
	buf_free(&b);
}

/* Headers end at the first empty line and none was added by the sender
 * text; every body line is quoted-printable short; no raw tag from the
 * subject in the HTML part. */
T_CASE(message_shape)
{
	size_t len;
	char *m = compose("<script>alert(1)</script> hi", 2, &len), *end, *line, *html;
	int longest = 0, lines = 0;

	T_ASSERT(strlen(m) == len);
	end = strstr(m, "\r\n\r\n");
	T_ASSERT(end != NULL);
	*end = '\0';
	T_ASSERT(strstr(m, "\r\nBcc:") == NULL);
	T_ASSERT(strstr(m, "Auto-Submitted: auto-generated\r\n") != NULL);
	T_ASSERT(strstr(m, "Subject: Quarantine: 2 messages held for you") != NULL);
	T_ASSERT(strstr(m, "multipart/alternative; boundary=\"=_postern_digest_") != NULL);
	for (line = end + 4; *line; lines++) {
		char *nl = strstr(line, "\r\n");
		int l = nl ? (int)(nl - line) : (int)strlen(line);
		longest = l > longest ? l : longest;
		T_ASSERT(memchr(line, '\n', (size_t)l) == NULL);
		line = nl ? nl + 2 : line + l;
	}
	T_ASSERT(lines > 20);
	T_ASSERT(longest <= 76);
	/* the text part has it as text; the HTML part only escaped */
	html = strstr(end + 4, "Content-Type: text/html");
	T_ASSERT(html != NULL && strstr(end + 4, "<script>") < html);
	T_ASSERT(strstr(html, "<script>") == NULL);
	T_ASSERT(strstr(html, "&lt;script&gt;") != NULL);	/* not QP-split here */
	free(m);
}

T_CASE(non_ascii_subject_is_encoded_words)
{
	size_t len;
	char *m = compose("Gr\xc3\xbc\xc3\x9f" "e, a long subject that needs more than one "
	    "encoded word to carry it all", 1, &len);
	char *subj = strstr(m, "\r\nSubject: "), *end = strstr(subj + 2, "\r\nMessage-ID:");

	T_ASSERT(subj != NULL && end != NULL);
	*end = '\0';
	T_ASSERT(strstr(subj, "=?UTF-8?B?") != NULL);
	T_ASSERT(strstr(subj, "\r\n =?UTF-8?B?") != NULL);	/* folded */
	T_ASSERT(strstr(subj, "\xc3\xbc") == NULL);
	free(m);
}

int
main(void)
{
	T_RUN(clean_drops_controls_and_bad_utf8_and_cuts_whole_chars);
	T_RUN(html_escape_every_special);
	T_RUN(message_shape);
	T_RUN(non_ascii_subject_is_encoded_words);
	return T_END();
}
