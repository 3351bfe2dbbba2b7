/* btok_test.c -- the tokeniser's output is fixed: learned tables hold
 * these hashes, so a faster tokeniser must make exactly the same tokens,
 * in the same order, with the same readable text. Each case tokenises a
 * message and compares the token count and one XXH3 digest over every
 * token's (hash, kind, distance, readable text) with values recorded from
 * the tokeniser before it was optimised (run with BTOK_TEST_RECORD=1 to
 * print the values of the code as it is). */
#include "t.h"
#include "policy/bayes.h"
#include "policy/btok.h"
#include "rules/mime.h"
#include "lib/util.h"
#include "lib/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct golden {
	size_t	 n;
	uint64_t digest;
};

static int record;

/* Count and digest of s's tokens, in order. */
static struct golden
digest_set(const struct btok_set *s)
{
	XXH3_state_t *st = XXH3_createState();
	char buf[BAYES_TOKEN_TEXT];
	struct golden g = { s->n, 0 };

	XXH3_64bits_reset(st);
	for (size_t i = 0; i < s->n; i++) {
		const struct btok *t = &s->v[i];
		uint8_t kd[2] = { t->kind, t->dist };
		btok_format(s, t, buf, sizeof(buf));
		XXH3_64bits_update(st, &t->h, sizeof(t->h));
		XXH3_64bits_update(st, kd, sizeof(kd));
		XXH3_64bits_update(st, buf, strlen(buf) + 1);
	}
	g.digest = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return g;
}

static void
check(const char *name, const struct btok_set *s, size_t n, uint64_t digest)
{
	struct golden g = digest_set(s);

	if (record)
		printf("%s: %zu, 0x%016llxULL\n", name, g.n, (unsigned long long)g.digest);
	T_EQ_INT(g.n, n);
	T_ASSERT(g.digest == digest);
}

static void
check_msg(const char *name, const char *msg, size_t len, size_t n, uint64_t digest)
{
	struct mime_msg *m = mime_parse(msg, len);
	struct btok_set s = { 0 };

	btok_message(&s, m, len);
	check(name, &s, n, digest);
	btok_free(&s);
	mime_free(m);
}

static unsigned long lcg = 7;

static unsigned
rnd(void)
{
	lcg = lcg * 6364136223846793005UL + 1442695040888963407UL;
	return (unsigned)(lcg >> 33);
}

T_CASE(golden_ascii)
{
	const char *msg =
	    "Received: from mx.example.net (mx.example.net [192.0.2.17]) by relay.example.org\r\n"
	    "\twith ESMTPS id 4Ab12; Mon, 7 Dec 2026 04:00:00 +0000\r\n"
	    "Received: from [10.1.2.3] (helo=box) by mx.example.net 198.51.100.200 1.2.3.4.5\r\n"
	    "From: \"Alice O'Neil\" <alice.o-neil@Mail.Example.COM>\r\n"
	    "To: bob@example.org, Carol <carol@sub.Example.org>\r\n"
	    "Cc: dave@example.net\r\nReply-To: <reply@bounce.example.com>\r\n"
	    "Message-ID: <1234.5678@mail.example.com>\r\n"
	    "Subject: Re: Quarterly REPORT -- the $1,000,000 question...\r\n"
	    "X-Mailer: Postern-Test 1.0\r\nList-Id: <list.example.org>\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
	    "Hello Bob,\r\n\r\nThe report's numbers: 12345 67 3.14159 2026-12-07 and 1.2.3.4.\r\n"
	    "It's --really-- 'quoted' ...dots... and_under_scores_ __x__ a b c.\r\n"
	    "Call 555-0100 now! Price $19.99, 50% off; e-mail me at bob@example.org.\r\n"
	    "Don't  miss\tTHE\tdeal.  Click here. click HERE. Remove me from the list.\r\n";

	check_msg("ascii", msg, strlen(msg), 156, 0x5b8e3a6e3c002acaULL);
}

T_CASE(golden_utf8)
{
	const char *msg =
	    "From: =?UTF-8?B?w4lsb2TDrWU=?= <elodie@exemple.fr>\r\n"
	    "To: hans@beispiel.de\r\n"
	    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n"
	    "Grüße aus München! Ça va? ÉLODIE écrit: «Bonjour» — 東京 と 大阪 の 天気 は 晴れ です。\r\n"
	    "Привет, мир! ПРИВЕТ МИР. Ελληνικά κείμενα. عربي 😀😀 emoji-🎉party\r\n"
	    "naïve café résumé NAÏVE CAFÉ Straße STRASSE\r\n";

	check_msg("utf8", msg, strlen(msg), 110, 0xebe3af08470b28aeULL);
}

T_CASE(golden_html_urls)
{
	const char *msg =
	    "From: Deals <promo@deals.example>\r\nTo: you@example.org\r\n"
	    "Subject: You WON a prize!!!\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n"
	    "--b1\r\nContent-Type: text/html; charset=iso-8859-1\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "<html><head><style>p{color:red}</style></head><body>\r\n"
	    "<p>Dear <b>Customer</b>,</p><p>Claim your <a href=3D\"http://WWW.Win.Prize.Example.COM/claim?id=3D7\">prize</a>"
	    " at <a href=3D\"https://secure.login.example.net:8443/x#y\">our site</a> or"
	    " http://192.0.2.5/path and hxxp://bad and https://a.b.c.d.example.co.uk/.</p>\r\n"
	    "<img src=3D\"http://img.tracker.example/pixel.gif\">Caf=E9 cr=E8me &amp; &eacute;t=E9"
	    " &#8364;100</body></html>\r\n"
	    "--b1\r\nContent-Type: application/pdf; name=\"Invoice.PDF\"\r\n"
	    "Content-Disposition: attachment; filename=\"Invoice.PDF\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+Pgo=\r\n"
	    "--b1--\r\n";

	check_msg("html_urls", msg, strlen(msg), 91, 0xe832b895ee468d2cULL);
}

T_CASE(golden_long_words)
{
	struct buf b = { 0 };

	buf_adds(&b, "From: x@y.example\r\nTo: z@y.example\r\nSubject: blobs\r\n\r\n");
	buf_adds(&b, "aGVsbG8gd29ybGQgdGhpcyBpcyBhIGxvbmcgYmFzZTY0IGJsb2IgdGhhdCBzaG91bGQgYmUgc2tpcHBlZA "
	    "0123456789abcdef0123456789abcdef0123 exactlythirtytwobyteslongwordxxxx "
	    "exactlythirtythreebyteslongwordxx 1234 12345 123456789012 ..--''__ 'x' ab "
	    "ÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜÄÖÜ Ü" "ber-long-hyphenated-compound-word-that-goes-on-and-on "
	    "$$$$$ ----- 9.9.9.9.9.9 e-\r\n");
	check_msg("long_words", buf_ptr(&b), b.len, 23, 0x451fffae28a10bb9ULL);
	buf_free(&b);
}

/* Random bytes of every value, through btok_text: word boundaries, case
 * folding and the bounds on every byte class. */
T_CASE(golden_random_bytes)
{
	struct btok_set s = { 0 };
	char *t = xmalloc(65536);

	for (size_t i = 0; i < 65536; i++) {
		unsigned r = rnd();
		/* mostly letters and separators, so that words form */
		t[i] = (char)(r % 4 == 0 ? (int)((r >> 8) & 0xff) : r % 4 == 1 ? ' ' :
		    "aZ09.-'_$xYq"[(r >> 8) % 12]);
	}
	btok_text(&s, t, 65536);
	check("random_text", &s, 23751, 0xbb4eadf20053bf1aULL);
	btok_unique(&s);
	check("random_unique", &s, 22381, 0x6bcf47d1d66978d8ULL);
	btok_free(&s);
	free(t);
}

/* A message longer than BTOK_MAX_WORDS body words: the cut is the same. */
T_CASE(golden_many_words)
{
	struct buf b = { 0 };

	buf_adds(&b, "From: a@b.example\r\nTo: c@d.example\r\nSubject: many\r\n\r\n");
	for (int i = 0; i < 9000; i++)
		buf_printf(&b, "w%u%s", rnd() % 3000, rnd() % 10 ? " " : ".\r\n");
	check_msg("many_words", buf_ptr(&b), b.len, 18779, 0xeb00262f916fb3c6ULL);
	buf_free(&b);
}

/* A first pass (max_text) reads the words up to the cut, finishing the
 * word it falls in, and says it left text out; text that fits is read
 * whole and not marked cut. A second part after the budget is spent is
 * not read at all. */
T_CASE(first_pass_cut)
{
	const char *msg = "From: a@b.example\r\nSubject: cut\r\n"
	    "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n"
	    "--B\r\nContent-Type: text/plain\r\n\r\nalpha bravo charlie delta\r\n"
	    "--B\r\nContent-Type: text/plain\r\n\r\nzulu\r\n--B--\r\n";
	struct mime_msg *m = mime_parse(msg, strlen(msg));
	struct btok_set all = { 0 }, cut = { 0 }, fits = { 0 };
	char buf[BAYES_TOKEN_TEXT];
	int bravo = 0, charlie = 0, zulu = 0;

	btok_message(&all, m, strlen(msg));
	cut.max_text = 8;	/* "alpha br": bravo is finished, charlie not read */
	btok_message(&cut, m, strlen(msg));
	fits.max_text = 1000;
	btok_message(&fits, m, strlen(msg));
	T_ASSERT(!all.cut && !fits.cut && cut.cut);
	T_EQ_INT(fits.n, all.n);
	for (size_t i = 0; i < cut.n; i++) {
		btok_format(&cut, &cut.v[i], buf, sizeof(buf));
		bravo |= strcmp(buf, "bravo") == 0;
		charlie |= strstr(buf, "charlie") != NULL;
		zulu |= strstr(buf, "zulu") != NULL;
	}
	T_ASSERT(bravo && !charlie && !zulu);
	T_ASSERT(cut.n < all.n);
	btok_free(&all);
	btok_free(&cut);
	btok_free(&fits);
	mime_free(m);
}

int
main(void)
{
	record = getenv("BTOK_TEST_RECORD") != NULL;
	log_init("btok_test", 0);
	log_set_level(LOG_LVL_WARN);
	mime_init();
	T_RUN(golden_ascii);
	T_RUN(golden_utf8);
	T_RUN(golden_html_urls);
	T_RUN(golden_long_words);
	T_RUN(golden_random_bytes);
	T_RUN(golden_many_words);
	T_RUN(first_pass_cut);
	return T_END();
}
