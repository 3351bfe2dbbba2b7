/* fuzz_jsonw.c -- db/jsonw against jansson. The input as a string: when
 * jansson takes it (valid UTF-8), jsonw writes json_dumps' bytes; always,
 * the text loads with json_loads to the input with each byte that starts
 * no valid sequence replaced by U+FFFD, where "valid sequence" is decided
 * by jansson here (json_stringn on the shortest prefix it accepts), not by
 * lib/utf8.h. The first 8 bytes as a double: jsonw_real prints what
 * jansson prints. */
#include "fuzz.h"
#include "db/jsonw.h"

#include <jansson.h>
#include <math.h>

#define FFFD	"\xef\xbf\xbd"

/* The input with bad bytes replaced, by jansson's judgement. */
static char *
reference(const char *s)
{
	size_t n = strlen(s);
	const char *end = s + n;
	char *out = malloc(n * 3 + 1), *o = out;

	if (out == NULL)
		abort();
	while (*s) {
		size_t k = 0;
		for (size_t l = 1; l <= 4 && k == 0 && l <= (size_t)(end - s); l++) {
			json_t *j = json_stringn(s, l);
			if (j != NULL)
				k = l;
			json_decref(j);
		}
		if (k == 0) {
			memcpy(o, FFFD, 3);
			o += 3;
			s++;
		} else {
			memcpy(o, s, k);
			o += k;
			s += k;
		}
	}
	*o = '\0';
	return out;
}

static void
check_str(const char *s)
{
	struct jsonw w;
	char *text, *arr, *want = reference(s);
	json_t *j, *js = json_string(s);
	size_t len;

	jsonw_init(&w, 1);
	jsonw_str(&w, s);
	text = jsonw_take(&w, &len);
	FUZZ_ASSERT(strlen(text) == len);
	if (js != NULL) {
		char *ref = json_dumps(js, JSON_COMPACT | JSON_ENCODE_ANY);
		FUZZ_ASSERT(ref != NULL && strcmp(ref, text) == 0);
		FUZZ_ASSERT(strcmp(want, s) == 0);
		free(ref);
	}
	arr = malloc(len + 3);
	if (arr == NULL)
		abort();
	arr[0] = '[';
	memcpy(arr + 1, text, len);
	memcpy(arr + 1 + len, "]", 2);
	j = json_loads(arr, 0, NULL);
	FUZZ_ASSERT(j != NULL && json_array_size(j) == 1);
	FUZZ_ASSERT(strcmp(json_string_value(json_array_get(j, 0)), want) == 0);
	json_decref(j);
	json_decref(js);
	free(arr);
	free(text);
	free(want);
}

static void
check_real(const uint8_t *d)
{
	struct jsonw w;
	double v;
	char *text, *ref;

	memcpy(&v, d, sizeof(v));
	jsonw_init(&w, 1);
	jsonw_real(&w, v);
	text = jsonw_take(&w, NULL);
	if (!isfinite(v))
		FUZZ_ASSERT(strcmp(text, "null") == 0);
	else {
		json_t *j = json_real(v);
		ref = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		FUZZ_ASSERT(ref != NULL && strcmp(ref, text) == 0);
		free(ref);
		json_decref(j);
	}
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	char *s = fuzz_str(d, n);

	check_str(s);
	if (n >= sizeof(double))
		check_real(d);
	free(s);
	return 0;
}
