/*
 * domtab.h -- the dashboard's domain policies: [domain NAME] sections an
 * admin adds, changes and deletes in the dashboard or through the API
 * (PUT and DELETE /api/domains/NAME) rather than in the config file, shared
 * by every node of a cluster.
 *
 * Storage: one JSON object under the shared value (db_meta_put)
 * DOMTAB_META_KEY, {"NAME": ENTRY, ...}, where ENTRY is what the API
 * takes:
 *   {"tag_score": 2, "quarantine_score": 4, "reject_score": 8,
 *    "greylisting": true, "allow_senders": ["@partner.example"],
 *    "deny_senders": [...], "allow_clients": ["192.0.2.0/24"],
 *    "deny_clients": [...]}
 * Every member is optional; absent or null means the global value (a
 * threshold may be a number or its text, greylisting a boolean or
 * yes/no, a list an array of strings or "a, b"). An entry is checked by
 * the config parser's own rules (lib/conf.h, conf_dom_*): names, list
 * entries, and thresholds that rise with the global ones of the config in
 * force when it is saved. A save moves the shared edit version in its own
 * transaction (db_meta_edit), so every node rebuilds its table within
 * DB_EDIT_POLL_MS.
 * Two admins saving on two nodes in the same instant: the later document
 * wins (one process serialises its own saves).
 *
 * A config section and a dashboard entry of the same name: the config's
 * section wins (the file is the admin's base), and a save of such a name
 * is refused (DOMTAB_CONFLICT).
 *
 * Sessions read a table (struct domtab) shared by all threads: a
 * reference from domtab_get(0) costs a lock and never touches the
 * database; domtab_get(1), on a policy worker, rebuilds it from the
 * database when db_admin_token() moved. A session keeps its reference for
 * as long as it points into the table (policy/dompol.c).
 * Thread: any.
 */
#ifndef POSTERN_DOMTAB_H
#define POSTERN_DOMTAB_H

#include <stddef.h>

#include <jansson.h>

struct conf;
struct conf_dom_index;
struct conf_domain;
struct domtab;

#define DOMTAB_META_KEY	"domains.dashboard"
/* The document's bounds: entries, and bytes (what a save may grow it to,
 * and past which a stored one is not read). */
#define DOMTAB_MAX	1000
#define DOMTAB_DOC_MAX	(4 * 1024 * 1024)

/* What a save or delete came to. */
enum domtab_rc {
	DOMTAB_OK = 0,		/* changed, or deleted */
	DOMTAB_CREATED,		/* a new entry */
	DOMTAB_INVALID,		/* bad name or entry: why says what to fix */
	DOMTAB_CONFLICT,	/* the config has a section of that name */
	DOMTAB_NOTFOUND,	/* delete: no such entry */
	DOMTAB_FULL,		/* DOMTAB_MAX entries, or DOMTAB_DOC_MAX bytes */
	DOMTAB_DBERR,		/* the database did not answer (logged) */
};

/* One entry from its JSON, checked (thresholds against c's global ones
 * when c is set; without c they are not compared: a table read back is
 * not refused for a config changed since). *out is conf_dom_new()'d, the
 * caller frees it with conf_dom_clear() and free(). 0, or -1 with "what;
 * fix" in why. */
int	 domtab_entry_parse(const struct conf *c, const char *name, json_t *j,
	    struct conf_domain **out, char *why, size_t whysz);
/* An entry as JSON: only what it sets (the parse of it gives it back). */
json_t	*domtab_entry_json(const struct conf_domain *);

/* A table from a stored document ("{}" for none); entries that no longer
 * parse are logged and left out. Token 0; domtab_unref() frees it. */
struct domtab *domtab_from_json(const char *doc);
/* A reference to the shared table; with read (never on the event loop),
 * rebuilt from the database first when stale. NULL when none was ever
 * read. */
struct domtab *domtab_get(int read);
/* Is t older than the last admin edit (or NULL)? 1 or 0; no database. */
int	 domtab_stale(const struct domtab *t);
void	 domtab_unref(struct domtab *);
/* The entries, by name. */
int	 domtab_count(const struct domtab *);
const struct conf_domain *domtab_at(const struct domtab *, int i);
/* The entries' index (lib/conf.h), built with the table: an empty one
 * for NULL. */
const struct conf_dom_index *domtab_index(const struct domtab *);

/* The document as stored, read now (for an edit): 0 with *doc set (a new
 * reference, {} when none), or -1. */
int	 domtab_read(json_t **doc);
/* Save (create or replace) or delete one entry, then move the edit
 * version. c is the config in force (its sections and thresholds). */
enum domtab_rc domtab_put(const struct conf *c, const char *name, json_t *entry,
	    char *why, size_t whysz);
enum domtab_rc domtab_del(const char *name, char *why, size_t whysz);

#endif
