/*
 * mail.h -- test helper: read a sample message from tests/data/mail and
 * turn its LF line ends into the canonical CRLF the proxy spools.
 * Tests run from the repository root (make unit).
 */
#ifndef POSTERN_TEST_MAIL_H
#define POSTERN_TEST_MAIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *
mail_crlf(const char *s, size_t n, size_t *outlen)
{
	char *o = malloc(2 * n + 1);
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			o[k++] = '\r';
		o[k++] = s[i];
	}
	o[k] = '\0';
	*outlen = k;
	return o;
}

static char *
mail_load(const char *name, size_t *len)
{
	char path[256], *buf, *out;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "tests/data/mail/%s", name);
	if ((f = fopen(path, "rb")) == NULL) {
		perror(path);
		exit(1);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n)
		exit(1);
	fclose(f);
	out = mail_crlf(buf, (size_t)n, len);
	free(buf);
	return out;
}

#endif
