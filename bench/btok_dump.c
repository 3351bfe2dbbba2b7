/*
 * btok_dump.c -- the classifier's tokens of every message of a labelled
 * corpus, written once so that combining methods can be tried on them
 * without parsing again (bench/bayes_proto.c reads the file).
 *
 *   btok_dump CORPUS OUT
 *
 * CORPUS as bench/bayes_cv.c reads it (labels.tsv, messages/ID.eml); the
 * messages are read and tokenised as the check sees them at DATA
 * (canonical CRLF, rules/mime.c's parse, btok_message()). OUT is binary,
 * host byte order: per message in labels.tsv order a header
 * { uint32 spam; uint32 ntokens } and ntokens of { uint64 hash; uint8
 * kind; uint8 dist; 6 bytes zero }.
 */
#include "bench/corpus.h"
#include "policy/btok.h"
#include "rules/mime.h"
#include "lib/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dump_tok {
	uint64_t h;
	uint8_t	 kind, dist, pad[6];
};

/* The raw size with CRLF counted as LF, as bayes.c gives btok_message. */
static size_t
dump_lf_len(const char *msg, size_t len)
{
	size_t n = len;

	for (size_t i = 0; i + 1 < len; i++)
		n -= msg[i] == '\r' && msg[i + 1] == '\n';
	return n;
}

int
main(int argc, char **argv)
{
	char line[1024], *p;
	FILE *lf, *out;
	long nmsg = 0, ntok = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: btok_dump CORPUS OUT\n");
		return 2;
	}
	log_init("btok_dump", 0);
	mime_init();
	p = xasprintf("%s/labels.tsv", argv[1]);
	if ((lf = fopen(p, "r")) == NULL || (out = fopen(argv[2], "wb")) == NULL)
		fatal("open");
	free(p);
	while (fgets(line, sizeof(line), lf)) {
		struct btok_set s = { 0 };
		struct mime_msg *m;
		uint32_t hdr[2];
		char *raw, *id;
		size_t len;
		int spam;

		if (!corpus_label(line, &id, &spam))
			continue;
		p = xasprintf("%s/messages/%s.eml", argv[1], id);
		if ((raw = corpus_read(p, &len)) == NULL)
			fatal("%s", p);
		free(p);
		m = mime_parse(raw, len);
		btok_message(&s, m, dump_lf_len(raw, len));
		hdr[0] = (uint32_t)spam;
		hdr[1] = (uint32_t)s.n;
		fwrite(hdr, sizeof(hdr), 1, out);
		for (size_t i = 0; i < s.n; i++) {
			struct dump_tok t = { s.v[i].h, s.v[i].kind, s.v[i].dist, { 0 } };
			fwrite(&t, sizeof(t), 1, out);
		}
		nmsg++;
		ntok += (long)s.n;
		btok_free(&s);
		mime_free(m);
		free(raw);
	}
	fclose(lf);
	if (fclose(out) != 0)
		fatal("%s", argv[2]);
	fprintf(stderr, "btok_dump: %ld messages, %ld tokens\n", nmsg, ntok);
	return 0;
}
