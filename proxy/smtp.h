/*
 * smtp.h -- the SMTP proxy: listeners, sessions, the backend leg.
 */
#ifndef POSTERN_SMTP_H
#define POSTERN_SMTP_H

struct conf;

/* Run the gateway until SIGTERM drains it. Takes the conf reference.
 * Returns the process exit code. */
int	 smtp_serve(const char *conf_path, struct conf *);

#endif
