/*
 * rulecheck.h -- the policy check that runs regex rules at each SMTP stage,
 * and the loader that keeps the process's rule set in step with the
 * database (and imports rule files, for `postern rules import` too).
 *
 * Loading: rulecheck_init() and rulecheck_reload() import rules.file into an
 * empty, never-edited rule table, then compile the table into the current
 * set (rules/). Before
 * each transaction (and at connect) the check compares the table's version
 * counter with the set's (one cheap SELECT); a changed table is compiled
 * aside and swapped in. SIGHUP (rulecheck_reload) rebuilds at once.
 * A session holds the set it took for one transaction (or for the
 * connect/HELO stages), so changes never reach a transaction mid-way.
 *
 * Public calls: rulecheck_init, rulecheck_no_writes, rulecheck_reload,
 *   rulecheck_refresh, rulecheck_import, rulecheck_opts, and the check
 *   itself (rulecheck, for policy.c's table).
 * Thread: any; rebuilds are serialised by a mutex.
 * Privilege: reads rules.file; the database through db/.
 */
#ifndef POSTERN_RULECHECK_H
#define POSTERN_RULECHECK_H

struct conf;
struct pol_check;
struct rule_opts;

extern const struct pol_check rulecheck;

/* After db_open(): first-start import and the first build. 0 or -1. */
int	 rulecheck_init(struct conf *);
/* Before rulecheck_init(), for `postern check`: a never-edited table's
 * rules.file is compiled from the file, not imported; nothing is written. */
void	 rulecheck_no_writes(void);
/* SIGHUP: import rules.file as rulecheck_init() does, then rebuild from
 * the table with the new config's limits. */
void	 rulecheck_reload(struct conf *);
/* Rebuild when the table changed since the current set; force rebuilds
 * regardless. 0 (up to date or rebuilt) or -1 (old set kept, logged). */
int	 rulecheck_refresh(struct conf *, int force);

/* Parse the rule file at path ("-": stdin) and import it into the open
 * database, after the rules there (replace: instead of them). 0, or -1
 * with the reason logged (nothing imported). */
int	 rulecheck_import(const char *path, int replace);
/* The matching limits of c (rules.match_limit, rules.depth_limit), as
 * every rule set of the process is built with them. */
void	 rulecheck_opts(const struct conf *c, struct rule_opts *);

#endif
