/*
 * conf.c -- see conf.h. The key table below is the single list of settings:
 * the parser, the defaults, configtest and conf_dump_keys() all read it.
 * INI syntax comes from inih (Debian's libinih); we feed it through our own
 * line reader so every key's line number is known for error messages.
 */
#include "lib/conf.h"
#include "lib/addr.h"
#include "lib/buf.h"
#include "lib/lim.h"
#include "lib/prefix.h"
#include "lib/relay.h"
#include "lib/sockaddr.h"
#include "lib/util.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <openssl/ssl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* T_LIST is a comma-separated string that may be given on several lines
 * (the key repeated): each adds to the list, so long lists of DNS zones
 * stay within inih's line length. T_DOMAINS and T_RCPTS are the relay
 * guard's lists (relay.h), loaded when the key is read: long ones go in a
 * file, whose bad entries are reported with its own name and line. */
enum conf_type { T_STR, T_INT, T_BOOL, T_SECS, T_MSECS, T_BYTES, T_DOUBLE,
		 T_ENUM, T_HOSTPORT, T_LOGLEVEL, T_LIST, T_DOMAINS, T_RCPTS };

struct conf_key {
	const char	*name;		/* "section.key" */
	enum conf_type	 type;
	size_t		 off;
	const char	*def;
	long long	 min, max;	/* T_INT, T_SECS, T_BYTES */
	const char	*choices;	/* T_ENUM: "a|b|c", index stored */
	const char	*help;
};

/* One line of a list key: its part of the joined value. */
struct conf_seg {
	int		 key;		/* index in keys[] */
	int		 line;
	char		*part;
};

/* Where each key came from (for problems found after parsing, and
 * cross-key checks), beside the conf it describes. */
struct conf_box {
	_Atomic int	 refs;
	int		*line;		/* per key: first line set, 0 = default */
	struct conf_seg	*seg;
	int		 nseg;
	struct conf	 c;
};

struct conf_parse {
	struct conf	*c;
	const char	*path;
	int		 line;
	struct conf_err	*errs;
	int		 nerrs;
	FILE		*fp;
};

static const struct conf_key	*conf_key_find(const char *, const char *);
static int	 conf_set(void *base, const struct conf_key *, const char *,
		    char *why, size_t whysz);
static int	 conf_dom_handler(struct conf_parse *, const char *section,
		    const char *name, const char *value);
static struct conf_domain *conf_dom_get(struct conf_parse *, const char *name);
static int	 conf_dom_name(const char *name, char *low, size_t lowsz);
static void	 conf_dom_init(struct conf_domain *, const char *low);
static void	 conf_dom_finish(struct conf_parse *, struct conf_domain *);
static void	 conf_dom_list(struct conf_parse *, struct conf_domain *, int key);
static void	 conf_dom_free(struct conf *);
static void	 conf_dom_entries_free(struct conf_domain *, int list);
static int	 conf_dom_index_cmp(const void *, const void *);
static int	 conf_handler(void *, const char *, const char *, const char *);
static char	*conf_reader(char *, int, void *);
static void	 conf_error(struct conf_parse *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	 conf_check(struct conf_parse *);
static void	 conf_check_cidrs(struct conf_parse *, const char *key, const char *list);
static void	 conf_check_digest(struct conf_parse *);
static struct conf *conf_alloc(void);
static struct conf_box *conf_box(const struct conf *);
static int	 conf_line(const struct conf *, const char *key);
static int	 conf_same(const struct conf *, const struct conf *, const struct conf_key *);
static void	 conf_err_push(struct conf_err **, int *, const char *path, int line,
		    const char *fmt, va_list) __attribute__((format(printf, 5, 0)));

/* The later of two keys' lines: where a pair's rule broke. */
#define CONF_LATER(a, b)	((a) > (b) ? (a) : (b))

#define O(f) offsetof(struct conf, f)
#define LL 0x7fffffffffffffffLL
static const struct conf_key keys[] = {
	{ "proxy.listen", T_LIST, O(listen), "127.0.0.1:2525", 0, 0, NULL,
	  "address:port to accept SMTP on; several comma-separated, [v6]:port for IPv6" },
	{ "proxy.backend", T_HOSTPORT, O(backend), "127.0.0.1:10025", 0, 0, NULL,
	  "address:port of the MTA behind Postern" },
	{ "proxy.hostname", T_STR, O(hostname), "localhost", 0, 0, NULL,
	  "name in the banner, the EHLO reply and Authentication-Results" },
	{ "proxy.max_message_size", T_BYTES, O(max_message_size), "26214400", 1024, LL, NULL,
	  "largest message accepted, in bytes (advertised with SIZE, RFC 1870)" },
	{ "proxy.tls_cert", T_STR, O(tls_cert), "", 0, 0, NULL,
	  "PEM certificate chain; STARTTLS is offered when this and tls_key are set" },
	{ "proxy.tls_key", T_STR, O(tls_key), "", 0, 0, NULL, "PEM private key" },
	{ "proxy.tls_protocols", T_STR, O(tls_protocols), "TLSv1.2 TLSv1.3", 0, 0, NULL,
	  "TLS versions offered, a range from TLSv1, TLSv1.1, TLSv1.2, TLSv1.3 (docs/tls.md)" },
	{ "proxy.tls_ciphers", T_STR, O(tls_ciphers),
	  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305", 0, 0, NULL,
	  "TLS 1.2 and older ciphers in OpenSSL syntax, in our order of preference (default: ECDHE with AEAD only)" },
	{ "proxy.tls_ciphersuites", T_STR, O(tls_ciphersuites),
	  "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256", 0, 0, NULL,
	  "TLS 1.3 cipher suites in OpenSSL syntax, in our order of preference" },
	{ "proxy.tls_groups", T_STR, O(tls_groups), "X25519:prime256v1:secp384r1", 0, 0, NULL,
	  "key exchange groups (curves) for ECDHE and TLS 1.3" },
	{ "proxy.tls_ticket_rotation", T_SECS, O(tls_ticket_rotation), "12h", 0, 302400, NULL,
	  "session tickets: a new key every this long, the previous one still accepted (0 = no tickets; at most 3.5d)" },
	{ "proxy.tls_ocsp_file", T_STR, O(tls_ocsp_file), "", 0, 0, NULL,
	  "DER OCSP response for proxy.tls_cert to staple (refresh it and send SIGHUP; docs/tls.md)" },
	{ "proxy.threads", T_INT, O(threads), "0", 0, 256, NULL,
	  "I/O threads, each with its own listener; 0 = one per core" },
	{ "proxy.max_connections", T_INT, O(max_connections), "10000", 1, 1000000, NULL,
	  "simultaneous client sessions in total (421 4.7.0 past it)" },
	{ "proxy.max_connections_per_ip", T_INT, O(max_connections_per_ip), "50", 1, 1000000, NULL,
	  "simultaneous sessions from one client address (421 4.7.0 past it)" },
	{ "proxy.max_recipients", T_INT, O(max_recipients), "100", 1, 100000, NULL,
	  "recipients per message (452 4.5.3 past it; RFC 5321 4.5.3.1.8 asks for at least 100)" },
	{ "proxy.max_line_length", T_INT, O(max_line_length), "2048", 512, 65536, NULL,
	  "longest command line in bytes incl. CRLF (500 5.5.2 past it; RFC 5321 minimum 512)" },
	{ "proxy.max_errors", T_INT, O(max_errors), "10", 1, 1000, NULL,
	  "erroneous commands in a session before 421 and close" },
	{ "proxy.max_commands", T_INT, O(max_commands), "10000", 10, 10000000, NULL,
	  "commands in one session before 421 and close" },
	{ "proxy.max_received", T_INT, O(max_received), "100", 1, 1000, NULL,
	  "Received headers past which a message is a loop (554 5.4.6)" },
	{ "proxy.spool_dir", T_STR, O(spool_dir), "var/spool", 0, 0, NULL,
	  "directory for messages larger than spool_memory" },
	{ "proxy.spool_memory", T_BYTES, O(spool_memory), "262144", 0, LL, NULL,
	  "bytes of a message kept in memory before it spills to spool_dir" },
	{ "proxy.bare_lf", T_ENUM, O(bare_lf), "reject", 0, 0, "reject|normalize",
	  "bare LF or CR in DATA: reject (550 5.5.2) or normalize to CRLF" },
	{ "proxy.timeout_command", T_SECS, O(timeout_command), "300", 1, LL, NULL,
	  "time for a whole command line, and for the wait before it (RFC 5321 4.5.3.2.7: 5 minutes)" },
	{ "proxy.timeout_data_init", T_SECS, O(timeout_data_init), "120", 1, LL, NULL,
	  "time for the first data after 354 (RFC 5321 4.5.3.2.4: 2 minutes)" },
	{ "proxy.timeout_data_block", T_SECS, O(timeout_data_block), "180", 1, LL, NULL,
	  "time between data blocks (RFC 5321 4.5.3.2.5: 3 minutes)" },
	{ "proxy.timeout_data_term", T_SECS, O(timeout_data_term), "600", 1, LL, NULL,
	  "time for the backend's reply to the final dot (RFC 5321 4.5.3.2.6: 10 minutes)" },
	{ "proxy.timeout_data_min", T_SECS, O(timeout_data_min), "300", 1, LL, NULL,
	  "the DATA phase must end within this plus the bytes received / data_rate_min (docs/proxy.md)" },
	{ "proxy.data_rate_min", T_BYTES, O(data_rate_min), "500", 1, LL, NULL,
	  "bytes per second of DATA that earn more time beyond timeout_data_min" },
	{ "proxy.session_max", T_SECS, O(session_max), "1h", 1, LL, NULL,
	  "longest SMTP session; past it 421 4.4.2 and close" },
	{ "proxy.timeout_backend_connect", T_SECS, O(timeout_backend_connect), "30", 1, LL, NULL,
	  "time to connect to the backend and read its banner" },
	{ "proxy.timeout_backend", T_SECS, O(timeout_backend), "300", 1, LL, NULL,
	  "time for any other backend reply (RFC 5321 4.5.3.2: 5 minutes)" },
	{ "proxy.drain_timeout", T_SECS, O(drain_timeout), "30", 0, LL, NULL,
	  "after SIGTERM, how long running sessions may go on before we exit" },
	{ "proxy.xclient", T_BOOL, O(xclient), "yes", 0, 0, NULL,
	  "introduce the real client with XCLIENT/XFORWARD when the backend offers it" },
	{ "proxy.proxy_protocol", T_BOOL, O(proxy_protocol), "no", 0, 0, NULL,
	  "every proxy.listen address expects a PROXY header (v1 or v2) from a balancer in proxy_from before SMTP and takes the client's address from it (SIGHUP applies it to new connections)" },
	{ "proxy.proxy_from", T_LIST, O(proxy_from), "", 0, 0, NULL,
	  "load balancers (addresses or CIDR blocks, comma-separated) allowed to send the PROXY header; with proxy_protocol = yes, connections from anywhere else are closed" },
	{ "proxy.relay_domains", T_DOMAINS, O(relay_domains), "", 0, 0, NULL,
	  "domains Postern takes RCPT for, comma-separated or file:PATH (.example.org: its subdomains); "
	  "others get 554 5.7.1 Relay access denied whatever the backend says; empty = the backend decides" },
	{ "proxy.relay_recipients", T_RCPTS, O(relay_recipients), "", 0, 0, NULL,
	  "addresses Postern takes RCPT for (user@example.org, or @example.org for a whole domain), "
	  "comma-separated or file:PATH; with relay_domains, a recipient must pass both; empty = no limit" },
	{ "proxy.backend_pool", T_INT, O(backend_pool), "16", 0, 32, NULL,
	  "idle backend connections kept per I/O thread for the next client session (0: a new one per session)" },
	{ "proxy.sched_batch", T_BOOL, O(sched_batch), "yes", 0, 0, NULL,
	  "I/O threads as SCHED_BATCH: a wakeup does not preempt the MTA on the core, so each one serves more sessions (less CPU per message)" },

	{ "proxy.user", T_STR, O(user), "", 0, 0, NULL,
	  "started as root: drop to this user once the ports are bound (db.path and spool_dir must be writable by it)" },

	{ "log.level", T_LOGLEVEL, O(log_level), "info", 0, 0, NULL,
	  "error, warning, info or debug" },
	{ "log.syslog", T_BOOL, O(log_syslog), "no", 0, 0, NULL,
	  "also log to syslog (facility mail)" },

	{ "policy.workers", T_INT, O(workers), "32", 1, 1024, NULL,
	  "policy worker threads (they block on DNS, SQLite, libopendkim)" },
	{ "policy.inline_bytes", T_BYTES, O(inline_bytes), "65536", 0, 262144, NULL,
	  "messages up to this many bytes get content rules and the classifier on the I/O thread, without a worker hand-off; larger ones go to a worker; 0: always a worker" },
	{ "policy.tag_score", T_DOUBLE, O(tag_score), "3", 0, 0, NULL,
	  "score at which mail is tagged (X-Spam-Flag: YES)" },
	{ "policy.quarantine_score", T_DOUBLE, O(quarantine_score), "6", 0, 0, NULL,
	  "score at which mail is quarantined" },
	{ "policy.reject_score", T_DOUBLE, O(reject_score), "10", 0, 0, NULL,
	  "score at which mail is rejected (550 5.7.1)" },
	{ "policy.temperror_tempfail", T_BOOL, O(temperror_tempfail), "no", 0, 0, NULL,
	  "answer 451 when a DMARC-relevant check could not decide (temperror)" },

	{ "dns.resolver", T_STR, O(dns_resolver), "system", 0, 0, NULL,
	  "'system' (resolv.conf) or host:port of the resolver to forward to" },
	{ "dns.timeout", T_MSECS, O(dns_timeout_ms), "5000", 10, LL, NULL,
	  "milliseconds one DNS question may take before temperror" },
	{ "dns.session_budget", T_INT, O(dns_session_budget), "200", 1, 100000, NULL,
	  "DNS questions one SMTP session may ask in all" },
	{ "dns.cache_size", T_INT, O(dns_cache_size), "100000", 0, 100000000, NULL,
	  "cached DNS answers (TTLs honoured)" },

	{ "spf.enabled", T_BOOL, O(spf_enabled), "yes", 0, 0, NULL, "check SPF (RFC 7208)" },
	{ "spf.pass_score", T_DOUBLE, O(spf_pass_score), "-0.5", 0, 0, NULL, "score for spf=pass" },
	{ "spf.neutral_score", T_DOUBLE, O(spf_neutral_score), "0", 0, 0, NULL, "score for spf=neutral" },
	{ "spf.softfail_score", T_DOUBLE, O(spf_softfail_score), "2", 0, 0, NULL, "score for spf=softfail" },
	{ "spf.fail_score", T_DOUBLE, O(spf_fail_score), "5", 0, 0, NULL, "score for spf=fail" },
	{ "spf.permerror_score", T_DOUBLE, O(spf_permerror_score), "1", 0, 0, NULL, "score for spf=permerror" },
	{ "dkim.enabled", T_BOOL, O(dkim_enabled), "yes", 0, 0, NULL, "verify DKIM signatures (RFC 6376)" },
	{ "dkim.pass_score", T_DOUBLE, O(dkim_pass_score), "-0.5", 0, 0, NULL, "score when a signature verifies" },
	{ "dkim.fail_score", T_DOUBLE, O(dkim_fail_score), "2", 0, 0, NULL, "score when signatures exist and none verifies" },
	{ "dmarc.enabled", T_BOOL, O(dmarc_enabled), "yes", 0, 0, NULL, "evaluate DMARC (RFC 7489)" },
	{ "dmarc.fail_score", T_DOUBLE, O(dmarc_fail_score), "3", 0, 0, NULL, "score for dmarc=fail" },
	{ "dmarc.reject_action", T_ENUM, O(dmarc_reject_action), "follow", 0, 0, "follow|score|ignore",
	  "p=reject on a failing message: follow (reject), score only, or ignore" },
	{ "dmarc.quarantine_action", T_ENUM, O(dmarc_quarantine_action), "follow", 0, 0, "follow|score|ignore",
	  "p=quarantine on a failing message: follow (quarantine), score only, or ignore" },

	{ "rbl.zones", T_LIST, O(rbl_zones), "", 0, 0, NULL,
	  "DNS lists for the client IP: zone[=127.0.0.X or =127.0.0.[2..11]]*weight, comma-separated (repeat the key to continue the list); negative weight = allow list" },
	{ "rbl.rhsbl_zones", T_LIST, O(rhsbl_zones), "", 0, 0, NULL,
	  "domain lists (RHSBL) for the sender domain and HELO name, same syntax" },
	{ "rbl.health_interval", T_SECS, O(rbl_health_interval), "5m", 0, LL, NULL,
	  "probe every list with its RFC 5782 test entries this often; a list that answers them wrong is skipped until it answers right (0 = off)" },

	{ "greylist.enabled", T_BOOL, O(greylist_enabled), "yes", 0, 0, NULL, "greylist unknown triplets" },
	{ "greylist.delay", T_SECS, O(greylist_delay), "300", 0, LL, NULL,
	  "seconds before a retry is accepted" },
	{ "greylist.retry_window", T_SECS, O(greylist_retry_window), "2d", 60, LL, NULL,
	  "how long after the first attempt a retry still counts" },
	{ "greylist.expire", T_SECS, O(greylist_expire), "35d", 60, LL, NULL,
	  "entries unused this long are removed" },
	{ "greylist.auto_allow", T_INT, O(greylist_auto_allow), "5", 0, 1000000, NULL,
	  "passes after which a client network is allowlisted (0 = never)" },
	{ "greylist.ipv4_prefix", T_INT, O(greylist_ipv4_prefix), "24", 8, 32, NULL,
	  "IPv4 client network size for the triplet" },
	{ "greylist.ipv6_prefix", T_INT, O(greylist_ipv6_prefix), "64", 16, 128, NULL,
	  "IPv6 client network size for the triplet" },
	{ "greylist.skip_spf_pass", T_BOOL, O(greylist_skip_spf_pass), "yes", 0, 0, NULL,
	  "do not greylist SPF-pass senders from greylist.skip_domains" },
	{ "greylist.skip_dkim_pass", T_BOOL, O(greylist_skip_dkim_pass), "yes", 0, 0, NULL,
	  "do not greylist aligned-DKIM senders from greylist.skip_domains" },
	{ "greylist.skip_domains", T_LIST, O(greylist_skip_domains), "", 0, 0, NULL,
	  "comma-separated sender domains trusted when authenticated" },
	{ "greylist.only_unverified", T_BOOL, O(greylist_only_unverified), "no", 0, 0, NULL,
	  "greylist only clients without forward-confirmed reverse DNS or with a dynamic-looking name" },

	{ "rate.connections_per_minute", T_INT, O(rate_connections_per_minute), "0", 0, 100000000, NULL,
	  "connections per minute from one client IP (0 = unlimited; 421 4.7.0 past it)" },
	{ "rate.messages_per_minute", T_INT, O(rate_messages_per_minute), "0", 0, 100000000, NULL,
	  "messages per minute from one client IP (0 = unlimited; 450 4.7.1 past it)" },

	{ "db.path", T_STR, O(db_path), "var/postern.db", 0, 0, NULL, "SQLite database file" },
	{ "db.url", T_STR, O(db_url), "", 0, 0, NULL,
	  "PostgreSQL connection URL (postgresql://...) or libpq key=value string; empty = SQLite at db.path" },
	{ "db.verdict_max_age", T_SECS, O(db_verdict_max_age), "30d", 60, LL, NULL,
	  "verdict log rows older than this are pruned" },

	{ "rules.file", T_STR, O(rules_file), "", 0, 0, NULL,
	  "rule file imported into a never-written rule table, at start and on SIGHUP" },
	{ "rules.match_limit", T_INT, O(rules_match_limit), "1000000", 1000, LL, NULL,
	  "PCRE2 match limit per rule and message part" },
	{ "rules.depth_limit", T_INT, O(rules_depth_limit), "10000", 100, LL, NULL,
	  "PCRE2 depth limit per rule and message part" },

	{ "quarantine.enabled", T_BOOL, O(quarantine_enabled), "yes", 0, 0, NULL,
	  "keep quarantined mail (else quarantine verdicts reject)" },
	{ "quarantine.max_age", T_SECS, O(quarantine_max_age), "30d", 60, LL, NULL,
	  "quarantined messages older than this are deleted" },
	{ "quarantine.max_message", T_BYTES, O(quarantine_max_message), "26214400", 1024, LL, NULL,
	  "largest message kept in quarantine" },
	{ "quarantine.max_total", T_BYTES, O(quarantine_max_total), "1G", 1024, LL, NULL,
	  "total quarantine size; past it quarantine verdicts answer 452 (tempfail)" },
	{ "quarantine.digest", T_STR, O(quarantine_digest), "off", 0, 0, NULL,
	  "when recipients get a digest of their newly quarantined mail: off, hourly, or daily HH:MM (local time); needs web.public_url" },
	{ "quarantine.digest_domains", T_DOMAINS, O(quarantine_digest_domains), "", 0, 0, NULL,
	  "only recipients in these domains (comma-separated; .example.org: its subdomains) get digests; empty = every recipient" },
	{ "quarantine.digest_from", T_STR, O(quarantine_digest_from), "", 0, 0, NULL,
	  "sender address of digests (header and envelope); empty = postmaster@ proxy.hostname" },
	{ "quarantine.digest_link_lifetime", T_SECS, O(quarantine_digest_link_lifetime), "3d", 300, LL, NULL,
	  "how long the release and delete links of a digest work; at most quarantine.max_age (the default gives way to a shorter one)" },
	{ "quarantine.digest_allow_link", T_BOOL, O(quarantine_digest_allow_link), "yes", 0, 0, NULL,
	  "digests offer 'release and always allow this sender', which adds the sender to the site-wide allow list" },

	{ "bayes.enabled", T_BOOL, O(bayes_enabled), "yes", 0, 0, NULL,
	  "run the statistical classifier at DATA (it scores nothing until trained)" },
	{ "bayes.spam_threshold", T_DOUBLE, O(bayes_spam_threshold), "0.85", 0, 0, NULL,
	  "spam probability at or above which the message counts as spam while the words decide alone (the Markov part off, untrained or weight 0)" },
	{ "bayes.markov_spam_threshold", T_DOUBLE, O(bayes_markov_spam_threshold), "0.4", 0, 0, NULL,
	  "spam probability at or above which the message counts as spam once the Markov part weighs in (tuned with it: below 0.5, docs/bayes.md)" },
	{ "bayes.ham_threshold", T_DOUBLE, O(bayes_ham_threshold), "0.01", 0, 0, NULL,
	  "spam probability at or below which the message counts as ham" },
	{ "bayes.spam_score", T_DOUBLE, O(bayes_spam_score), "5", 0, 0, NULL,
	  "score added when the classifier says spam" },
	{ "bayes.ham_score", T_DOUBLE, O(bayes_ham_score), "-3", 0, 0, NULL,
	  "score added when the classifier says ham (negative)" },
	{ "bayes.min_learned", T_INT, O(bayes_min_learned), "200", 1, 100000000, NULL,
	  "messages of each class to learn before the classifier scores anything" },
	{ "bayes.max_tokens", T_INT, O(bayes_max_tokens), "2000000", 1000, 1000000000, NULL,
	  "tokens (words and Markov grams) kept; past it the least recently learned ones are forgotten (16-32 bytes each in memory)" },
	{ "bayes.max_used", T_INT, O(bayes_max_used), "300", 1, 100000, NULL,
	  "most tokens of a message that weigh in (the strongest ones)" },
	{ "bayes.min_dev", T_DOUBLE, O(bayes_min_dev), "0.1", 0, 0, NULL,
	  "a token weighs in only when its probability is at least this far from 0.5" },
	{ "bayes.s", T_DOUBLE, O(bayes_s), "0.45", 0, 0, NULL,
	  "Robinson's s: how strongly a rarely seen token leans to bayes.x" },
	{ "bayes.x", T_DOUBLE, O(bayes_x), "0.5", 0, 0, NULL,
	  "Robinson's x: the probability assumed for a token seen once" },
	{ "bayes.autolearn", T_BOOL, O(bayes_autolearn), "yes", 0, 0, NULL,
	  "learn from messages the other checks scored confidently" },
	{ "bayes.autolearn_spam_score", T_DOUBLE, O(bayes_autolearn_spam_score), "10", 0, 0, NULL,
	  "score without the classifier at or above which a message is learned as spam" },
	{ "bayes.autolearn_ham_score", T_DOUBLE, O(bayes_autolearn_ham_score), "-1", 0, 0, NULL,
	  "score without the classifier at or below which a message is learned as ham" },
	{ "bayes.autolearn_balance", T_DOUBLE, O(bayes_autolearn_balance), "3", 0, 0, NULL,
	  "autolearn skips a class that has this many times the other's learned messages (past min_learned)" },
	{ "bayes.autolearn_until", T_DOUBLE, O(bayes_autolearn_until), "0.95", 0, 0, NULL,
	  "autolearn skips a message the classifier already gives at least this probability of the class it would learn (1: learn every one)" },
	{ "bayes.learn_on_release", T_BOOL, O(bayes_learn_on_release), "yes", 0, 0, NULL,
	  "a message released from the quarantine is learned as ham" },
	{ "bayes.learn_on_delete_spam", T_BOOL, O(bayes_learn_on_delete_spam), "yes", 0, 0, NULL,
	  "a message deleted from the quarantine as spam is learned as spam" },
	{ "bayes.markov", T_BOOL, O(bayes_markov), "yes", 0, 0, NULL,
	  "learn and score the character-level Markov model beside the words (docs/bayes.md; more spam caught, about twice the classifier's CPU: no where throughput matters more)" },
	{ "bayes.markov_bytes", T_INT, O(bayes_markov_bytes), "3000", 16, 65536, NULL,
	  "bytes of normalised text (headers, at most half of it, then body) the Markov model reads per message" },
	{ "bayes.first_pass_bytes", T_INT, O(bayes_first_pass_bytes), "1500", 0, 1000000000, NULL,
	  "body text whose words a first pass reads (with half the Markov part's text); a verdict it is sure of stands, else all is read (0: always all)" },
	{ "bayes.markov_weight", T_DOUBLE, O(bayes_markov_weight), "5", 0, 0, NULL,
	  "weight of the Markov model's mean log ratio against the words' chi-square S - H (0: shown, not weighed)" },

	{ "web.listen", T_STR, O(web_listen), "127.0.0.1:8480", 0, 0, NULL,
	  "address:port of the dashboard and API; empty = off" },
	{ "web.api_token", T_STR, O(web_api_token), "", 0, 0, NULL,
	  "bearer token for scripts (Authorization: Bearer ...)" },
	{ "web.tls_cert", T_STR, O(web_tls_cert), "", 0, 0, NULL, "PEM certificate: serve HTTPS" },
	{ "web.tls_key", T_STR, O(web_tls_key), "", 0, 0, NULL, "PEM private key for web.tls_cert" },
	{ "web.max_conns", T_INT, O(web_max_conns), "512", 1, 100000, NULL,
	  "simultaneous dashboard connections in all (read at start)" },
	{ "web.max_conns_per_ip", T_INT, O(web_max_conns_per_ip), "16", 1, 100000, NULL,
	  "simultaneous dashboard connections from one peer address; past it refused (read at start)" },
	{ "web.request_timeout", T_SECS, O(web_request_timeout), "10", 1, 3600, NULL,
	  "time for a whole request, headers and body, from the connection or the previous answer; past it closed (read at start)" },
	{ "web.trusted_proxies", T_LIST, O(web_trusted_proxies), "", 0, 0, NULL,
	  "reverse proxies (addresses or CIDR blocks) whose X-Forwarded-For names the client; empty = the header is ignored" },
	{ "web.tls_priorities", T_STR, O(web_tls_priorities),
	  "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:"
	  "-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:"
	  "-KX-ALL:+ECDHE-RSA:+ECDHE-ECDSA:%SERVER_PRECEDENCE",
	  0, 0, NULL,
	  "GnuTLS priority string of the dashboard's HTTPS (default: TLS 1.2+, ECDHE with AEAD only, our order)" },
	{ "web.public_url", T_STR, O(web_public_url), "", 0, 0, NULL,
	  "the dashboard's address as mail recipients reach it, e.g. https://mx.example.org:8480, for the links in digests" },
};
#undef O

/* What a [domain NAME] section takes, in enum conf_dom_key's order: the
 * global keys it overrides for recipients of that domain (no default:
 * an unset one is the global value), then the domain's own lists. */
#define D(f) offsetof(struct conf_domain, f)
static const struct conf_key dom_keys[CONF_DOM_NKEYS] = {
	{ "policy.tag_score", T_DOUBLE, D(tag_score), NULL, 0, 0, NULL,
	  "score at which this domain's mail is tagged" },
	{ "policy.quarantine_score", T_DOUBLE, D(quarantine_score), NULL, 0, 0, NULL,
	  "score at which this domain's mail is quarantined" },
	{ "policy.reject_score", T_DOUBLE, D(reject_score), NULL, 0, 0, NULL,
	  "score at which this domain's mail is rejected" },
	{ "greylist.enabled", T_BOOL, D(greylist_enabled), NULL, 0, 0, NULL,
	  "greylist this domain's recipients" },
	{ "access.allow_senders", T_LIST, D(lists[0]), NULL, 0, 0, NULL,
	  "senders (user@domain, @domain, domain) whose mail to this domain is accepted" },
	{ "access.deny_senders", T_LIST, D(lists[1]), NULL, 0, 0, NULL,
	  "senders refused for this domain's recipients (550 5.7.1 at RCPT)" },
	{ "access.allow_clients", T_LIST, D(lists[2]), NULL, 0, 0, NULL,
	  "client addresses or CIDR blocks whose mail to this domain is accepted" },
	{ "access.deny_clients", T_LIST, D(lists[3]), NULL, 0, 0, NULL,
	  "client addresses or CIDR blocks refused for this domain's recipients" },
};
#undef D

/* Read once at start (sockets bound, threads started, resolver and
 * database opened, HTTPS key loaded): a reload says a restart is needed.
 * Not proxy.proxy_protocol nor proxy.proxy_from: each accepted connection
 * reads them from the current conf, so a reload applies them to the next
 * connection (sessions already running keep theirs). */
static const char *restart_keys[] = {
	"proxy.listen", "proxy.threads", "proxy.user", "policy.workers",
	"dns.resolver", "dns.timeout", "dns.cache_size", "db.path", "db.url",
	"web.listen", "web.tls_cert", "web.tls_key", "web.tls_priorities", "web.max_conns",
	"web.max_conns_per_ip", "web.request_timeout",
};

static struct conf	*conf_global;
static pthread_mutex_t	 conf_mtx = PTHREAD_MUTEX_INITIALIZER;

static const struct conf_key *
conf_key_find(const char *section, const char *name)
{
	char full[128];

	snprintf(full, sizeof(full), "%s.%s", section, name);
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (strcasecmp(keys[i].name, full) == 0)
			return &keys[i];
	return NULL;
}

static int
conf_bool(const char *v, int *out)
{
	if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1") ||
	    !strcasecmp(v, "on"))
		*out = 1;
	else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") ||
	    !strcmp(v, "0") || !strcasecmp(v, "off"))
		*out = 0;
	else
		return -1;
	return 0;
}

static int
conf_int(const char *v, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(v, &end, 10);
	return (errno || end == v || *end != '\0') ? -1 : 0;
}

static int
conf_enum(const char *choices, const char *v, int *out)
{
	const char *p = choices;
	size_t vl = strlen(v);

	for (int i = 0; *p; i++) {
		const char *bar = strchr(p, '|');
		size_t l = bar ? (size_t)(bar - p) : strlen(p);
		if (l == vl && strncasecmp(p, v, l) == 0) {
			*out = i;
			return 0;
		}
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	return -1;
}

/* Store v into base (a struct conf, or a struct conf_domain for a
 * dom_keys entry) per k; on error write a "what; fix" sentence into why. */
static int
conf_set(void *base, const struct conf_key *k, const char *v, char *why,
    size_t whysz)
{
	void *dst = (char *)base + k->off;
	long long n;
	char host[256];
	int port, rc;

	switch (k->type) {
	case T_STR:
	case T_LIST:
		free(*(char **)dst);
		*(char **)dst = xstrdup(v);
		return 0;
	case T_DOMAINS:
	case T_RCPTS: {
		struct relay_list *l;
		if (relay_load(v, k->type == T_DOMAINS ? RELAY_DOMAINS : RELAY_RECIPIENTS,
		    &l, why, whysz) == -1)
			return -1;
		relay_free(*(struct relay_list **)dst);
		*(struct relay_list **)dst = l;
		return 0;
	}
	case T_HOSTPORT:
		if (sockaddr_split(v, host, sizeof(host), &port) == -1 || port == 0) {
			snprintf(why, whysz, "'%s' is not address:port; write e.g. 127.0.0.1:10025 or [::1]:10025", v);
			return -1;
		}
		free(*(char **)dst);
		*(char **)dst = xstrdup(v);
		return 0;
	case T_BOOL:
		if (conf_bool(v, dst) == -1) {
			snprintf(why, whysz, "'%s' is not a yes/no value; write yes or no", v);
			return -1;
		}
		return 0;
	case T_ENUM:
		if (conf_enum(k->choices, v, dst) == -1) {
			snprintf(why, whysz, "'%s' is not one of %s", v, k->choices);
			return -1;
		}
		return 0;
	case T_LOGLEVEL: {
		enum log_level l;
		if (log_level_parse(v, &l) == -1) {
			snprintf(why, whysz, "'%s' is not a log level; write error, warning, info or debug", v);
			return -1;
		}
		*(int *)dst = (int)l;
		return 0;
	}
	case T_DOUBLE: {
		char *end;
		double d = strtod(v, &end);
		/* "nan" would make every score comparison false. */
		if (end == v || *end != '\0' || !isfinite(d)) {
			snprintf(why, whysz, "'%s' is not a number; write e.g. 5 or -1.5", v);
			return -1;
		}
		*(double *)dst = d;
		return 0;
	}
	case T_INT:
	case T_SECS:
	case T_MSECS:
	case T_BYTES:
		if (k->type == T_SECS)
			rc = parse_seconds(v, &n);
		else if (k->type == T_BYTES)
			rc = parse_bytes(v, &n);
		else
			rc = conf_int(v, &n);
		if (rc == -1) {
			snprintf(why, whysz, "'%s' is not %s", v,
			    k->type == T_SECS ? "a duration; write seconds or e.g. 5m, 2h, 35d" :
			    k->type == T_BYTES ? "a size; write bytes or e.g. 512k, 25M" :
			    "a whole number");
			return -1;
		}
		if (n < k->min || n > k->max) {
			snprintf(why, whysz, "%lld is out of range; use %lld to %lld",
			    n, k->min, k->max);
			return -1;
		}
		if (k->type == T_INT)
			*(int *)dst = (int)n;
		else
			*(long long *)dst = n;
		return 0;
	}
	fatalx("conf_set: type %d", k->type);
}

static void
conf_error(struct conf_parse *p, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_err_push(&p->errs, &p->nerrs, p->path, line, fmt, ap);
	va_end(ap);
}

static void
conf_err_push(struct conf_err **errs, int *nerrs, const char *path, int line,
    const char *fmt, va_list ap)
{
	struct conf_err *e;
	char msg[400];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	*errs = xrealloc(*errs, sizeof(**errs) * (size_t)(*nerrs + 1));
	e = &(*errs)[(*nerrs)++];
	e->line = line;
	if (line > 0)
		snprintf(e->msg, sizeof(e->msg), "%s:%d: %s", path, line, msg);
	else
		snprintf(e->msg, sizeof(e->msg), "%s: %s", path, msg);
}

void
conf_err_add(struct conf_err **errs, int *nerrs, const struct conf *c, int line,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_err_push(errs, nerrs, c->path, line, fmt, ap);
	va_end(ap);
}

static char *
conf_reader(char *buf, int size, void *arg)
{
	struct conf_parse *p = arg;
	char *r = fgets(buf, size, p->fp);
	size_t n;
	int c;

	if (r == NULL)
		return NULL;
	p->line++;
	n = strlen(r);
	if (n + 1 < (size_t)size || r[n - 1] == '\n')
		return r;
	/* Longer than inih's line buffer: the rest would come back as a line
	 * of its own (a commented-out key could come alive). Refuse the line
	 * and hand inih an empty one. */
	while ((c = getc(p->fp)) != EOF && c != '\n')
		;
	conf_error(p, p->line, "line longer than %d bytes; shorten it (a list such "
	    "as rbl.zones can be split: repeat the key, each line adds to it)", size - 3);
	r[0] = '\0';
	return r;
}

static int
conf_handler(void *arg, const char *section, const char *name, const char *value)
{
	struct conf_parse *p = arg;
	const struct conf_key *k;
	char why[300];

	if (strncasecmp(section, "domain", 6) == 0 &&
	    (section[6] == '\0' || section[6] == ' ' || section[6] == '\t'))
		return conf_dom_handler(p, section + 6, name, value);
	if ((k = conf_key_find(section, name)) == NULL) {
		conf_error(p, p->line, "unknown key '%s' in section [%s]; "
		    "see etc/postern.conf for the valid keys", name, section);
		return 1;
	}
	struct conf_box *b = conf_box(p->c);
	int *seen = &b->line[k - keys];

	if (k->type == T_LIST) {
		b->seg = xrealloc(b->seg, sizeof(*b->seg) * (size_t)(b->nseg + 1));
		b->seg[b->nseg++] = (struct conf_seg){ (int)(k - keys), p->line,
		    xstrdup(value) };
	}
	if (*seen && k->type == T_LIST) {
		char **dst = (char **)((char *)p->c + k->off);
		char *joined = xasprintf("%s%s%s", *dst, **dst && *value ? "," : "", value);
		free(*dst);
		*dst = joined;
		return 1;
	}
	if (*seen)
		conf_error(p, p->line, "'%s' is set twice; keep one (line %d)", k->name, *seen);
	else
		*seen = p->line;
	if (conf_set(p->c, k, value, why, sizeof(why)) == -1)
		conf_error(p, p->line, "%s: %s", k->name, why);
	return 1;
}

/* ------------------------------------------------- [domain NAME] sections */

const char *
conf_dom_key_name(enum conf_dom_key k)
{
	assert((unsigned)k < CONF_DOM_NKEYS);
	return dom_keys[k].name;
}

/* name lower-cased into low (lowsz > LIM_PATH + 1; a longer name is cut
 * there and then refused): 0 when it is "example.org" or ".example.org", a
 * domain RCPT paths can hold, else -1. The config's [domain NAME]
 * sections and the dashboard's domains (conf_dom_new) both ask here. */
static int
conf_dom_name(const char *name, char *low, size_t lowsz)
{
	char buf[LIM_PATH + 16];

	assert(lowsz > LIM_PATH + 1);
	snprintf(low, lowsz, "%s", name);
	for (char *q = low; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	if (*low == '\0' || strlen(low) > LIM_PATH)
		return -1;
	snprintf(buf, sizeof(buf), "x@%s", low[0] == '.' ? low + 1 : low);
	return addr_mailbox_ok(buf, strlen(buf), 1) == 0 ? 0 : -1;
}

/* d empty (nothing set, lists ""), named low. */
static void
conf_dom_init(struct conf_domain *d, const char *low)
{
	memset(d, 0, sizeof(*d));
	d->name = xstrdup(low);
	for (int i = 0; i < CONF_DOM_NLISTS; i++)
		d->lists[i] = xstrdup("");
}

/* The section called name (lower-case), added at this line if new. */
static struct conf_domain *
conf_dom_get(struct conf_parse *p, const char *name)
{
	struct conf *c = p->c;
	struct conf_domain *d;

	for (int i = 0; i < c->ndomains; i++)
		if (strcmp(c->domains[i].name, name) == 0)
			return &c->domains[i];
	c->domains = xrealloc(c->domains, sizeof(*d) * (size_t)(c->ndomains + 1));
	d = &c->domains[c->ndomains++];
	conf_dom_init(d, name);
	d->line = p->line;
	return d;
}

/* One key of a [domain NAME] section; rest is what follows "domain". */
static int
conf_dom_handler(struct conf_parse *p, const char *rest, const char *key,
    const char *value)
{
	char name[LIM_PATH + 8], why[300];
	struct conf_domain *d;
	int k;

	rest += strspn(rest, " \t");
	if (conf_dom_name(rest, name, sizeof(name)) == -1) {
		conf_error(p, p->line, "[domain%s%s] does not name a domain; write e.g. "
		    "[domain example.org], or [domain .example.org] for its subdomains",
		    *name ? " " : "", name);
		return 1;
	}
	d = conf_dom_get(p, name);
	for (k = 0; k < CONF_DOM_NKEYS && strcasecmp(dom_keys[k].name, key) != 0; k++)
		;
	if (k == CONF_DOM_NKEYS) {
		conf_error(p, p->line, "unknown key '%s' in section [domain %s]; a domain "
		    "section takes policy.tag_score, policy.quarantine_score, "
		    "policy.reject_score, greylist.enabled, access.allow_senders, "
		    "access.deny_senders, access.allow_clients, access.deny_clients", key, name);
		return 1;
	}
	if ((d->set & 1u << k) && dom_keys[k].type == T_LIST) {
		char **dst = &d->lists[k - CONF_DOM_LIST0];
		char *joined = xasprintf("%s%s%s", *dst, **dst && *value ? "," : "", value);
		free(*dst);
		*dst = joined;
		return 1;
	}
	if (d->set & 1u << k) {
		conf_error(p, p->line, "'%s' is set twice in [domain %s]; keep one (line %d)",
		    dom_keys[k].name, name, d->key_line[k]);
		return 1;
	}
	d->set |= 1u << k;
	d->key_line[k] = p->line;
	if (conf_set(d, &dom_keys[k], value, why, sizeof(why)) == -1) {
		conf_error(p, p->line, "[domain %s] %s: %s", name, dom_keys[k].name, why);
		d->set &= ~(1u << k);	/* one problem, not a second one from it */
	}
	return 1;
}

/* A list key of d, checked entry by entry and written back lower-case as
 * "a, b, c", so that two domains with the same entries compare equal. */
static void
conf_dom_list(struct conf_parse *p, struct conf_domain *d, int k)
{
	char why[400];

	if (conf_dom_list_norm(d, k, why, sizeof(why)) == -1)
		conf_error(p, d->key_line[k], "%s", why);
}

/* The valid entries go to d->entries as well (struct conf_dom_entry). */
int
conf_dom_list_norm(struct conf_domain *d, int k, char *why, size_t whysz)
{
	int l = k - CONF_DOM_LIST0;
	char **list = &d->lists[l], *copy = xstrdup(*list), *save = NULL;
	int clients = k == CONF_DOM_ALLOW_CLIENTS || k == CONF_DOM_DENY_CLIENTS, rc = 0, ok;
	char buf[LIM_PATH + 4];
	struct buf out = { 0 };
	struct prefix cidr;

	assert(k >= CONF_DOM_LIST0 && k < CONF_DOM_NKEYS);
	conf_dom_entries_free(d, l);
	for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
		for (char *q = t; *q; q++)
			*q = (char)tolower((unsigned char)*q);
		snprintf(buf, sizeof(buf), "%s%s", t[0] == '@' ? "x" :
		    strchr(t, '@') ? "" : "x@", t);
		memset(&cidr, 0, sizeof(cidr));
		ok = clients ? prefix_parse(t, &cidr) == 0 :
		    addr_mailbox_ok(buf, strlen(buf), 1) == 0 && strlen(t) <= LIM_PATH;
		if (ok) {	/* room doubles at each power of two */
			int n = d->nentries[l];
			if ((n & (n - 1)) == 0)
				d->entries[l] = xrealloc(d->entries[l],
				    sizeof(*d->entries[l]) * (size_t)(n ? 2 * n : 1));
			d->entries[l][d->nentries[l]++] = (struct conf_dom_entry){ xstrdup(t),
			    cidr };
		}
		if (rc == 0 && !ok) {
			snprintf(why, whysz, "[domain %s] %s: '%.*s' is not %s", d->name,
			    dom_keys[k].name, LIM_PATH, t, clients ? "an IP address or CIDR "
			    "block; write e.g. 192.0.2.7 or 192.0.2.0/24" : "a sender; write "
			    "user@example.net, @example.net (that domain) or example.net (and "
			    "its subdomains)");
			rc = -1;
		}
		buf_printf(&out, "%s%s", out.len ? ", " : "", t);
	}
	free(copy);
	free(*list);
	*list = out.len ? buf_take(&out) : xstrdup("");
	buf_free(&out);
	return rc;
}

int
conf_dom_rise(const struct conf *c, const struct conf_domain *d, char *why, size_t whysz)
{
	double t = d->set & 1u << CONF_DOM_TAG ? d->tag_score : c->tag_score;
	double q = d->set & 1u << CONF_DOM_QUARANTINE ? d->quarantine_score : c->quarantine_score;
	double r = d->set & 1u << CONF_DOM_REJECT ? d->reject_score : c->reject_score;

	if (t <= q && q <= r)
		return 0;
	snprintf(why, whysz, "[domain %s] thresholds tag %g, quarantine %g, reject %g "
	    "(with the global ones it does not set) do not rise; make policy.tag_score "
	    "<= policy.quarantine_score <= policy.reject_score", d->name, t, q, r);
	return -1;
}

int
conf_dom_set(struct conf_domain *d, int k, const char *value, char *why, size_t whysz)
{
	assert(k >= 0 && k < CONF_DOM_NKEYS);
	if (conf_set(d, &dom_keys[k], value, why, whysz) == -1)
		return -1;
	d->set |= 1u << k;
	return 0;
}

struct conf_domain *
conf_dom_new(const char *name, char *why, size_t whysz)
{
	struct conf_domain *d;
	char low[LIM_PATH + 8];

	if (conf_dom_name(name, low, sizeof(low)) == -1) {
		snprintf(why, whysz, "'%.*s' does not name a domain; write e.g. example.org, "
		    "or .example.org for its subdomains", LIM_PATH, name);
		return NULL;
	}
	d = xmalloc(sizeof(*d));
	conf_dom_init(d, low);
	return d;
}

void
conf_dom_clear(struct conf_domain *d)
{
	free(d->name);
	d->name = NULL;
	for (int k = 0; k < CONF_DOM_NLISTS; k++) {
		free(d->lists[k]);
		d->lists[k] = NULL;
		conf_dom_entries_free(d, k);
	}
}

/* List l's parsed entries (l counts from CONF_DOM_LIST0). */
static void
conf_dom_entries_free(struct conf_domain *d, int l)
{
	for (int i = 0; i < d->nentries[l]; i++)
		free(d->entries[l][i].text);
	free(d->entries[l]);
	d->entries[l] = NULL;
	d->nentries[l] = 0;
}

/* By name, case-insensitively: conf_dom_index_find's bsearch compares a
 * recipient's domain as it came. */
static int
conf_dom_index_cmp(const void *a, const void *b)
{
	return strcasecmp((*(const struct conf_domain *const *)a)->name,
	    (*(const struct conf_domain *const *)b)->name);
}

void
conf_dom_index_build(struct conf_dom_index *x, const struct conf_domain *d, int n)
{
	memset(x, 0, sizeof(*x));
	x->reject_max = -HUGE_VAL;
	x->byname = xcalloc((size_t)n + 1, sizeof(*x->byname));
	x->allow = xcalloc((size_t)n + 1, sizeof(*x->allow));
	for (int i = 0; i < n; i++) {
		x->byname[x->n++] = &d[i];
		if (d[i].nentries[CONF_DOM_ALLOW_SENDERS - CONF_DOM_LIST0] > 0 ||
		    d[i].nentries[CONF_DOM_ALLOW_CLIENTS - CONF_DOM_LIST0] > 0)
			x->allow[x->nallow++] = &d[i];
		if (d[i].set & 1u << CONF_DOM_REJECT && d[i].reject_score > x->reject_max)
			x->reject_max = d[i].reject_score;
	}
	qsort(x->byname, (size_t)x->n, sizeof(*x->byname), conf_dom_index_cmp);
}

const struct conf_domain *
conf_dom_index_find(const struct conf_dom_index *x, const char *name)
{
	struct conf_domain key = { .name = (char *)name };
	const struct conf_domain *kp = &key, *const *hit;

	if (x->n == 0)
		return NULL;
	hit = bsearch(&kp, x->byname, (size_t)x->n, sizeof(*x->byname), conf_dom_index_cmp);
	return hit ? *hit : NULL;
}

void
conf_dom_index_free(struct conf_dom_index *x)
{
	free(x->byname);
	free(x->allow);
	memset(x, 0, sizeof(*x));
}

/* After every key is read: what d leaves unset is the global value; its
 * lists are checked; its thresholds must rise like the global ones. */
static void
conf_dom_finish(struct conf_parse *p, struct conf_domain *d)
{
	const struct conf *c = p->c;
	char why[400];
	int l;

	if (!(d->set & 1u << CONF_DOM_TAG))
		d->tag_score = c->tag_score;
	if (!(d->set & 1u << CONF_DOM_QUARANTINE))
		d->quarantine_score = c->quarantine_score;
	if (!(d->set & 1u << CONF_DOM_REJECT))
		d->reject_score = c->reject_score;
	if (!(d->set & 1u << CONF_DOM_GREYLIST))
		d->greylist_enabled = c->greylist_enabled;
	for (int k = CONF_DOM_LIST0; k < CONF_DOM_NKEYS; k++)
		conf_dom_list(p, d, k);
	l = CONF_LATER(CONF_LATER(d->key_line[CONF_DOM_TAG], d->key_line[CONF_DOM_QUARANTINE]),
	    d->key_line[CONF_DOM_REJECT]);
	if (conf_dom_rise(c, d, why, sizeof(why)) == -1)
		conf_error(p, l ? l : d->line, "%s", why);
}

static void
conf_dom_free(struct conf *c)
{
	conf_dom_index_free(&c->dom_index);
	for (int i = 0; i < c->ndomains; i++)
		conf_dom_clear(&c->domains[i]);
	free(c->domains);
}

/* "TLSv1.2" -> TLS1_2_VERSION; 0 when not a protocol we speak. */
static int
conf_tls_version(const char *p, size_t n)
{
	static const struct { const char *name; int v; } vs[] = {
		{ "TLSv1", TLS1_VERSION }, { "TLSv1.1", TLS1_1_VERSION },
		{ "TLSv1.2", TLS1_2_VERSION }, { "TLSv1.3", TLS1_3_VERSION },
	};

	for (size_t i = 0; i < ARRAY_SIZE(vs); i++)
		if (strlen(vs[i].name) == n && strncasecmp(p, vs[i].name, n) == 0)
			return vs[i].v;
	return 0;
}

int
conf_tls_range(const char *list, int *min, int *max)
{
	unsigned seen = 0;

	*min = *max = 0;
	for (const char *p = list; *p != '\0'; ) {
		size_t n = strcspn(p, " ,:");
		int v;
		if (n == 0) {
			p++;
			continue;
		}
		if ((v = conf_tls_version(p, n)) == 0)
			return -1;
		seen |= 1u << (v - TLS1_VERSION);
		if (*min == 0 || v < *min)
			*min = v;
		if (v > *max)
			*max = v;
		p += n;
	}
	if (*min == 0)
		return -1;
	/* OpenSSL takes a range: a hole would be silently filled in */
	for (int v = *min; v <= *max; v++)
		if (!(seen & (1u << (v - TLS1_VERSION))))
			return -1;
	return 0;
}

/* Every entry of a comma- or space-separated list is an address or CIDR
 * block: a typo must not silently trust (or distrust) a network. */
static void
conf_check_cidrs(struct conf_parse *p, const char *key, const char *list)
{
	struct prefix cidr;
	char *copy = xstrdup(list), *save = NULL;

	for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save))
		if (prefix_parse(t, &cidr) == -1)
			conf_error(p, conf_line(p->c, key), "%s: '%s' is not an IP address or CIDR block; "
			    "write e.g. 10.0.0.5 or 10.0.0.0/24", key, t);
	free(copy);
}

int
conf_digest_parse(const char *v, int *every, int *at)
{
	unsigned hh, mm;
	char end;

	*every = *at = 0;
	if (strcasecmp(v, "off") == 0 || strcasecmp(v, "no") == 0)
		return 0;
	if (strcasecmp(v, "hourly") == 0) {
		*every = 3600;
		return 0;
	}
	if (sscanf(v, "daily %2u:%2u%c", &hh, &mm, &end) != 2 || hh > 23 || mm > 59)
		return -1;
	*every = 86400;
	*at = (int)(hh * 3600 + mm * 60);
	return 0;
}

/* A digest needs links recipients can open, which work no longer than
 * the message they point to is kept. */
static void
conf_check_digest(struct conf_parse *p)
{
	struct conf *c = p->c;
	const char *u = c->web_public_url;

	if (conf_digest_parse(c->quarantine_digest, &c->digest_every, &c->digest_at) == -1)
		conf_error(p, conf_line(c, "quarantine.digest"), "quarantine.digest '%s' is "
		    "not a schedule; write off, hourly or daily HH:MM (e.g. daily 08:00)",
		    c->quarantine_digest);
	/* The default (3d) gives way to a shorter max_age (digest.c takes the
	 * lesser); a lifetime set by hand must fit. */
	if (conf_line(c, "quarantine.digest_link_lifetime") > 0 &&
	    c->quarantine_digest_link_lifetime > c->quarantine_max_age)
		conf_error(p, CONF_LATER(conf_line(c, "quarantine.digest_link_lifetime"),
		    conf_line(c, "quarantine.max_age")), "quarantine.digest_link_lifetime is "
		    "longer than quarantine.max_age: a link would outlive its message; shorten it");
	if (*u != '\0' && ((strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) ||
	    strpbrk(u, " \t\"'<>\\") != NULL))
		conf_error(p, conf_line(c, "web.public_url"), "web.public_url '%s' is not an "
		    "http:// or https:// address; write e.g. https://mx.example.org:8480", u);
	if (c->digest_every > 0 && *u == '\0')
		conf_error(p, conf_line(c, "quarantine.digest"), "quarantine.digest is on but "
		    "web.public_url is empty: digests need the address recipients open the "
		    "links at; set it");
	if (*c->quarantine_digest_from != '\0' && (strchr(c->quarantine_digest_from, '@') == NULL ||
	    strpbrk(c->quarantine_digest_from, " \t\"<>,;\r\n") != NULL))
		conf_error(p, conf_line(c, "quarantine.digest_from"), "quarantine.digest_from "
		    "'%s' is not an address; write e.g. quarantine@example.org",
		    c->quarantine_digest_from);
}

/* Cross-key checks, after every key is read; each problem at the line of
 * the key that breaks the rule (the later one of a pair). */
static void
conf_check(struct conf_parse *p)
{
	struct conf *c = p->c;
	int l, lo, hi;

	if ((*c->tls_cert == '\0') != (*c->tls_key == '\0'))
		conf_error(p, CONF_LATER(conf_line(c, "proxy.tls_cert"), conf_line(c, "proxy.tls_key")),
		    "proxy.tls_cert and proxy.tls_key go together; set both or neither");
	if (conf_tls_range(c->tls_protocols, &lo, &hi) == -1)
		conf_error(p, conf_line(c, "proxy.tls_protocols"), "proxy.tls_protocols '%s' "
		    "is not a range of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3; write e.g. TLSv1.2 TLSv1.3",
		    c->tls_protocols);
	if ((*c->web_tls_cert == '\0') != (*c->web_tls_key == '\0'))
		conf_error(p, CONF_LATER(conf_line(c, "web.tls_cert"), conf_line(c, "web.tls_key")),
		    "web.tls_cert and web.tls_key go together; set both or neither");
	conf_check_cidrs(p, "web.trusted_proxies", c->web_trusted_proxies);
	conf_check_cidrs(p, "proxy.proxy_from", c->proxy_from);
	conf_check_digest(p);
	if (c->proxy_protocol && strspn(c->proxy_from, ", \t") == strlen(c->proxy_from))
		conf_error(p, conf_line(c, "proxy.proxy_protocol"), "proxy.proxy_protocol = yes "
		    "but proxy.proxy_from is empty: no balancer could connect; list them, "
		    "e.g. proxy_from = 10.0.0.5, 10.0.1.0/24");
	l = CONF_LATER(conf_line(c, "policy.tag_score"), conf_line(c, "policy.quarantine_score"));
	if (!(c->tag_score <= c->quarantine_score))
		conf_error(p, l, "policy.tag_score (%g) is above policy.quarantine_score (%g); "
		    "scores must rise: tag_score <= quarantine_score <= reject_score",
		    c->tag_score, c->quarantine_score);
	l = CONF_LATER(conf_line(c, "policy.quarantine_score"), conf_line(c, "policy.reject_score"));
	if (!(c->quarantine_score <= c->reject_score))
		conf_error(p, l, "policy.quarantine_score (%g) is above policy.reject_score (%g); "
		    "scores must rise: tag_score <= quarantine_score <= reject_score",
		    c->quarantine_score, c->reject_score);
	l = CONF_LATER(conf_line(c, "bayes.ham_threshold"), conf_line(c, "bayes.spam_threshold"));
	l = CONF_LATER(l, conf_line(c, "bayes.markov_spam_threshold"));
	/* the combined probability's cut lies below 0.5 (docs/bayes.md) */
	if (!(0 <= c->bayes_ham_threshold && c->bayes_ham_threshold <= 0.5 &&
	    0.5 <= c->bayes_spam_threshold && c->bayes_spam_threshold <= 1 &&
	    c->bayes_ham_threshold < c->bayes_markov_spam_threshold &&
	    c->bayes_markov_spam_threshold <= 1))
		conf_error(p, l, "bayes thresholds must satisfy 0 <= ham_threshold <= 0.5 <= "
		    "spam_threshold <= 1 and ham_threshold < markov_spam_threshold <= 1");
	if (!(c->bayes_s > 0 && c->bayes_x > 0 && c->bayes_x < 1 && c->bayes_min_dev >= 0 &&
	    c->bayes_min_dev < 0.5 && c->bayes_autolearn_balance >= 1 &&
	    c->bayes_markov_weight >= 0))
		conf_error(p, 0, "bayes.s must be > 0, bayes.x within (0, 1), bayes.min_dev "
		    "within [0, 0.5), bayes.autolearn_balance >= 1, bayes.markov_weight >= 0");
	if (!(c->bayes_autolearn_until >= 0.5 && c->bayes_autolearn_until <= 1))
		conf_error(p, conf_line(c, "bayes.autolearn_until"),
		    "bayes.autolearn_until must be within [0.5, 1] (1: autolearn every message)");
	if (*c->listen == '\0')
		conf_error(p, conf_line(c, "proxy.listen"),
		    "proxy.listen is empty; give at least one address:port");
	if (strcmp(c->dns_resolver, "system") != 0) {
		char host[256];
		int port;
		if (sockaddr_split(c->dns_resolver, host, sizeof(host), &port) == -1)
			conf_error(p, conf_line(c, "dns.resolver"), "dns.resolver '%s' is "
			    "neither 'system' nor host:port", c->dns_resolver);
	}
	for (int i = 0; i < c->ndomains; i++)
		conf_dom_finish(p, &c->domains[i]);
	conf_dom_index_build(&c->dom_index, c->domains, c->ndomains);
}

static struct conf_box *
conf_box(const struct conf *c)
{
	return (struct conf_box *)((char *)c - offsetof(struct conf_box, c));
}

static int
conf_line(const struct conf *c, const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (strcmp(keys[i].name, key) == 0)
			return conf_box(c)->line[i];
	fatalx("conf_line: no key %s", key);
}

int
conf_key_line(const struct conf *c, const char *key)
{
	return conf_line(c, key);
}

void
conf_list_each(const struct conf *c, const char *key,
    void (*fn)(void *, int line, const char *part), void *arg)
{
	const struct conf_box *b = conf_box(c);

	for (int i = 0; i < b->nseg; i++)
		if (strcmp(keys[b->seg[i].key].name, key) == 0)
			fn(arg, b->seg[i].line, b->seg[i].part);
}

/* Is key k's value the same in a and b? */
static int
conf_same(const struct conf *a, const struct conf *b, const struct conf_key *k)
{
	const void *x = (const char *)a + k->off, *y = (const char *)b + k->off;

	switch (k->type) {
	case T_STR:
	case T_LIST:
	case T_HOSTPORT:
		return strcmp(*(char *const *)x, *(char *const *)y) == 0;
	case T_INT:
	case T_BOOL:
	case T_ENUM:
	case T_LOGLEVEL:
		return *(const int *)x == *(const int *)y;
	case T_SECS:
	case T_MSECS:
	case T_BYTES:
		return *(const long long *)x == *(const long long *)y;
	case T_DOUBLE:
		return *(const double *)x == *(const double *)y;
	case T_DOMAINS:		/* applied by reload; never a restart key */
	case T_RCPTS:
		return 1;
	}
	fatalx("conf_same: type %d", k->type);
}

int
conf_restart_keys(const struct conf *old, const struct conf *new, char *out,
    size_t outsz)
{
	size_t o = 0;
	int n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(restart_keys); i++) {
		const struct conf_key *k = NULL;
		for (size_t j = 0; j < ARRAY_SIZE(keys) && k == NULL; j++)
			if (strcmp(keys[j].name, restart_keys[i]) == 0)
				k = &keys[j];
		if (k == NULL)
			fatalx("conf_restart_keys: no key %s", restart_keys[i]);
		if (conf_same(old, new, k))
			continue;
		if (o < outsz)
			o += (size_t)snprintf(out + o, outsz - o, "%s%s", n ? ", " : "", k->name);
		n++;
	}
	return n;
}

static struct conf *
conf_alloc(void)
{
	struct conf_box *b = xcalloc(1, sizeof(*b));
	char why[300];

	b->refs = 1;
	b->line = xcalloc(ARRAY_SIZE(keys), sizeof(*b->line));
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (conf_set(&b->c, &keys[i], keys[i].def, why, sizeof(why)) == -1)
			fatalx("default of %s: %s", keys[i].name, why);
	return &b->c;
}

struct conf *
conf_defaults(void)
{
	struct conf *c = conf_alloc();

	c->path = xstrdup("(defaults)");
	return c;
}

struct conf *
conf_load_all(const char *path, struct conf_err **errs, int *nerrs)
{
	struct conf_parse p = { 0 };
	int rc;

	p.c = conf_alloc();
	p.c->path = xstrdup(path);
	p.path = path;
	if ((p.fp = fopen(path, "r")) == NULL) {
		conf_error(&p, 0, "cannot open: %m; check the path given with -c");
	} else {
		rc = ini_parse_stream(conf_reader, &p, conf_handler, &p);
		fclose(p.fp);
		if (rc > 0)
			conf_error(&p, rc, "not INI syntax; write '[section]' or 'key = value'");
		conf_check(&p);
	}
	*errs = p.errs;
	*nerrs = p.nerrs;
	return p.c;
}

struct conf *
conf_load(const char *path, struct conf_err **errs, int *nerrs)
{
	struct conf *c = conf_load_all(path, errs, nerrs);

	if (*nerrs == 0)
		return c;
	conf_unref(c);
	return NULL;
}

struct conf *
conf_ref(struct conf *c)
{
	atomic_fetch_add(&conf_box(c)->refs, 1);
	return c;
}

void
conf_unref(struct conf *c)
{
	struct conf_box *b;

	if (c == NULL)
		return;
	b = conf_box(c);
	if (atomic_fetch_sub(&b->refs, 1) != 1)
		return;
	for (int i = 0; i < b->nseg; i++)
		free(b->seg[i].part);
	free(b->seg);
	free(b->line);
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (keys[i].type == T_STR || keys[i].type == T_HOSTPORT ||
		    keys[i].type == T_LIST)
			free(*(char **)((char *)c + keys[i].off));
		else if (keys[i].type == T_DOMAINS || keys[i].type == T_RCPTS)
			relay_free(*(struct relay_list **)((char *)c + keys[i].off));
	conf_dom_free(c);
	free(c->path);
	free(b);
}

struct conf *
conf_current(void)
{
	struct conf *c;

	pthread_mutex_lock(&conf_mtx);
	c = conf_global ? conf_ref(conf_global) : NULL;
	pthread_mutex_unlock(&conf_mtx);
	return c;
}

void
conf_swap(struct conf *c)
{
	struct conf *old;

	pthread_mutex_lock(&conf_mtx);
	old = conf_global;
	conf_global = c;
	pthread_mutex_unlock(&conf_mtx);
	conf_unref(old);
}

void
conf_dump_keys(FILE *fp)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		fprintf(fp, "%-34s %-16s %s\n", keys[i].name,
		    *keys[i].def ? keys[i].def : "(empty)", keys[i].help);
}

const char *
conf_path_arg(int argc, char **argv)
{
	for (int i = 1; i < argc - 1; i++)
		if (strcmp(argv[i], "-c") == 0)
			return argv[i + 1];
	return "etc/postern.conf";
}

struct conf *
conf_load_report(const char *path)
{
	struct conf_err *errs;
	struct conf *c;
	int n;

	if ((c = conf_load(path, &errs, &n)) == NULL) {
		for (int i = 0; i < n; i++)
			fprintf(stderr, "%s\n", errs[i].msg);
		free(errs);
	}
	return c;
}
