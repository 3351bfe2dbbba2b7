/*
 * mime.c -- GMime 3 over a received message; see mime.h for what is kept.
 *
 * GMime does the MIME work (structure, transfer decoding, charsets,
 * RFC 2047/2231); we bound what it is fed and what we keep, turn HTML into
 * text with a small tag/entity stripper of our own (no rendering, no
 * network), and find URLs.
 *
 * Why a boundary pre-count: GMime's parser recurses once per nested
 * multipart and has no nesting limit of its own, so a message that declares
 * more than MIME_MAX_BOUNDARIES boundaries is parsed for its headers only.
 *
 * Thread: mime_init() guards g_mime_init() with pthread_once; everything
 * else touches only the message being parsed.
 */
#include "rules/mime.h"
#include "lib/buf.h"
#include "lib/util.h"

#include <ctype.h>
#include <gmime/gmime.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct mime_list {
	char	**v;
	size_t	 *len;
	size_t	  n, cap;
};

struct mime_msg {
	struct mime_list lists[MIME_NKINDS];
	struct mime_list hname, hval;
	size_t	 parts;
	size_t	 text_total;
	int	 truncated;
};

static void	 mime_once(void);
static void	 list_add(struct mime_list *, const char *, size_t);
static void	 list_free(struct mime_list *);
static const char *find_ci(const char *, size_t, char);
static int	 part_plain(GMimeDataWrapper *, const char *, struct buf *);
static int	 crlf_add(struct buf *, const char *, size_t, int cr);
static int	 ascii_superset(const char *);
static int	 all_ascii(const char *, size_t);
static size_t	 boundary_count(const char *, size_t);
static int	 field_line(const char *, size_t);
static size_t	 fields_end(const char *, size_t, int *blank);
static void	 headers_take(struct mime_msg *, GMimeObject *);
static int	 header_plain(const char *);
static void	 walk(struct mime_msg *, GMimeObject *, int depth);
static void	 layout_add(struct mime_msg *, GMimeObject *, int depth);
static void	 leaf(struct mime_msg *, GMimePart *);
static int	 part_decode(GMimePart *, struct buf *);
static void	 text_add(struct mime_msg *, struct buf *);
static void	 prologue_text(struct mime_msg *, const char *);
static void	 html_strip(struct mime_msg *, const char *, size_t, struct buf *);
static size_t	 html_tag(struct mime_msg *, const char *, size_t, struct buf *);
static size_t	 html_entity(const char *, size_t, struct buf *);
static void	 html_attr_urls(struct mime_msg *, const char *, size_t);
static void	 urls_scan(struct mime_msg *, const char *, size_t);
static void	 url_add(struct mime_msg *, const char *, size_t);
static void	 mime_utf8(struct buf *, unsigned long);

static pthread_once_t mime_inited = PTHREAD_ONCE_INIT;

static void
mime_once(void)
{
	g_mime_init();
}

void
mime_init(void)
{
	pthread_once(&mime_inited, mime_once);
}

struct mime_msg *
mime_parse(const char *raw, size_t len)
{
	struct mime_msg *m = xcalloc(1, sizeof(*m));
	GMimeStream *st;
	GMimeParser *pa;
	GMimeObject *top;
	char *fixed = NULL;
	size_t feed, h;
	int blank;

	mime_init();
	/* An entity, not a GMimeMessage: the message object parses From,
	 * To, Cc... into address lists nobody here reads, and making and
	 * freeing them was a fifth of the parse (callgrind: 356k -> 276k
	 * instructions a 1 KB message, 748k -> 666k at 10 KB). Its parse
	 * also skipped an mbox From_ line, so this one does. */
	if (len >= 5 && memcmp(raw, "From ", 5) == 0) {
		const char *nl = memchr(raw, '\n', len);
		size_t skip = nl != NULL ? (size_t)(nl - raw) + 1 : len;
		raw += skip;
		len -= skip;
	}
	/* A line that is no field ends the header section (RFC 5322 2.1;
	 * Postfix's cleanup, and so the mailbox, make it the body's first
	 * line), but GMime takes it for a broken field and loses the body:
	 * text the recipient reads would escape the rules and the
	 * classifier. The empty line goes in before it. */
	h = fields_end(raw, len, &blank);
	if (!blank) {
		fixed = xmalloc(len + 2);
		memcpy(fixed, raw, h);
		memcpy(fixed + h, "\r\n", 2);
		memcpy(fixed + h + 2, raw + h, len - h);
		raw = fixed;
		len += 2;
	}
	feed = len;
	if (boundary_count(raw, len) > MIME_MAX_BOUNDARIES) {
		/* the header section only: up to its empty line (at h, ours
		 * or the message's), included */
		feed = h < len ? h + (raw[h] == '\r' ? 2 : 1) : len;
		m->truncated = 1;
	}
	st = g_mime_stream_mem_new_with_buffer(raw, feed);
	pa = g_mime_parser_new_with_stream(st);
	top = g_mime_parser_construct_part(pa, NULL);
	if (top != NULL) {
		headers_take(m, top);
		if (feed == len)
			walk(m, top, 0);
		g_object_unref(top);
	}
	g_object_unref(pa);
	g_object_unref(st);
	free(fixed);
	return m;
}

void
mime_free(struct mime_msg *m)
{
	if (m == NULL)
		return;
	for (int k = 0; k < MIME_NKINDS; k++)
		list_free(&m->lists[k]);
	list_free(&m->hname);
	list_free(&m->hval);
	free(m);
}

size_t
mime_count(const struct mime_msg *m, enum mime_kind k)
{
	return m->lists[k].n;
}

const char *
mime_item(const struct mime_msg *m, enum mime_kind k, size_t i, size_t *len)
{
	const struct mime_list *l = &m->lists[k];

	if (i >= l->n)
		fatalx("mime_item: index %zu out of %zu", i, l->n);
	if (len != NULL)
		*len = l->len[i];
	return l->v[i];
}

const char *
mime_header(const struct mime_msg *m, const char *name, size_t idx)
{
	for (size_t i = 0; i < m->hname.n; i++)
		if (strcasecmp(m->hname.v[i], name) == 0 && idx-- == 0)
			return m->hval.v[i];
	return NULL;
}

size_t
mime_nheaders(const struct mime_msg *m)
{
	return m->hname.n;
}

const char *
mime_header_at(const struct mime_msg *m, size_t i, const char **name)
{
	if (i >= m->hname.n)
		fatalx("mime_header_at: index %zu out of %zu", i, m->hname.n);
	*name = m->hname.v[i];
	return m->hval.v[i];
}

int
mime_truncated(const struct mime_msg *m)
{
	return m->truncated;
}

static void
list_add(struct mime_list *l, const char *s, size_t n)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
		l->len = xrealloc(l->len, l->cap * sizeof(*l->len));
	}
	l->v[l->n] = xstrndup(s, n);
	l->len[l->n++] = n;
}

static void
list_free(struct mime_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v); l->v = NULL;
	free(l->len); l->len = NULL;
	l->n = l->cap = 0;
}

/* The first byte of s[0..n) that is c or its upper case (c a lower-case
 * ASCII letter), or NULL. memchr, not a loop over every byte: that loop in
 * boundary_count and the URL scan was a third of a 10 KB message's parse,
 * at ten instructions a byte (callgrind); the URL scan now looks for ':'. */
static const char *
find_ci(const char *s, size_t n, char c)
{
	const char *lo = memchr(s, c, n);
	const char *up = memchr(s, c - 'a' + 'A', lo != NULL ? (size_t)(lo - s) : n);

	return up != NULL ? up : lo;
}

static size_t
boundary_count(const char *s, size_t n)
{
	static const char key[] = "boundary";
	const char *end = s + n, *p = s;
	size_t count = 0;

	while ((p = find_ci(p, (size_t)(end - p), 'b')) != NULL &&
	    (size_t)(end - p) >= sizeof(key) - 1)
		if (strncasecmp(p, key, sizeof(key) - 1) == 0) {
			count++;
			p += sizeof(key) - 1;
		} else
			p++;
	return count;
}

/* Is line (len bytes, its line end included) a header field's first
 * line: a name of printable US-ASCII other than ':', white space, ':'? */
static int
field_line(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && s[i] > ' ' && s[i] < 127 && s[i] != ':')
		i++;
	if (i == 0)
		return 0;
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i < len && s[i] == ':';
}

/* Where the header section ends: the offset of its empty line (*blank
 * 1), of the first line that is neither a field nor a field's
 * continuation (*blank 0), or n when there is neither (*blank 1). */
static size_t
fields_end(const char *s, size_t n, int *blank)
{
	size_t i = 0;

	*blank = 1;
	while (i < n) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t e = nl != NULL ? (size_t)(nl - s) + 1 : n;
		if (s[i] == '\n' || (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n'))
			return i;
		if (!(i > 0 && (s[i] == ' ' || s[i] == '\t')) && !field_line(s + i, e - i)) {
			*blank = 0;
			return i;
		}
		i = e;
	}
	return n;
}

/* GMime's header values are unfolded and RFC 2047-decoded to UTF-8. */
static void
headers_take(struct mime_msg *m, GMimeObject *top)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(top);
	int n = g_mime_header_list_get_count(hl);

	for (int i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *name = g_mime_header_get_name(h), *raw, *val;
		char *unfolded = NULL;

		if (m->hname.n == MIME_MAX_HEADERS) {
			m->truncated = 1;
			return;
		}
		/* the body's own fields, as GMime's message parse leaves them
		 * out of the message's list (the rules and the classifier
		 * have always seen the rest) */
		if (name == NULL || g_ascii_strncasecmp(name, "Content-", 8) == 0)
			continue;
		raw = g_mime_header_get_raw_value(h);
		if (raw != NULL && header_plain(raw))
			val = unfolded = g_mime_utils_header_unfold(raw);
		else
			val = g_mime_header_get_value(h);
		if (val == NULL)
			val = "";
		while (*val == ' ' || *val == '\t')
			val++;
		list_add(&m->hname, name, strlen(name));
		list_add(&m->hval, val, strlen(val));
		g_free(unfolded);
	}
}

/* Whether GMime's decoding would leave the unfolded value as it is: no
 * encoded word ("=?") and no 8-bit byte to convert. Its value is then
 * only unfolded, at a quarter of the cost: callgrind, 1 KB messages with
 * every check on, g_mime_header_get_value 8.3k instructions a header
 * (a DKIM-Signature among them). Unfolding the raw value gave GMime's
 * value for each of the 94,844 such headers of the training corpus and
 * of 10,548 random ones. */
static int
header_plain(const char *raw)
{
	for (const unsigned char *p = (const unsigned char *)raw; *p != '\0'; p++)
		if (*p >= 0x80 || (p[0] == '=' && p[1] == '?'))
			return 0;
	return 1;
}

static void
walk(struct mime_msg *m, GMimeObject *o, int depth)
{
	if (depth > MIME_MAX_DEPTH) {
		m->truncated = 1;
		return;
	}
	layout_add(m, o, depth);
	if (GMIME_IS_MESSAGE_PART(o)) {
		GMimeMessage *sub = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
		if (sub != NULL && g_mime_message_get_mime_part(sub) != NULL)
			walk(m, g_mime_message_get_mime_part(sub), depth + 1);
	} else if (GMIME_IS_MULTIPART(o)) {
		GMimeMultipart *mp = GMIME_MULTIPART(o);
		int n = g_mime_multipart_get_count(mp);
		for (int i = 0; i < n; i++)
			walk(m, g_mime_multipart_get_part(mp, i), depth + 1);
		if (n == 0)
			prologue_text(m, g_mime_multipart_get_prologue(mp));
	} else if (GMIME_IS_PART(o)) {
		leaf(m, GMIME_PART(o));
	}
}

/* "DEPTH type/subtype[ charset]", lower-case, for each entity walked. */
static void
layout_add(struct mime_msg *m, GMimeObject *o, int depth)
{
	GMimeContentType *ct = g_mime_object_get_content_type(o);
	const char *cs = g_mime_object_get_content_type_parameter(o, "charset");
	char buf[160];
	int n;

	if (m->lists[MIME_PART].n >= MIME_MAX_PARTS) {
		m->truncated = 1;
		return;
	}
	n = snprintf(buf, sizeof(buf), "%d %.60s/%.60s%s%.30s", depth,
	    ct && ct->type ? ct->type : "text", ct && ct->subtype ? ct->subtype : "plain",
	    cs ? " " : "", cs ? g_mime_charset_canon_name(cs) : "");
	if (n < 0)
		return;
	for (char *p = buf; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	list_add(&m->lists[MIME_PART], buf, strlen(buf));
}

/* One leaf: its file name if any; its text unless it is an attachment. */
static void
leaf(struct mime_msg *m, GMimePart *p)
{
	GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(p));
	const char *fn = g_mime_part_get_filename(p);
	struct buf b = { 0 };

	if (++m->parts > MIME_MAX_PARTS) {
		m->truncated = 1;
		return;
	}
	if (fn != NULL)
		list_add(&m->lists[MIME_ATTACHMENT], fn, strlen(fn));
	if (g_mime_part_is_attachment(p) || ct == NULL ||
	    !g_mime_content_type_is_type(ct, "text", "*"))
		return;
	if (part_decode(p, &b) == -1) {
		buf_free(&b);
		return;
	}
	if (g_mime_content_type_is_type(ct, "text", "html")) {
		struct buf t = { 0 };
		html_strip(m, buf_ptr(&b), b.len, &t);
		buf_free(&b);
		b = t;
	}
	text_add(m, &b);
}

/* Transfer-decode, convert to UTF-8, CRLF to LF. 0 or -1. */
static int
part_decode(GMimePart *p, struct buf *b)
{
	GMimeDataWrapper *dw = g_mime_part_get_content(p);
	const char *cs = g_mime_object_get_content_type_parameter(GMIME_OBJECT(p), "charset");
	GMimeStream *mem, *fs;
	GMimeFilter *f;
	GByteArray *ba;

	if (dw == NULL)
		return -1;
	if (part_plain(dw, cs, b) == 0)
		return 0;
	mem = g_mime_stream_mem_new();
	fs = g_mime_stream_filter_new(mem);
	if (cs != NULL && strcasecmp(g_mime_charset_canon_name(cs), "UTF-8") != 0 &&
	    (f = g_mime_filter_charset_new(cs, "UTF-8")) != NULL) {
		g_mime_stream_filter_add(GMIME_STREAM_FILTER(fs), f);
		g_object_unref(f);
	}
	f = g_mime_filter_dos2unix_new(FALSE);
	g_mime_stream_filter_add(GMIME_STREAM_FILTER(fs), f);
	g_object_unref(f);
	g_mime_data_wrapper_write_to_stream(dw, fs);
	g_mime_stream_flush(fs);
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	buf_add(b, (const char *)ba->data, ba->len);
	g_object_unref(fs);
	g_object_unref(mem);
	return 0;
}

/* Content with no transfer encoding, in UTF-8 (or no charset) or of
 * ASCII bytes alone in a charset that extends ASCII, needs none of
 * GMime's filters: its text is its bytes, CRLF made LF. The filter
 * chain cost 15 instructions a byte, a fifth of a 10 KB message's parse
 * (callgrind). 0, or -1: part_decode's filters must do it. */
static int
part_plain(GMimeDataWrapper *dw, const char *cs, struct buf *b)
{
	GMimeContentEncoding enc = g_mime_data_wrapper_get_encoding(dw);
	GMimeStream *st = g_mime_data_wrapper_get_stream(dw);
	const char *canon = cs != NULL ? g_mime_charset_canon_name(cs) : "UTF-8";
	int utf8 = strcasecmp(canon, "UTF-8") == 0;
	char chunk[8192];
	ssize_t n;
	size_t start = b->len;
	int cr = 0;	/* the last chunk ended in a CR, held back */

	if ((enc != GMIME_CONTENT_ENCODING_DEFAULT && enc != GMIME_CONTENT_ENCODING_7BIT &&
	    enc != GMIME_CONTENT_ENCODING_8BIT && enc != GMIME_CONTENT_ENCODING_BINARY) ||
	    (!utf8 && !ascii_superset(canon)) || st == NULL || g_mime_stream_reset(st) == -1)
		return -1;
	while ((n = g_mime_stream_read(st, chunk, sizeof(chunk))) > 0)
		cr = crlf_add(b, chunk, (size_t)n, cr);
	/* a CR that ends the content goes, as GMime's filter drops it */
	if (!utf8 && !all_ascii(buf_ptr(b) + start, b->len - start)) {
		b->len = start;		/* its charset must be converted */
		return -1;
	}
	return 0;
}

/* Append p[0..n) to b with every CRLF made LF. cr: a CR ended the text
 * before and was held back; returns whether one ends this text, held back
 * in turn (the caller writes or drops it). */
static int
crlf_add(struct buf *b, const char *p, size_t n, int cr)
{
	const char *end = p + n, *q;

	if (n == 0)
		return cr;
	if (cr && *p != '\n')
		buf_addc(b, '\r');
	while ((q = memchr(p, '\r', (size_t)(end - p))) != NULL) {
		buf_add(b, p, (size_t)(q - p));
		if (q + 1 == end)
			return 1;
		if (q[1] != '\n')
			buf_addc(b, '\r');
		p = q + 1;
	}
	buf_add(b, p, (size_t)(end - p));
	return 0;
}

/* A charset (GMime's canonical name) that is ASCII in its first 128
 * codes, one byte each: text in it of ASCII bytes alone is already UTF-8. */
static int
ascii_superset(const char *canon)
{
	static const char *const prefix[] = { "us-ascii", "ascii", "iso-8859-",
	    "windows-cp125", "cp125", "latin1" };

	for (size_t i = 0; i < ARRAY_SIZE(prefix); i++)
		if (strncasecmp(canon, prefix[i], strlen(prefix[i])) == 0)
			return 1;
	return 0;
}

static int
all_ascii(const char *s, size_t n)
{
	unsigned char high = 0;

	for (size_t i = 0; i < n; i++)	/* no early exit: vectorised */
		high |= (unsigned char)s[i];
	return high < 0x80;
}

/* A multipart whose boundary never comes has no part: its whole body is
 * the prologue, which GMime sets aside and a mail reader may still show.
 * The checks read it as text (CRLF to LF, as part_decode gives; a final
 * CR kept), converted no further than text_add keeps: twice its bound in
 * bytes is more than it keeps even if every line ends in CRLF, and one
 * byte more tells it to cut. */
static void
prologue_text(struct mime_msg *m, const char *s)
{
	struct buf b = { 0 };

	if (s == NULL || *s == '\0')
		return;
	if (crlf_add(&b, s, strnlen(s, 2 * (MIME_MAX_TEXT + 1)), 0))
		buf_addc(&b, '\r');
	text_add(m, &b);
}

/* Keep one part's text within the per-part and per-message bounds. */
static void
text_add(struct mime_msg *m, struct buf *b)
{
	size_t n = b->len;

	if (n > MIME_MAX_TEXT) {
		n = MIME_MAX_TEXT;
		m->truncated = 1;
	}
	if (m->text_total + n > MIME_MAX_TEXT_TOTAL) {
		n = MIME_MAX_TEXT_TOTAL - m->text_total;
		m->truncated = 1;
	}
	m->text_total += n;
	urls_scan(m, buf_ptr(b), n);
	list_add(&m->lists[MIME_TEXT], buf_ptr(b), n);
	buf_free(b);
}

static void
mime_utf8(struct buf *b, unsigned long c)
{
	char u[4];

	if (c == 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		c = 0xFFFD;
	if (c < 0x80) {
		u[0] = (char)c;
		buf_add(b, u, 1);
	} else if (c < 0x800) {
		u[0] = (char)(0xC0 | c >> 6); u[1] = (char)(0x80 | (c & 0x3F));
		buf_add(b, u, 2);
	} else if (c < 0x10000) {
		u[0] = (char)(0xE0 | c >> 12); u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		u[2] = (char)(0x80 | (c & 0x3F));
		buf_add(b, u, 3);
	} else {
		u[0] = (char)(0xF0 | c >> 18); u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((c >> 6) & 0x3F)); u[3] = (char)(0x80 | (c & 0x3F));
		buf_add(b, u, 4);
	}
}

/*
 * HTML to text: tags vanish (so "V<b>i</b>agra" reads "Viagra", which is
 * what a rule wants to see), block tags become newlines, script/style and
 * comments are dropped, entities are decoded. href/src values become URLs.
 */
static void
html_strip(struct mime_msg *m, const char *s, size_t n, struct buf *out)
{
	size_t i = 0;

	while (i < n) {
		if (s[i] == '<')
			i += html_tag(m, s + i, n - i, out);
		else if (s[i] == '&')
			i += html_entity(s + i, n - i, out);
		else {
			size_t j = i;
			while (j < n && s[j] != '<' && s[j] != '&')
				j++;
			buf_add(out, s + i, j - i);
			i = j;
		}
	}
}

/* Consume one tag (or comment, or script/style element) at s; bytes used. */
static size_t
html_tag(struct mime_msg *m, const char *s, size_t n, struct buf *out)
{
	static const char *block[] = { "br", "p", "div", "tr", "li", "h1", "h2",
	    "h3", "table", "blockquote", "hr", "td", NULL };
	const char *e;
	size_t nl = 0;
	char name[16];

	if (n >= 4 && memcmp(s, "<!--", 4) == 0) {
		e = memmem(s + 4, n - 4, "-->", 3);
		return e ? (size_t)(e - s) + 3 : n;
	}
	if ((e = memchr(s, '>', n)) == NULL)
		return n;		/* an unterminated tag hides the rest */
	for (size_t i = 1 + (s[1] == '/'); s + i < e && nl < sizeof(name) - 1 &&
	    (isalpha((unsigned char)s[i]) || isdigit((unsigned char)s[i])); i++)
		name[nl++] = (char)(s[i] | 0x20);
	name[nl] = '\0';
	if (s[1] != '/' && (strcmp(name, "script") == 0 || strcmp(name, "style") == 0)) {
		char close[sizeof(name) + 2];
		snprintf(close, sizeof(close), "</%s", name);
		for (const char *c = e; c < s + n; c++)
			if (*c == '<' && (size_t)(s + n - c) >= strlen(close) &&
			    strncasecmp(c, close, strlen(close)) == 0) {
				const char *ce = memchr(c, '>', (size_t)(s + n - c));
				return ce ? (size_t)(ce - s) + 1 : n;
			}
		return n;
	}
	html_attr_urls(m, s, (size_t)(e - s));
	for (int i = 0; block[i] != NULL; i++)
		if (strcmp(name, block[i]) == 0) {
			buf_add(out, "\n", 1);
			break;
		}
	return (size_t)(e - s) + 1;
}

/* href= and src= values inside one tag, entity-decoded. */
static void
html_attr_urls(struct mime_msg *m, const char *s, size_t n)
{
	for (size_t i = 1; i + 4 < n; i++) {
		size_t k;
		if (strncasecmp(s + i, "href", 4) == 0 && !isalnum((unsigned char)s[i - 1]))
			k = i + 4;
		else if (strncasecmp(s + i, "src", 3) == 0 && !isalnum((unsigned char)s[i - 1]))
			k = i + 3;
		else
			continue;
		while (k < n && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n'))
			k++;
		if (k >= n || s[k] != '=')
			continue;
		for (k++; k < n && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n'); k++)
			;
		char q = k < n && (s[k] == '"' || s[k] == '\'') ? s[k++] : 0;
		size_t st = k;
		while (k < n && (q ? s[k] != q : !isspace((unsigned char)s[k])))
			k++;
		struct buf v = { 0 };
		for (size_t j = st; j < k; )
			if (s[j] == '&')
				j += html_entity(s + j, k - j, &v);
			else
				buf_add(&v, s + j++, 1);
		size_t a = 0;
		while (a < v.len && isspace((unsigned char)buf_ptr(&v)[a]))
			a++;
		if (v.len > a)
			url_add(m, buf_ptr(&v) + a, v.len - a);
		buf_free(&v);
		i = k;
	}
}

/* One entity at s ("&amp;", "&#233;", "&#xE9;"); unknown ones stay as is. */
static size_t
html_entity(const char *s, size_t n, struct buf *out)
{
	static const struct { const char *name; unsigned long c; } ent[] = {
		{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' },
		{ "apos", '\'' }, { "nbsp", ' ' }, { "copy", 0xA9 }, { "reg", 0xAE },
		{ "euro", 0x20AC }, { "shy", 0xAD }, { "zwnj", 0x200C }, { "zwj", 0x200D },
	};
	size_t i = 1, lim = n < 12 ? n : 12;

	if (i < lim && s[i] == '#') {
		unsigned long c = 0;
		int hex = i + 1 < lim && (s[i + 1] | 0x20) == 'x';
		size_t st = i = i + 1 + hex;
		for (; i < lim && (hex ? isxdigit((unsigned char)s[i]) : isdigit((unsigned char)s[i])); i++)
			c = c * (hex ? 16 : 10) + (unsigned long)(isdigit((unsigned char)s[i]) ?
			    s[i] - '0' : (s[i] | 0x20) - 'a' + 10);
		if (i > st) {
			mime_utf8(out, c);
			return i + (i < n && s[i] == ';');
		}
	} else {
		for (size_t k = 0; k < ARRAY_SIZE(ent); k++) {
			size_t l = strlen(ent[k].name);
			if (1 + l <= n && strncmp(s + 1, ent[k].name, l) == 0 &&
			    (1 + l == n || !isalnum((unsigned char)s[1 + l]))) {
				mime_utf8(out, ent[k].c);
				return 1 + l + (1 + l < n && s[1 + l] == ';');
			}
		}
	}
	buf_add(out, "&", 1);
	return 1;
}

/* Bare http:// and https:// URLs in text. */
static void
urls_scan(struct mime_msg *m, const char *s, size_t n)
{
	const char *c = s, *end = s + n;

	/* From each "://" back to its "http" or "https": a colon is rare in
	 * text where an 'h' is not (each 'h' was two memchr() calls and a
	 * strncasecmp(), 1% of Postern's CPU on a 10 KB message) */
	while ((c = memchr(c, ':', (size_t)(end - c))) != NULL) {
		size_t k = (size_t)(c - s), i, e;
		c++;
		if (k + 3 > n || memcmp(s + k, "://", 3) != 0)
			continue;
		if (k >= 5 && strncasecmp(s + k - 5, "https", 5) == 0)
			i = k - 5;
		else if (k >= 4 && strncasecmp(s + k - 4, "http", 4) == 0)
			i = k - 4;
		else
			continue;
		if (i + 7 >= n)
			break;
		e = k + 3;
		while (e < n && !isspace((unsigned char)s[e]) && !strchr("<>\"'`", s[e]) &&
		    (unsigned char)s[e] >= 0x20)
			e++;
		while (e > k + 3 && strchr(".,;:!?)]}", s[e - 1]))
			e--;
		if (e > k + 3) {
			url_add(m, s + i, e - i);
			c = s + e;
		}
	}
}

static void
url_add(struct mime_msg *m, const char *s, size_t n)
{
	struct mime_list *l = &m->lists[MIME_URL];

	if (n > MIME_MAX_URL_LEN)
		n = MIME_MAX_URL_LEN;
	for (size_t i = 0; i < l->n; i++)
		if (l->len[i] == n && memcmp(l->v[i], s, n) == 0)
			return;
	if (l->n == MIME_MAX_URLS) {
		m->truncated = 1;
		return;
	}
	list_add(l, s, n);
}
