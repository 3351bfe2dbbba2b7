/*
 * conf.h -- the configuration: INI file -> one immutable struct conf.
 *
 * A loaded conf is never modified. SIGHUP loads a new one and swaps the
 * global pointer (conf_current()/conf_swap()); holders keep theirs alive with
 * conf_ref()/conf_unref(), so a session finishes with the settings it began
 * with. Every key is listed in the table in conf.c with its type, default
 * and a line of help; unknown keys and bad values are errors naming file,
 * line and the fix.
 * Thread: conf_current()/conf_ref()/conf_unref() from any thread.
 */
#ifndef POSTERN_CONF_H
#define POSTERN_CONF_H

#include "lib/prefix.h"

#include <stddef.h>
#include <stdio.h>

struct relay_list;

#define CONF_MAX_LISTEN 8

enum conf_bare_lf { CONF_BARE_LF_REJECT, CONF_BARE_LF_NORMALIZE };
/* What a hard DMARC policy does: follow it, or only add to the score. */
enum conf_dmarc_act { CONF_DMARC_FOLLOW, CONF_DMARC_SCORE, CONF_DMARC_IGNORE };

/* The keys of a [domain NAME] section, in conf.c's table order; bit i of
 * conf_domain.set is key i. The lists are the domain's own allow and deny
 * lists (the global ones are in the database: `postern access`). */
enum conf_dom_key {
	CONF_DOM_TAG, CONF_DOM_QUARANTINE, CONF_DOM_REJECT, CONF_DOM_GREYLIST,
	CONF_DOM_ALLOW_SENDERS, CONF_DOM_DENY_SENDERS, CONF_DOM_ALLOW_CLIENTS,
	CONF_DOM_DENY_CLIENTS,
	CONF_DOM_NKEYS
};
#define CONF_DOM_LIST0	CONF_DOM_ALLOW_SENDERS	/* the first list key */
#define CONF_DOM_NLISTS	(CONF_DOM_NKEYS - CONF_DOM_LIST0)

/* One entry of a domain's list as conf_dom_list_norm() parsed it: its
 * text (lower-case; what a match reports) and, in a client list, its
 * address block. Entries that are not valid are not there. */
struct conf_dom_entry {
	char		*text;
	struct prefix	 cidr;
};

/*
 * One [domain NAME] section: the policy of recipients at NAME ("example.org"
 * that domain only, ".example.org" its subdomains; policy/dompol.h picks
 * the section). Every value is the effective one: what the section does
 * not set is filled in from the global key at load.
 */
struct conf_domain {
	char	*name;			/* lower-case */
	int	 line;			/* the first line of the section's keys */
	unsigned set;			/* 1u << enum conf_dom_key: set here */
	int	 key_line[CONF_DOM_NKEYS];
	double	 tag_score, quarantine_score, reject_score;
	int	 greylist_enabled;
	/* allow_senders, deny_senders (user@domain, @domain, domain),
	 * allow_clients, deny_clients (addresses, CIDR blocks): lower-case,
	 * "a, b, c", "" for none */
	char	*lists[CONF_DOM_NLISTS];
	/* the same lists parsed, so that a transaction matches without
	 * parsing text */
	struct conf_dom_entry *entries[CONF_DOM_NLISTS];
	int	 nentries[CONF_DOM_NLISTS];
};

/*
 * A set of domain policies (a config's sections, the dashboard's table)
 * as policy/dompol.c reads it on every transaction, built once with the
 * set (conf_dom_index_build): by name for conf_dom_index_find's binary
 * search, those with an allow list, and the highest reject_score one of
 * them sets. It points into the set; conf_dom_index_free frees only the
 * index.
 */
struct conf_dom_index {
	const struct conf_domain **byname;
	int	 n;
	const struct conf_domain **allow;
	int	 nallow;
	double	 reject_max;		/* -HUGE_VAL when none sets one */
};

struct conf {
	char	*path;

	/* [proxy] */
	char	*listen;		/* "addr:port[,addr:port...]" */
	char	*backend;		/* "addr:port" */
	char	*hostname;
	long long max_message_size;
	char	*tls_cert, *tls_key;
	char	*tls_protocols, *tls_ciphers, *tls_ciphersuites, *tls_groups;
	char	*tls_ocsp_file;		/* DER response to staple; "" = none */
	long long tls_ticket_rotation;	/* seconds; 0 = no session tickets */
	int	 threads;		/* I/O threads; 0 = one per core */
	int	 max_connections;
	int	 max_connections_per_ip;
	int	 max_recipients;
	int	 max_line_length;	/* command line incl. CRLF, RFC 5321 4.5.3.1.4 */
	int	 max_errors;
	int	 max_commands;		/* commands per session */
	int	 max_received;		/* loop guard */
	char	*spool_dir;
	long long spool_memory;		/* bytes kept in memory before a file */
	int	 bare_lf;		/* enum conf_bare_lf */
	long long timeout_command, timeout_data_init, timeout_data_block,
		  timeout_data_term, timeout_backend_connect, timeout_backend,
		  drain_timeout;
	long long timeout_data_min;	/* DATA phase: this + bytes / data_rate_min */
	long long data_rate_min;	/* bytes per second */
	long long session_max;		/* whole session, seconds */
	int	 xclient;		/* use XCLIENT/XFORWARD when offered */
	int	 proxy_protocol;	/* a PROXY header before SMTP (proxy/pxp.h) */
	char	*proxy_from;		/* who may send it: addresses, CIDR blocks */
	int	 backend_pool;		/* idle backend legs kept per loop */
	/* The relay guard (relay.h); NULL: no limit of ours. */
	struct relay_list *relay_domains, *relay_recipients;
	int	 sched_batch;		/* I/O threads as SCHED_BATCH */
	char	*user;			/* drop to this user after binding; "" = stay */

	/* [log] */
	int	 log_level;		/* enum log_level */
	int	 log_syslog;

	/* [policy] */
	int	 workers;
	long long inline_bytes;	/* content checks on the I/O loop up to this size */
	double	 tag_score, quarantine_score, reject_score;
	int	 temperror_tempfail;	/* SPF/DKIM/DMARC temperror at decision -> 4xx */

	/* [dns] */
	char	*dns_resolver;		/* "system" or host:port */
	long long dns_timeout_ms;
	int	 dns_session_budget;	/* DNS questions per session */
	int	 dns_cache_size;	/* entries */

	/* [spf] [dkim] [dmarc] */
	int	 spf_enabled, dkim_enabled, dmarc_enabled;
	double	 spf_fail_score, spf_softfail_score, spf_neutral_score,
		 spf_pass_score, spf_permerror_score;
	double	 dkim_fail_score, dkim_pass_score;
	double	 dmarc_fail_score;
	int	 dmarc_reject_action, dmarc_quarantine_action; /* conf_dmarc_act */

	/* [rbl] */
	char	*rbl_zones;		/* "zone[=filter]*weight,..." */
	char	*rhsbl_zones;		/* same syntax, for sender domain and HELO */
	long long rbl_health_interval;	/* seconds between list probes; 0 = off */

	/* [greylist] */
	int	 greylist_enabled;
	long long greylist_delay, greylist_retry_window, greylist_expire;
	int	 greylist_auto_allow;	/* passes before a client is allowlisted */
	int	 greylist_ipv4_prefix, greylist_ipv6_prefix;
	int	 greylist_skip_spf_pass, greylist_skip_dkim_pass;
	char	*greylist_skip_domains;	/* domains trusted when SPF/DKIM pass */
	int	 greylist_only_unverified;	/* spare verified, static-looking names */

	/* [rate] */
	int	 rate_connections_per_minute, rate_messages_per_minute;

	/* [db] */
	char	*db_path;
	char	*db_url;		/* PostgreSQL; "" = SQLite at db_path */
	long long db_verdict_max_age;	/* seconds */

	/* [rules] */
	char	*rules_file;		/* imported on first start when set */
	long long rules_match_limit, rules_depth_limit;

	/* [quarantine] */
	int	 quarantine_enabled;
	long long quarantine_max_age, quarantine_max_message, quarantine_max_total;
	char	*quarantine_digest;	/* "off", "hourly" or "daily HH:MM" */
	int	 digest_every;		/* seconds between rounds; 0 = off (conf_check) */
	int	 digest_at;		/* daily: seconds after local midnight */
	struct relay_list *quarantine_digest_domains;	/* recipients' domains; NULL = all */
	char	*quarantine_digest_from;	/* "" = postmaster@proxy.hostname */
	long long quarantine_digest_link_lifetime;
	int	 quarantine_digest_allow_link;	/* offer "release and allow sender" */

	/* [bayes] */
	int	 bayes_enabled;
	double	 bayes_spam_threshold, bayes_ham_threshold;
	double	 bayes_markov_spam_threshold;	/* once the Markov part weighs in */
	double	 bayes_spam_score, bayes_ham_score;
	int	 bayes_min_learned;
	int	 bayes_max_tokens;
	int	 bayes_max_used;
	double	 bayes_min_dev, bayes_s, bayes_x;
	int	 bayes_autolearn;
	double	 bayes_autolearn_spam_score, bayes_autolearn_ham_score;
	double	 bayes_autolearn_balance;
	double	 bayes_autolearn_until;
	int	 bayes_learn_on_release, bayes_learn_on_delete_spam;
	int	 bayes_markov, bayes_markov_bytes;
	int	 bayes_first_pass_bytes;
	double	 bayes_markov_weight;

	/* [web] */
	char	*web_listen;
	char	*web_api_token;
	char	*web_tls_cert, *web_tls_key;
	int	 web_max_conns, web_max_conns_per_ip;
	long long web_request_timeout;
	char	*web_trusted_proxies;
	char	*web_tls_priorities;	/* GnuTLS priority string */
	char	*web_public_url;	/* how recipients reach the dashboard */

	/* [domain NAME] sections, in file order, and their index */
	struct conf_domain *domains;
	int	 ndomains;
	struct conf_dom_index dom_index;
};

struct conf_err {
	int	 line;			/* 0 when not tied to a line */
	char	 msg[512];
};

/*
 * Load and check a file. Returns a new conf (refcount 1), or NULL with every
 * problem in *errs (xcalloc'd array of *nerrs, caller frees). Problems are
 * formatted "FILE:LINE: what is wrong; what to do".
 */
struct conf	*conf_load(const char *path, struct conf_err **errs, int *nerrs);
/* conf_load() that returns the conf even when it has problems, for
 * configtest to add what other modules find (conf_err_add) and list every
 * problem at once. Caller unrefs it and frees *errs. */
struct conf	*conf_load_all(const char *path, struct conf_err **errs, int *nerrs);
/* Append a problem found outside conf.c, formatted as conf_load's own:
 * "FILE:LINE: ..." (line 0: "FILE: ..."). */
void		 conf_err_add(struct conf_err **errs, int *nerrs, const struct conf *,
		    int line, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The line where key ("section.key") was first set; 0 when it kept its
 * default (or the conf was not read from a file). */
int		 conf_key_line(const struct conf *, const char *key);
/* Each line of a list key (repeated to continue the list) with its part
 * of the joined value, in file order. */
void		 conf_list_each(const struct conf *, const char *key,
		    void (*fn)(void *arg, int line, const char *part), void *arg);
/* The keys read only at start (listen addresses, threads, user, workers,
 * resolver, database, dashboard address and HTTPS key) whose value
 * differs between old and new: their names, comma-separated, in out; the
 * count. A reload logs them: they need a restart. */
int		 conf_restart_keys(const struct conf *old, const struct conf *new,
		    char *out, size_t outsz);
/* A command's config file: the argument after -c anywhere in argv, else
 * etc/postern.conf. */
const char	*conf_path_arg(int argc, char **argv);
/* conf_load() for commands: each problem printed on stderr, then NULL. */
struct conf	*conf_load_report(const char *path);
/* Built-in defaults, as if the file were empty. */
struct conf	*conf_defaults(void);
struct conf	*conf_ref(struct conf *);
void		 conf_unref(struct conf *);

/* The process-wide current config. conf_current() returns a new reference. */
struct conf	*conf_current(void);
void		 conf_swap(struct conf *);	/* takes ownership of one ref */

/* The name of a [domain] section's key ("policy.tag_score"). */
const char	*conf_dom_key_name(enum conf_dom_key);
/*
 * The checks of a [domain NAME] section, for domains defined elsewhere
 * (the dashboard's, policy/domtab.h), so both are held to one rule. Each
 * failing call writes "what; fix" into why.
 * conf_dom_new: an empty domain (nothing set, lists "") named name
 * (lower-cased), or NULL when name is not "example.org" / ".example.org";
 * free it with conf_dom_clear() and free().
 * conf_dom_set: key k from its text as the config file would have it,
 * marked set. 0 or -1.
 * conf_dom_list_norm: list key k checked entry by entry and rewritten
 * lower-case "a, b" (the bad entries too). 0 or -1.
 * conf_dom_rise: do d's thresholds, the global ones of c where d sets
 * none, rise (tag <= quarantine <= reject)? 0 or -1.
 * conf_dom_index_build: the index of the n policies at d (struct
 * conf_dom_index); conf_dom_index_find: the one named name (compared
 * case-insensitively), or NULL.
 */
struct conf_domain *conf_dom_new(const char *name, char *why, size_t whysz);
int		 conf_dom_set(struct conf_domain *, int k, const char *value, char *why,
		    size_t whysz);
int		 conf_dom_list_norm(struct conf_domain *, int k, char *why, size_t whysz);
int		 conf_dom_rise(const struct conf *, const struct conf_domain *, char *why,
		    size_t whysz);
void		 conf_dom_clear(struct conf_domain *);
void		 conf_dom_index_build(struct conf_dom_index *, const struct conf_domain *d,
		    int n);
const struct conf_domain *conf_dom_index_find(const struct conf_dom_index *,
		    const char *name);
void		 conf_dom_index_free(struct conf_dom_index *);

/* Print every key with default and help, for docs and `postern configtest -v`. */
void		 conf_dump_keys(FILE *);

/* quarantine.digest's value: "off" (every 0), "hourly" (3600, at 0) or
 * "daily HH:MM" (86400, at seconds after local midnight). 0 or -1. */
int	 conf_digest_parse(const char *, int *every, int *at);

/* proxy.tls_protocols ("TLSv1.2 TLSv1.3", comma or space separated) to an
 * OpenSSL version range; -1 when a name is unknown or the range has a hole. */
int	 conf_tls_range(const char *, int *min, int *max);

#endif
