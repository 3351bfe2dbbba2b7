/*
 * passwd.c -- `postern passwd -c FILE USER`: read a password from the
 * first line of stdin and store its hash (web/auth.h) for the web user.
 * Exit 0 set, 1 no usable password or a database failure, 2 bad usage.
 */
#include "cli/cli.h"
#include "db/db.h"
#include "lib/conf.h"
#include "web/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	 passwd_read(char *, size_t);

/* The first line of stdin, without CR/LF: 0, or -1 when empty or too long. */
static int
passwd_read(char *buf, size_t sz)
{
	size_t n;

	if (fgets(buf, (int)sz, stdin) == NULL)
		return -1;
	n = strcspn(buf, "\r\n");
	if (buf[n] == '\0' && n == sz - 1)
		return -1;		/* no newline and buffer full: too long */
	buf[n] = '\0';
	return n > 0 ? 0 : -1;
}

int
cli_passwd(int argc, char **argv)
{
	char pw[AUTH_MAX_PASSWORD + 2];
	const char *user = argc > 1 ? argv[argc - 1] : NULL;
	struct conf *c;
	char *hash;
	int rc;

	if (user == NULL || argc < 2 || strcmp(argv[argc - 2], "-c") == 0 ||
	    !auth_user_ok(user)) {
		fprintf(stderr, "usage: postern passwd -c FILE USER  (password on stdin; "
		    "USER is 1-%d of A-Z a-z 0-9 . _ @ -)\n", AUTH_MAX_USER);
		return 2;
	}
	if ((c = conf_load_report(conf_path_arg(argc, argv))) == NULL)
		return 1;
	if (passwd_read(pw, sizeof(pw)) == -1) {
		fprintf(stderr, "postern passwd: give the password on the first line of "
		    "stdin (1-%d bytes)\n", AUTH_MAX_PASSWORD);
		conf_unref(c);
		return 1;
	}
	hash = auth_hash(pw);
	memset(pw, 0, sizeof(pw));
	rc = db_open(c, 0) == -1 || db_user_set(user, hash) == -1;
	free(hash);
	db_close();
	conf_unref(c);
	if (rc)
		return 1;
	printf("password set for %s\n", user);
	return 0;
}
