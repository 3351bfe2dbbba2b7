/* mime_test.c -- rules/mime.c on real-shaped messages and hostile ones. */
#include "rules/mime.h"
#include "mail.h"
#include "t.h"
#include "lib/util.h"

#include <gmime/gmime.h>

static struct mime_msg *
parse_file(const char *name)
{
	size_t n;
	char *raw = mail_load(name, &n);
	struct mime_msg *m = mime_parse(raw, n);

	free(raw);
	return m;
}

/* 1 when some item of the list contains needle. */
static int
has(const struct mime_msg *m, enum mime_kind k, const char *needle)
{
	for (size_t i = 0; i < mime_count(m, k); i++)
		if (strstr(mime_item(m, k, i, NULL), needle))
			return 1;
	return 0;
}

static int
has_exact(const struct mime_msg *m, enum mime_kind k, const char *s)
{
	for (size_t i = 0; i < mime_count(m, k); i++)
		if (strcmp(mime_item(m, k, i, NULL), s) == 0)
			return 1;
	return 0;
}

T_CASE(alternative_headers_decoded)
{
	struct mime_msg *m = parse_file("alternative.eml");

	T_EQ_STR(mime_header(m, "subject", 0), "Größe prüfen café");
	T_ASSERT(strstr(mime_header(m, "From", 0), "René Dupont") != NULL);
	T_EQ_STR(mime_header(m, "X-Mailer", 0), "Bulk Sender Pro 9.1");
	T_ASSERT(mime_header(m, "Subject", 1) == NULL);
	T_ASSERT(mime_header(m, "Received", 0) != NULL);
	T_ASSERT(mime_nheaders(m) >= 9);
	T_ASSERT(!mime_truncated(m));
	mime_free(m);
}

T_CASE(alternative_qp_and_base64_bodies)
{
	struct mime_msg *m = parse_file("alternative.eml");

	T_EQ_INT(mime_count(m, MIME_TEXT), 2);
	T_ASSERT(has(m, MIME_TEXT, "Café crème, visit"));
	T_ASSERT(!has(m, MIME_TEXT, "\r"));
	/* HTML as text: tags gone, entities decoded, script dropped */
	T_ASSERT(has(m, MIME_TEXT, "Cheap Viagra & more"));
	T_ASSERT(!has(m, MIME_TEXT, "hidden"));
	T_ASSERT(!has(m, MIME_TEXT, "<p>"));
	T_EQ_INT(mime_count(m, MIME_ATTACHMENT), 0);
	mime_free(m);
}

T_CASE(alternative_urls)
{
	struct mime_msg *m = parse_file("alternative.eml");

	T_ASSERT(has_exact(m, MIME_URL, "https://shop.example/deal"));
	T_ASSERT(has_exact(m, MIME_URL, "http://spam.example/buy?a=1&b=2"));
	T_ASSERT(has_exact(m, MIME_URL, "https://img.example/p.gif"));
	T_EQ_INT(mime_count(m, MIME_URL), 3);
	mime_free(m);
}

/* URLs are found from their "://" back to "http" or "https", in the
 * order of the text, each past the previous one's end. */
T_CASE(url_forms)
{
	static const char msg[] = "Subject: u\r\n\r\n"
	    "xhttps://a.example/1 httphttps://b.example/2, httpss://no.example\r\n"
	    "(HTTP://C.EXAMPLE/3). hTtPs://d.example/4?q=\"x\" http:// https:/x\r\n"
	    "ftp://e.example http://f.example/5:http://g.example/6 :// http://h.i";
	static const char *want[] = { "https://a.example/1", "https://b.example/2",
	    "HTTP://C.EXAMPLE/3", "hTtPs://d.example/4?q=",
	    "http://f.example/5:http://g.example/6", "http://h.i" };
	struct mime_msg *m = mime_parse(msg, sizeof(msg) - 1);

	T_EQ_INT(mime_count(m, MIME_URL), (int)ARRAY_SIZE(want));
	for (size_t i = 0; i < ARRAY_SIZE(want) && i < mime_count(m, MIME_URL); i++)
		T_EQ_STR(mime_item(m, MIME_URL, i, NULL), want[i]);
	mime_free(m);
}

T_CASE(nested_multipart_and_rfc2231_names)
{
	struct mime_msg *m = parse_file("nested.eml");

	T_EQ_STR(mime_header(m, "Subject", 0), "Привет мир");
	T_ASSERT(has_exact(m, MIME_ATTACHMENT, "€ invoice 2026.pdf"));
	T_ASSERT(has_exact(m, MIME_ATTACHMENT, "résumé.exe"));
	T_EQ_INT(mime_count(m, MIME_ATTACHMENT), 2);
	/* plain + html + the forwarded message's body */
	T_EQ_INT(mime_count(m, MIME_TEXT), 3);
	T_ASSERT(has(m, MIME_TEXT, "secret-token-XYZ"));
	T_ASSERT(has(m, MIME_TEXT, "Please find the invoice attached."));
	T_ASSERT(has_exact(m, MIME_URL, "http://pay.invoices.example/now"));
	T_ASSERT(has_exact(m, MIME_URL, "https://pay.invoices.example/html"));
	/* the PDF's bytes are not body text */
	T_ASSERT(!has(m, MIME_TEXT, "PDF"));
	mime_free(m);
}

T_CASE(shift_jis_subject)
{
	struct mime_msg *m = parse_file("sjis.eml");

	T_EQ_STR(mime_header(m, "Subject", 0), "今すぐ購入");
	T_EQ_INT(mime_count(m, MIME_TEXT), 1);
	T_ASSERT(has(m, MIME_TEXT, "plain body"));
	mime_free(m);
}

T_CASE(malformed_does_not_crash)
{
	struct mime_msg *m = parse_file("malformed.eml");

	T_ASSERT(mime_header(m, "Subject", 0) != NULL);
	T_EQ_STR(mime_header(m, "From", 0), "broken@bad.example");
	mime_free(m);
}

T_CASE(empty_and_plain)
{
	struct mime_msg *m = mime_parse("", 0);
	const char *plain = "Subject: hi\r\n\r\nno mime here http://a.example/x\r\n";

	T_EQ_INT(mime_count(m, MIME_TEXT) <= 1, 1);
	T_EQ_INT(mime_count(m, MIME_URL), 0);
	mime_free(m);
	m = mime_parse(plain, strlen(plain));
	T_EQ_STR(mime_header(m, "subject", 0), "hi");
	T_ASSERT(has(m, MIME_TEXT, "no mime here"));
	T_ASSERT(has_exact(m, MIME_URL, "http://a.example/x"));
	mime_free(m);
}

/* The header list is the message's own fields, as GMime's message parse
 * gave them before mime_parse took the top entity as a part: the body's
 * Content-* fields stay out (the layout says the type), and an mbox From_
 * line before the header is skipped, not the end of it. */
T_CASE(top_fields_as_a_message)
{
	const char *raw = "From alice@example.org Mon Jan  1 00:00:00 2024\r\n"
	    "Subject: hi\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "X-Tail: last\r\n\r\ncaf=C3=A9 au lait\r\n";
	struct mime_msg *m = mime_parse(raw, strlen(raw));
	const char *name;

	T_EQ_INT(mime_nheaders(m), 3);
	T_EQ_STR(mime_header_at(m, 0, &name), "hi");
	T_EQ_STR(name, "Subject");
	T_EQ_STR(mime_header(m, "MIME-Version", 0), "1.0");
	T_EQ_STR(mime_header(m, "X-Tail", 0), "last");
	T_ASSERT(mime_header(m, "Content-Type", 0) == NULL);
	T_ASSERT(mime_header(m, "Content-Transfer-Encoding", 0) == NULL);
	T_ASSERT(has(m, MIME_TEXT, "caf\xc3\xa9 au lait"));
	T_ASSERT(has_exact(m, MIME_PART, "0 text/plain utf-8"));
	mime_free(m);
}

/* A line that is no field ends the header section, as the MTA behind
 * reads it and the recipient sees it: the text after it is the body, not
 * lost in a broken field (GMime alone saw no body at all). */
T_CASE(non_field_line_ends_the_header)
{
	const char *noblank = "From: a@example.org\r\nSubject: cheap pills\r\n"
	    "GARBAGE LINE\r\nbuy now http://spam.example/x\r\n";
	const char *first = "no field here\r\nSubject: hidden\r\n\r\nbuy now\r\n";
	const char *folded = "Subject: a\r\n folded\r\nX-B: 1\r\n\r\nbody\r\n";
	struct mime_msg *m = mime_parse(noblank, strlen(noblank));

	T_EQ_INT(mime_nheaders(m), 2);
	T_EQ_STR(mime_header(m, "Subject", 0), "cheap pills");
	T_ASSERT(has(m, MIME_TEXT, "GARBAGE LINE"));
	T_ASSERT(has(m, MIME_TEXT, "buy now"));
	T_ASSERT(has_exact(m, MIME_URL, "http://spam.example/x"));
	mime_free(m);
	m = mime_parse(first, strlen(first));
	T_EQ_INT(mime_nheaders(m), 0);
	T_ASSERT(has(m, MIME_TEXT, "Subject: hidden"));
	T_ASSERT(has(m, MIME_TEXT, "buy now"));
	mime_free(m);
	m = mime_parse(folded, strlen(folded));	/* well formed: as before */
	T_EQ_INT(mime_nheaders(m), 2);
	T_EQ_STR(mime_header(m, "X-B", 0), "1");
	T_ASSERT(has(m, MIME_TEXT, "body"));
	mime_free(m);
}

/* A multipart whose boundary never comes (spamware that writes "--= B"
 * for boundary "=B") has no part; its body is read as text all the same,
 * and a well-formed multipart's prologue is not. */
T_CASE(multipart_without_parts_read_as_text)
{
	const char *broken = "Subject: x\r\n"
	    "Content-Type: multipart/alternative; boundary=\"=B 07\"\r\n\r\n"
	    "--= B 07\r\nContent-Type: text/plain\r\n\r\nbuy cheap pills http://spam.example/\r\n"
	    "--= B 07--\r\n";
	const char *fine = "Subject: x\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n"
	    "This is a multi-part message in MIME format.\r\n--q\r\n"
	    "Content-Type: text/plain\r\n\r\nhello\r\n--q--\r\n";
	struct mime_msg *m = mime_parse(broken, strlen(broken));

	T_ASSERT(has_exact(m, MIME_PART, "0 multipart/alternative"));
	T_EQ_INT(mime_count(m, MIME_TEXT), 1);
	T_ASSERT(has(m, MIME_TEXT, "buy cheap pills"));
	T_ASSERT(!has(m, MIME_TEXT, "\r"));
	T_ASSERT(has_exact(m, MIME_URL, "http://spam.example/"));
	mime_free(m);
	m = mime_parse(fine, strlen(fine));
	T_EQ_INT(mime_count(m, MIME_TEXT), 1);
	T_ASSERT(has(m, MIME_TEXT, "hello"));
	T_ASSERT(!has(m, MIME_TEXT, "multi-part message"));
	mime_free(m);
}

/* Such a body is cut at the text bound, as a part's text is. */
T_CASE(multipart_without_parts_bounded)
{
	static const char head[] = "Content-Type: multipart/mixed; boundary=q\r\n\r\n";
	size_t body = MIME_MAX_TEXT + 4096, len = sizeof(head) - 1 + body, n;
	char *raw = malloc(len);
	struct mime_msg *m;

	memcpy(raw, head, sizeof(head) - 1);
	memset(raw + sizeof(head) - 1, 'a', body);
	m = mime_parse(raw, len);
	T_EQ_INT(mime_count(m, MIME_TEXT), 1);
	mime_item(m, MIME_TEXT, 0, &n);
	T_EQ_INT(n, MIME_MAX_TEXT);
	T_ASSERT(mime_truncated(m));
	mime_free(m);
	free(raw);
}

/* The text of a single-part message of the given charset with body. */
static char *
text_with_charset(const char *charset, const char *body, size_t blen, size_t *tlen)
{
	char *raw = NULL, *t;
	size_t len;
	struct mime_msg *m;
	FILE *f = open_memstream(&raw, &len);

	fprintf(f, "Subject: cr\r\nContent-Type: text/plain; charset=%s\r\n\r\n", charset);
	fwrite(body, 1, blen, f);
	fclose(f);
	m = mime_parse(raw, len);
	if (mime_count(m, MIME_TEXT) == 1) {
		const char *s = mime_item(m, MIME_TEXT, 0, tlen);
		t = strndup(s, *tlen);
	} else
		t = NULL;
	mime_free(m);
	free(raw);
	return t;
}

/* A UTF-8 part without transfer encoding, or one of ASCII bytes in a
 * charset that extends ASCII, skips GMime's filters (part_plain): its text
 * must be what the filters give for the same ASCII bytes (a KOI8-R part
 * still goes through them) -- CRLF made LF, a lone CR kept, a CR that ends
 * the content dropped, and a CRLF that straddles the 8 KB read chunk made
 * LF once. An ISO-8859-1 part with a byte past ASCII is converted. */
T_CASE(plain_part_as_the_filters_give)
{
	size_t blen = 20000, a, b;
	char *body = malloc(blen), *ta, *tb;

	memset(body, 'x', blen);
	for (size_t i = 70; i + 1 < blen; i += 72)
		memcpy(body + i, "\r\n", 2);
	memcpy(body + 8191, "\r\n", 2);	/* across the first chunk's end */
	body[100] = '\r';			/* a lone CR */
	body[blen - 1] = '\r';		/* the content ends in a CR */
	ta = text_with_charset("utf-8", body, blen, &a);
	tb = text_with_charset("koi8-r", body, blen, &b);
	T_ASSERT(ta != NULL && tb != NULL);
	if (ta != NULL && tb != NULL) {
		T_EQ_INT(a, b);
		T_ASSERT(a == b && memcmp(ta, tb, a) == 0);
		/* one CR left: the lone one (the first CRLF, at 70, made LF) */
		T_ASSERT(memchr(ta, '\r', a) == ta + 99);
		T_ASSERT(memchr(ta + 100, '\r', a - 100) == NULL);
		T_ASSERT(ta[a - 1] == 'x');
	}
	free(tb);
	tb = text_with_charset("iso-8859-1", body, blen, &b);
	T_ASSERT(tb != NULL && b == a && memcmp(tb, ta, a) == 0);
	free(tb);
	body[5] = (char)0xE9;	/* e acute in ISO-8859-1: two bytes in UTF-8 */
	tb = text_with_charset("iso-8859-1", body, blen, &b);
	T_ASSERT(tb != NULL && b == a + 1 && memcmp(tb + 5, "\xc3\xa9", 2) == 0);
	free(tb);
	free(ta);
	free(body);
}

/* GMime's own value of each field of raw (as headers_take lists them),
 * into vals; their number. */
static int
gmime_values(const char *raw, size_t len, char **vals, int max)
{
	GMimeStream *st = g_mime_stream_mem_new_with_buffer(raw, len);
	GMimeParser *pr = g_mime_parser_new_with_stream(st);
	GMimeMessage *msg = g_mime_parser_construct_message(pr, NULL);
	int n = 0;

	if (msg != NULL) {
		GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(msg));
		for (int i = 0; i < g_mime_header_list_get_count(hl) && n < max; i++) {
			GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
			const char *v = g_mime_header_get_value(h);
			if (g_ascii_strncasecmp(g_mime_header_get_name(h), "Content-", 8) == 0)
				continue;
			v = v ? v : "";
			while (*v == ' ' || *v == '\t')
				v++;
			vals[n++] = xstrdup(v);
		}
		g_object_unref(msg);
	}
	g_object_unref(pr);
	g_object_unref(st);
	return n;
}

/* A field with no encoded word and no 8-bit byte is only unfolded, not
 * handed to GMime's decoder (header_plain): every value must still be
 * what GMime gives, for folded, tabbed, spaced and encoded ones alike. */
T_CASE(header_values_as_gmime_gives)
{
	static const char *bits[] = { "a", "b c", " ", "\t", "  ", "\r\n ", "\r\n\t",
	    "\r\n  ", "=?UTF-8?B?w6k=?=", "=?iso-8859-1?q?caf=E9?=", "=?", "?=",
	    "caf\xe9", "\xc3\xa9t\xc3\xa9", "x=y", ";", "<a@b>", "\"q\"" };
	unsigned int seed = 11;

	for (int round = 0; round < 300; round++) {
		char raw[2048], *want[8];
		size_t n = 0;
		int nf = 1 + rand_r(&seed) % 6, ng, k = 0;
		for (int f = 0; f < nf; f++) {
			n += (size_t)sprintf(raw + n, "X-F%d:", f);
			for (int j = rand_r(&seed) % 8; j > 0; j--)
				n += (size_t)sprintf(raw + n, "%s", bits[rand_r(&seed) % ARRAY_SIZE(bits)]);
			n += (size_t)sprintf(raw + n, "\r\n");
		}
		n += (size_t)sprintf(raw + n, "\r\nbody\r\n");
		struct mime_msg *m = mime_parse(raw, n);
		ng = gmime_values(raw, n, want, 8);
		T_EQ_INT((int)mime_nheaders(m), ng);
		for (int i = 0; i < ng; i++) {
			const char *name, *got = mime_header_at(m, (size_t)i, &name);
			if (k == 0 && strcmp(got, want[i]) != 0) {
				T_EQ_STR(got, want[i]);
				k = 1;
			}
			free(want[i]);
		}
		mime_free(m);
	}
}

/* Build a message nested `depth` multiparts deep. */
static char *
deep(int depth, size_t *len)
{
	size_t cap = (size_t)depth * 200 + 512, n = 0;
	char *s = malloc(cap);

	n += (size_t)sprintf(s + n, "Subject: deep\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n");
	for (int i = 1; i < depth; i++)
		n += (size_t)sprintf(s + n, "--b%d\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n", i - 1, i);
	n += (size_t)sprintf(s + n, "--b%d\r\nContent-Type: text/plain\r\n\r\ninnermost text\r\n", depth - 1);
	for (int i = depth - 1; i >= 0; i--)
		n += (size_t)sprintf(s + n, "--b%d--\r\n", i);
	*len = n;
	return s;
}

T_CASE(nesting_bounded)
{
	size_t n;
	char *s = deep(MIME_MAX_DEPTH + 10, &n);
	struct mime_msg *m = mime_parse(s, n);

	T_ASSERT(mime_truncated(m));
	T_ASSERT(!has(m, MIME_TEXT, "innermost"));
	T_EQ_STR(mime_header(m, "Subject", 0), "deep");
	mime_free(m);
	free(s);
	s = deep(4, &n);
	m = mime_parse(s, n);
	T_ASSERT(!mime_truncated(m));
	T_ASSERT(has(m, MIME_TEXT, "innermost"));
	mime_free(m);
	free(s);
}

T_CASE(boundary_flood_parses_headers_only)
{
	size_t n;
	char *s = deep(MIME_MAX_BOUNDARIES + 5, &n);
	struct mime_msg *m = mime_parse(s, n);

	T_ASSERT(mime_truncated(m));
	T_EQ_INT(mime_count(m, MIME_TEXT), 0);
	T_EQ_STR(mime_header(m, "Subject", 0), "deep");
	mime_free(m);
	free(s);
}

T_CASE(parts_and_urls_bounded)
{
	size_t cap = 64 * 1024 + (size_t)MIME_MAX_PARTS * 80, n = 0;
	char *s = malloc(cap + 64 * (MIME_MAX_URLS + 10));
	struct mime_msg *m;

	n += (size_t)sprintf(s + n, "Subject: many\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n");
	for (int i = 0; i < MIME_MAX_PARTS + 20; i++)
		n += (size_t)sprintf(s + n, "--B\r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i);
	n += (size_t)sprintf(s + n, "--B\r\nContent-Type: text/plain\r\n\r\n");
	n += (size_t)sprintf(s + n, "--B--\r\n");
	m = mime_parse(s, n);
	T_ASSERT(mime_truncated(m));
	T_EQ_INT(mime_count(m, MIME_TEXT), MIME_MAX_PARTS);
	mime_free(m);

	n = (size_t)sprintf(s, "Subject: urls\r\n\r\n");
	for (int i = 0; i < MIME_MAX_URLS + 10; i++)
		n += (size_t)sprintf(s + n, "http://u%d.example/ ", i);
	m = mime_parse(s, n);
	T_ASSERT(mime_truncated(m));
	T_EQ_INT(mime_count(m, MIME_URL), MIME_MAX_URLS);
	mime_free(m);
	free(s);
}

T_CASE(html_entities_and_comments)
{
	const char *s = "Content-Type: text/html; charset=utf-8\r\n\r\n"
	    "<!-- hide http://comment.example/ -->Fr&#101;e &#x4D;oney&nbsp;now &bogus; "
	    "<A HREF = \"HTTP://Caps.Example/x\">x</A><style>p{color:red}</style>end\r\n";
	struct mime_msg *m = mime_parse(s, strlen(s));

	T_ASSERT(has(m, MIME_TEXT, "Free Money now &bogus; x"));
	T_ASSERT(has(m, MIME_TEXT, "end"));
	T_ASSERT(!has(m, MIME_TEXT, "color"));
	T_ASSERT(!has(m, MIME_TEXT, "comment.example"));
	T_ASSERT(has_exact(m, MIME_URL, "HTTP://Caps.Example/x"));
	T_EQ_INT(mime_count(m, MIME_URL), 1);
	mime_free(m);
}

/* Mutated samples (flipped bytes, cut short, stray boundaries and
 * encoded-words spliced in): parsing never crashes and stays bounded. Run
 * under ASan by make unit-asan. Deterministic: a fixed LCG seed. */
T_CASE(mutations_never_crash)
{
	static const char *files[] = { "alternative.eml", "nested.eml", "malformed.eml" };
	static const char *splice[] = { "\r\n--ALT\r\n", "\r\n--MIX--\r\n", "=?utf-8?b?", "?=",
	    "\r\nContent-Type: multipart/mixed; boundary=\"", "&#x", "<a href=\"", "=\r\n",
	    "\r\nContent-Transfer-Encoding: base64\r\n\r\n", "filename*0*=" };
	unsigned long seed = 42;
	int parsed = 0;

	for (size_t f = 0; f < ARRAY_SIZE(files); f++) {
		size_t n;
		char *orig = mail_load(files[f], &n);
		for (int round = 0; round < 150; round++) {
			char *m = malloc(n + 64);
			size_t len = n;
			memcpy(m, orig, n);
			for (int k = 0; k < 1 + round % 8; k++) {
				seed = seed * 6364136223846793005UL + 1442695040888963407UL;
				size_t at = (size_t)(seed >> 33) % len;
				switch ((seed >> 20) % 3) {
				case 0:		/* flip a byte */
					m[at] = (char)(seed >> 8);
					break;
				case 1:		/* cut short */
					len = at + 1;
					break;
				default: {	/* splice a token over what is there */
					const char *t = splice[(seed >> 40) % ARRAY_SIZE(splice)];
					size_t tl = strlen(t);
					if (at + tl <= len)
						memcpy(m + at, t, tl);
				}
				}
			}
			struct mime_msg *mm = mime_parse(m, len);
			T_ASSERT(mime_count(mm, MIME_URL) <= MIME_MAX_URLS);
			T_ASSERT(mime_count(mm, MIME_TEXT) <= MIME_MAX_PARTS);
			mime_free(mm);
			free(m);
			parsed++;
		}
		free(orig);
	}
	T_EQ_INT(parsed, 450);
}

int
main(void)
{
	mime_init();
	T_RUN(alternative_headers_decoded);
	T_RUN(alternative_qp_and_base64_bodies);
	T_RUN(alternative_urls);
	T_RUN(url_forms);
	T_RUN(nested_multipart_and_rfc2231_names);
	T_RUN(shift_jis_subject);
	T_RUN(malformed_does_not_crash);
	T_RUN(empty_and_plain);
	T_RUN(top_fields_as_a_message);
	T_RUN(non_field_line_ends_the_header);
	T_RUN(multipart_without_parts_read_as_text);
	T_RUN(multipart_without_parts_bounded);
	T_RUN(plain_part_as_the_filters_give);
	T_RUN(header_values_as_gmime_gives);
	T_RUN(nesting_bounded);
	T_RUN(boundary_flood_parses_headers_only);
	T_RUN(parts_and_urls_bounded);
	T_RUN(html_entities_and_comments);
	T_RUN(mutations_never_crash);
	return T_END();
}
