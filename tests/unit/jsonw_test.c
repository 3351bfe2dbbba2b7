/* jsonw_test.c -- db/jsonw: the hand-made JSON writer against jansson.
 * Valid UTF-8 must come out byte for byte as json_dumps prints it; every
 * output must load with json_loads to the value written (bad bytes as
 * U+FFFD); the UTF-8 validator must agree with jansson's. */
#include "t.h"
#include "db/jsonw.h"
#include "lib/utf8.h"
#include "lib/util.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define FFFD	"\xef\xbf\xbd"

/* What jsonw writes for one string (xmalloc'd). */
static char *
w_str(const char *s)
{
	struct jsonw w;

	jsonw_init(&w, 1);
	jsonw_str(&w, s);
	return jsonw_take(&w, NULL);
}

static char *
w_real(double v)
{
	struct jsonw w;

	jsonw_init(&w, 0);
	jsonw_real(&w, v);
	return jsonw_take(&w, NULL);
}

static char *
dump_any(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);

	json_decref(j);
	return s;
}

/* Written text loads back (as the only element of an array, the way the
 * rcpts column holds it) to the string want. */
static int
loads_to(const char *text, const char *want)
{
	char *arr = xasprintf("[%s]", text);
	json_error_t err;
	json_t *j = json_loads(arr, 0, &err);
	const char *got = json_string_value(json_array_get(j, 0));
	int ok = got != NULL && strcmp(got, want) == 0 && json_array_size(j) == 1;

	if (!ok)
		fprintf(stderr, "  loads %s: %s\n", arr, j ? "other value" : err.text);
	json_decref(j);
	free(arr);
	return ok;
}

/* Valid input: the same bytes as json_dumps, and loads back to itself. */
static int
same_as_jansson(const char *s)
{
	char *mine = w_str(s), *ref = dump_any(json_string(s));
	int ok = ref != NULL && strcmp(mine, ref) == 0 && loads_to(mine, s);

	if (!ok)
		fprintf(stderr, "  jsonw %s, jansson %s\n", mine, ref ? ref : "(null)");
	free(mine);
	free(ref);
	return ok;
}

T_CASE(valid_strings_as_jansson)
{
	const char *cases[] = {
		"", "plain", "a\"quote\"", "back\\slash\\", "\\\"", "/slash/ and DEL \x7f",
		"tab\there\nnewline\r\n\b\f", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		"\xef\xbf\xbd", "\xf4\x8f\xbf\xbf max", "\xed\x9f\xbf below surrogates",
		"\xee\x80\x80 above surrogates", "\xc2\x80\xdf\xbf", "<a@b.example>",
	};
	char ctl[2] = { 0, 0 };

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		T_ASSERT(same_as_jansson(cases[i]));
	for (int c = 1; c < 0x20; c++) {
		ctl[0] = (char)c;
		T_ASSERT(same_as_jansson(ctl));
	}
}

T_CASE(long_reason_as_jansson)
{
	size_t n = 200000;
	char *s = xmalloc(n + 1);

	for (size_t i = 0; i < n; i++)
		s[i] = "ab\"\\\x01\xc3\xa9/"[i % 8];
	/* keep the two-byte sequence whole at the end */
	s[n] = '\0';
	if ((unsigned char)s[n - 1] == 0xc3)
		s[n - 1] = 'z';
	T_ASSERT(same_as_jansson(s));
	free(s);
}

/* Bad UTF-8: each byte that does not start a valid sequence is U+FFFD,
 * what db.c stored before (and shows for every text column). */
T_CASE(invalid_utf8_replaced)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "\xff", FFFD },
		{ "caf\xe9!", "caf" FFFD "!" },
		{ "\x80\xbf", FFFD FFFD },				/* stray continuations */
		{ "\xc0\xaf", FFFD FFFD },				/* overlong "/" */
		{ "\xc1\xbf", FFFD FFFD },
		{ "\xe0\x80\xaf", FFFD FFFD FFFD },			/* overlong 3-byte */
		{ "\xf0\x80\x80\xaf", FFFD FFFD FFFD FFFD },		/* overlong 4-byte */
		{ "\xed\xa0\x80", FFFD FFFD FFFD },			/* surrogate D800 */
		{ "\xed\xbf\xbf", FFFD FFFD FFFD },			/* surrogate DFFF */
		{ "\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD },		/* past U+10FFFF */
		{ "\xf5\x80", FFFD FFFD },
		{ "x\xe2\x82", "x" FFFD FFFD },			/* cut short at the end */
		{ "\xe2\x82y\xc3", FFFD FFFD "y" FFFD },
		{ "\xc3\"", FFFD "\"" },				/* a quote stops a sequence */
		{ "ok \xc3\xa9 \xfe ok", "ok \xc3\xa9 " FFFD " ok" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *mine = w_str(cases[i].in);
		T_ASSERT(json_string(cases[i].in) == NULL);	/* jansson refuses it */
		T_ASSERT(loads_to(mine, cases[i].out));
		free(mine);
	}
	/* The quote inside comes out escaped, and NULL is "". */
	char *q = w_str("\xc3\"");
	T_EQ_STR(q, "\"" FFFD "\\\"\"");
	free(q);
	q = w_str(NULL);
	T_EQ_STR(q, "\"\"");
	free(q);
}

/* utf8_len (lib/utf8.h, jsonw's validator) accepts exactly what json_string accepts: every two-byte
 * string, and every lead byte with edge values after it. */
static int
valid_by_jsonw(const char *s)
{
	size_t n;

	for (; *s; s += n)
		if ((n = utf8_len(s)) == 0)
			return 0;
	return 1;
}

T_CASE(validator_agrees_with_jansson)
{
	static const unsigned char tail[] = { 0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90,
	    0x9f, 0xa0, 0xbf, 0xc0, 0xff };
	unsigned char s[5] = { 0 };
	int bad = 0;

	for (int a = 1; a < 256; a++)
		for (int b = 0; b < 256; b++)
			for (size_t c = 0; c < sizeof(tail); c++)
				for (size_t d = 0; d < sizeof(tail); d++) {
					json_t *j;
					s[0] = (unsigned char)a;
					s[1] = (unsigned char)b;
					s[2] = tail[c];
					s[3] = tail[d];
					j = json_string((const char *)s);
					if ((j != NULL) != valid_by_jsonw((const char *)s) &&
					    bad++ < 5)
						fprintf(stderr, "  %02x %02x %02x %02x\n",
						    s[0], s[1], s[2], s[3]);
					json_decref(j);
				}
	T_EQ_INT(bad, 0);
}

static int
real_as_jansson(double v)
{
	char *mine = w_real(v), *ref = dump_any(json_real(v));
	json_t *j = json_loads(mine, JSON_DECODE_ANY, NULL);
	int ok = ref != NULL && strcmp(mine, ref) == 0 && json_is_real(j) &&
	    memcmp(&(double){ json_real_value(j) }, &v, sizeof(v)) == 0;

	if (!ok)
		fprintf(stderr, "  %.17g: jsonw %s, jansson %s\n", v, mine, ref ? ref : "(null)");
	json_decref(j);
	free(mine);
	free(ref);
	return ok;
}

T_CASE(reals_as_jansson)
{
	const double cases[] = { 0, -0.0, 1, -1, 0.5, -2, 5, -0.1, 0.1, 1.5, 3.14159,
	    1e-5, 1e-4, 123456.789, 1e14, 999999999999999, 1e15, -1e15, 1e16,
	    123456789012345678.0, 1e17, 1e20, 1.5e300, -1e-300, DBL_MIN, DBL_MAX,
	    -DBL_MAX, 5e-324, 9007199254740993.0, 0.30000000000000004, -0.5, 0.25,
	    -2.75, 1.0 / 1024, -1.0 / 1024, 999999.9990234375, -999999.9990234375,
	    1e6 + 0.5, 1.0 / 2048, 3.0 / 4096, 12345.0009765625, 0.1 * 3 };
	uint64_t x = 88172645463325252ULL;
	int bad = 0;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		T_ASSERT(real_as_jansson(cases[i]));
	/* Any finite double, from its bits (xorshift). */
	for (int i = 0; i < 20000; i++) {
		double v;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(&v, &x, sizeof(v));
		if (isfinite(v) && !real_as_jansson(v))
			bad++;
		v = (double)(int64_t)(x % 2000001) / 4 - 250000;	/* scores */
		if (!real_as_jansson(v))
			bad++;
		v = (double)(int64_t)(x % 2048000001) / 1024 - 1000000;
		if (!real_as_jansson(v))
			bad++;
	}
	T_EQ_INT(bad, 0);
}

/* JSON has no NaN or infinity; jansson refuses them (the old code then lost
 * the whole check), we write null. */
T_CASE(non_finite_is_null)
{
	char *s = w_real(NAN);

	T_EQ_STR(s, "null");
	free(s);
	s = w_real(-INFINITY);
	T_EQ_STR(s, "null");
	free(s);
	T_ASSERT(json_real(NAN) == NULL);
}

/* Raw bytes, literals and a buffer that grows from its smallest size. */
T_CASE(buffer_grows_and_frames)
{
	struct jsonw w;
	size_t len;
	char *s;

	jsonw_init(&w, 0);
	JSONW_LIT(&w, "[");
	for (int i = 0; i < 1000; i++) {
		if (i > 0)
			JSONW_LIT(&w, ",");
		jsonw_str(&w, "x\n");
	}
	JSONW_LIT(&w, "]");
	s = jsonw_take(&w, &len);
	T_EQ_INT(len, 2 + 1000 * 5 + 999);
	T_EQ_INT(strlen(s), len);
	T_ASSERT(w.buf == NULL && w.len == 0);
	json_t *j = json_loads(s, 0, NULL);
	T_EQ_INT(json_array_size(j), 1000);
	T_EQ_STR(json_string_value(json_array_get(j, 999)), "x\n");
	json_decref(j);
	free(s);
	/* framing NULs are kept */
	jsonw_init(&w, 4);
	JSONW_LIT(&w, "a\0b");
	T_EQ_INT(w.len, 3);
	T_ASSERT(memcmp(w.buf, "a\0b", 3) == 0);
	jsonw_free(&w);
	T_ASSERT(w.buf == NULL);
}

int
main(void)
{
	T_RUN(valid_strings_as_jansson);
	T_RUN(long_reason_as_jansson);
	T_RUN(invalid_utf8_replaced);
	T_RUN(validator_agrees_with_jansson);
	T_RUN(reals_as_jansson);
	T_RUN(non_finite_is_null);
	T_RUN(buffer_grows_and_frames);
	return T_END();
}
