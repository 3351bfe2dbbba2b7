/*
 * tconf.h -- a config for tests that run the policy over a real database:
 * text written to DIR/p.conf after a fresh SQLite db.path in DIR and a
 * resolver nobody answers on, loaded, and pol_init() run on it. Returns
 * the conf (the caller unrefs it after pol_shutdown()), or NULL with every
 * problem on stderr. dir is a mkdtemp() template, filled in here.
 */
#ifndef POSTERN_TCONF_H
#define POSTERN_TCONF_H

#include "lib/conf.h"
#include "lib/util.h"
#include "policy/policy.h"

#include <stdio.h>
#include <stdlib.h>

static inline struct conf *
t_policy_conf(char *dir, const char *text)
{
	struct conf_err *e = NULL;
	char path[300], db[300];
	struct conf *c;
	FILE *f;
	int n = 0;

	if (mkdtemp(dir) == NULL)
		return NULL;
	snprintf(path, sizeof(path), "%s/p.conf", dir);
	snprintf(db, sizeof(db), "%s/p.db", dir);
	if ((f = fopen(path, "w")) == NULL)
		return NULL;
	fprintf(f, "[db]\npath = %s\n[dns]\nresolver = 127.0.0.1:9\ntimeout = 200\n%s",
	    db, text);
	fclose(f);
	if ((c = conf_load(path, &e, &n)) == NULL) {
		for (int i = 0; i < n; i++)
			fprintf(stderr, "%s\n", e[i].msg);
		free(e);
		return NULL;
	}
	log_set_level(LOG_LVL_ERR);
	if (pol_init(c) == -1) {
		conf_unref(c);
		return NULL;
	}
	return c;
}

#endif
