/* dlink_test.c -- policy/dlink: digest link tokens are signed over every
 * field, expire, and refuse what was altered, cut or signed elsewhere. */
#include "policy/dlink.h"
#include "t.h"

static const unsigned char key1[DLINK_KEY_LEN] = "0123456789abcdef0123456789abcdef";
static const unsigned char key2[DLINK_KEY_LEN] = "0123456789abcdef0123456789abcdeX";

static struct dlink
sample(void)
{
	struct dlink l = { .id = "0123456789AB", .action = DLINK_RELEASE,
	    .rcpt = "alice@example.org", .expires = 2000000000 };
	return l;
}

T_CASE(round_trip_gives_every_field_back)
{
	struct dlink l = sample(), out;
	char *t;

	for (int a = DLINK_RELEASE; a <= DLINK_ALLOW; a++) {
		l.action = (enum dlink_action)a;
		t = dlink_sign(key1, &l);
		T_ASSERT(strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") ==
		    strlen(t));
		T_EQ_INT(dlink_verify(key1, t, 1999999999, &out), DLINK_OK);
		T_EQ_STR(out.id, l.id);
		T_EQ_STR(out.rcpt, l.rcpt);
		T_EQ_INT(out.action, a);
		T_EQ_INT(out.expires, l.expires);
		free(t);
	}
}

T_CASE(expired_after_its_time_valid_up_to_it)
{
	struct dlink l = sample(), out;
	char *t = dlink_sign(key1, &l);

	T_EQ_INT(dlink_verify(key1, t, l.expires, &out), DLINK_OK);
	T_EQ_INT(dlink_verify(key1, t, l.expires + 1, &out), DLINK_EXPIRED);
	free(t);
}

T_CASE(another_key_is_a_bad_signature)
{
	struct dlink l = sample(), out;
	char *t = dlink_sign(key1, &l);

	T_EQ_INT(dlink_verify(key2, t, 0, &out), DLINK_BAD_SIG);
	free(t);
}

/* Change each character of the payload part in turn: none survives. */
T_CASE(any_altered_character_fails)
{
	struct dlink l = sample(), out;
	char *t = dlink_sign(key1, &l);
	size_t n = strlen(t);
	int ok = 0;

	for (size_t i = 0; i < n; i++) {
		char keep = t[i];
		if (keep == '.')
			continue;
		t[i] = keep == 'A' ? 'B' : 'A';
		if (dlink_verify(key1, t, 0, &out) == DLINK_OK)
			ok++;
		t[i] = keep;
	}
	T_EQ_INT(ok, 0);
	T_EQ_INT(dlink_verify(key1, t, 0, &out), DLINK_OK);
	free(t);
}

/* A token made by hand for another recipient, action or expiry under the
 * old mac is refused. */
T_CASE(swapped_field_with_old_mac_fails)
{
	struct dlink l = sample(), m = sample(), out;
	char *a = dlink_sign(key1, &l), *b, *mix;

	m.action = DLINK_ALLOW;
	b = dlink_sign(key1, &m);
	/* b's payload with a's mac */
	mix = xasprintf("%.*s%s", (int)(strchr(b, '.') - b), b, strchr(a, '.'));
	T_EQ_INT(dlink_verify(key1, mix, 0, &out), DLINK_BAD_SIG);
	free(a);
	free(b);
	free(mix);
}

T_CASE(malformed_tokens)
{
	struct dlink l = sample(), out;
	char *t = dlink_sign(key1, &l), *cut, big[DLINK_TOKEN_MAX + 10];

	T_EQ_INT(dlink_verify(key1, "", 0, &out), DLINK_MALFORMED);
	T_EQ_INT(dlink_verify(key1, "nodot", 0, &out), DLINK_MALFORMED);
	T_EQ_INT(dlink_verify(key1, "a.b", 0, &out), DLINK_MALFORMED);
	T_EQ_INT(dlink_verify(key1, "ab+c.def=", 0, &out), DLINK_MALFORMED);
	cut = xstrndup(t, strlen(t) - 3);	/* a mac cut short */
	T_EQ_INT(dlink_verify(key1, cut, 0, &out), DLINK_MALFORMED);
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[10] = '.';
	T_EQ_INT(dlink_verify(key1, big, 0, &out), DLINK_MALFORMED);
	free(cut);
	free(t);
}

T_CASE(action_names)
{
	enum dlink_action a;

	T_EQ_INT(dlink_action_parse("allow", 5, &a), 0);
	T_EQ_INT(a, DLINK_ALLOW);
	T_EQ_INT(dlink_action_parse("releasex", 8, &a), -1);
	T_EQ_STR(dlink_action_name(DLINK_DELETE), "delete");
}

int
main(void)
{
	T_RUN(round_trip_gives_every_field_back);
	T_RUN(expired_after_its_time_valid_up_to_it);
	T_RUN(another_key_is_a_bad_signature);
	T_RUN(any_altered_character_fails);
	T_RUN(swapped_field_with_old_mac_fails);
	T_RUN(malformed_tokens);
	T_RUN(action_names);
	return T_END();
}
