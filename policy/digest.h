/*
 * digest.h -- a round of quarantine digests: which recipients have newly
 * quarantined mail, and one message for each (policy/dmail.h). Sending
 * them is proxy/qsend.c's (qsend_digest): policy/ opens no sockets.
 *
 * A round covers messages still held whose quarantine time lies after
 * the previous round's end and up to now - DIGEST_SETTLE_S (a message
 * being committed right now is left for the next round rather than
 * missed). Progress is per recipient: once the round is sent, one value
 * of the database's shared ones (db_meta_put "digest.last") remembers
 * its end, and with it each recipient whose digest the backend did not
 * take for now (4xx) and the time that recipient's listing started from.
 * So neither a restart nor another node lists a message twice to one
 * recipient, while a deferred recipient's next digest lists its
 * messages again (with the new ones). The value is one line with the
 * end, then one line "SINCE RECIPIENT" per recipient behind; written in
 * one statement, it never holds half a round. A round that failed as a
 * whole (no backend, database) is not remembered: the next one lists
 * its messages again. The first round ever lists everything held.
 *
 * Recipients: every recipient of a held message, or with
 * quarantine.digest_domains only those in the listed domains
 * ("example.org" that domain, ".example.org" its subdomains). A digest
 * lists at most DIGEST_MAX_LISTED messages (newest first) and says how
 * many more there are. A round takes at most DIGEST_MAX_PAIRS (recipient,
 * message) pairs, the oldest: one that reaches it ends before the second
 * where it stopped, remembers that as its end, and the next round lists
 * the rest -- nothing held is skipped.
 *
 * Schedule: digest_slot() is the latest scheduled time at or before now
 * (hourly: the full hour; daily HH:MM in local time). Of several nodes,
 * the one whose digest_claim() stores the slot first sends its round.
 * Each claim is a shared value ("digest.slot.TIME"); claiming one deletes
 * those of slots more than DIGEST_SLOT_KEEP_S older, so they stay a
 * day's worth (25 rows hourly, 2 daily) while a node whose clock lags by
 * less than that still finds the claim of a slot it comes late for.
 *
 * Public calls: digest_prepare, digest_done, digest_free, digest_slot,
 *   digest_claim.
 * Ownership: a struct digest_round and everything in it is the caller's
 *   until digest_free().
 * Thread: any that may block on the database (not an I/O loop).
 * Exposure: message text is cleaned and escaped by dmail.
 */
#ifndef POSTERN_DIGEST_H
#define POSTERN_DIGEST_H

#include <stddef.h>
#include <time.h>

struct conf;

#define DIGEST_SETTLE_S		10	/* seconds a commit may take (DB_BUSY_TIMEOUT_MS x 5) */
#define DIGEST_MAX_LISTED	100	/* messages listed in one digest */
#ifndef DIGEST_MAX_PAIRS		/* tests/unit/digest_test.c sets a small one */
#define DIGEST_MAX_PAIRS	200000	/* (recipient, message) pairs in one round */
#endif
#define DIGEST_MAX_BEHIND	10000	/* deferred recipients remembered one by one */
#define DIGEST_SLOT_KEEP_S	86400	/* claims kept, before the slot claimed */

/* One recipient's digest, ready to send. */
struct digest_mail {
	char	*rcpt;
	char	*data;			/* the whole message, CRLF */
	size_t	 len;
	int	 nmsgs;			/* messages it tells of */
	time_t	 since;			/* it lists what came after this */
	int	 deferred;		/* the sender's: not taken for now (4xx) */
};

/* A recipient still owed messages quarantined after since. */
struct digest_behind {
	char	*rcpt;
	time_t	 since;
};

struct digest_round {
	/* quarantine times covered: (since, until] -- and from further back
	 * for the recipients behind; until is cut back when the round
	 * reached DIGEST_MAX_PAIRS */
	time_t	 since, until;
	char	*from;			/* envelope and header sender */
	struct digest_mail *mails;
	int	 nmails;
	int	 nmsgs;			/* distinct messages listed */
	struct digest_behind *behind;	/* from the last round, by recipient */
	int	 nbehind;
	int	 walked;		/* messages read: digest_done records progress */
};

/* Find this round's messages and compose the digests. 0 (r filled; maybe
 * no mails), or -1 with err (no web.public_url, database, link key).
 * Either way r is the caller's to digest_free(). */
int	 digest_prepare(const struct conf *, time_t now, struct digest_round *r,
	    char *err, size_t errsz);
/* The round was sent, each mail's deferred set by the sender: remember
 * its end and the recipients whose digest was deferred. 0 or -1. */
int	 digest_done(const struct digest_round *r);
void	 digest_free(struct digest_round *r);
/* The latest scheduled time at or before now; 0 when digests are off. */
time_t	 digest_slot(const struct conf *, time_t now);
/* Take the round of slot for this process: 1 ours, 0 another process's
 * (or node's), -1 error. */
int	 digest_claim(time_t slot);

#endif
