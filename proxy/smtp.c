/* smtp.c -- placeholder until the proxy core lands. */
#include "conf.h"
#include "smtp.h"
#include "util.h"

int
smtp_serve(const char *path, struct conf *c)
{
	(void)path;
	conf_unref(c);
	log_err("serve: not implemented yet");
	return 1;
}
