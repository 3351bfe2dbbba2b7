/*
 * dkimbody.h -- the DKIM body hash (RFC 6376 3.4.3-3.4.5, 3.7): body
 * canonicalization, simple or relaxed, cut to l=, digested with OpenSSL.
 *
 * Why our own: libopendkim canonicalizes the body with a function call per
 * octet (dkim_canon_bodychunk), a third of the whole policy's CPU on a
 * 10 KB message. policy/dkim.c now gives the library the header section
 * only -- it still parses the signatures, fetches and checks the keys and
 * verifies the header hash -- and compares bh= itself with this hash.
 *
 * Lines end at CRLF only (a bare CR or LF is an ordinary octet, as in
 * libopendkim without DKIM_LIBFLAGS_FIXCRLF); WSP is SP and HTAB.
 * Thread: any; no state. Ownership: the caller's buffers.
 */
#ifndef POSTERN_DKIMBODY_H
#define POSTERN_DKIMBODY_H

#include <stddef.h>

#include <openssl/evp.h>

enum dkimbody_canon { DKIMBODY_SIMPLE, DKIMBODY_RELAXED };

/* Digest (md) of the canonical form of body[0..len), of at most limit
 * octets of it when limit >= 0 (the l= tag). Writes the digest to out;
 * returns its length, or 0 when OpenSSL fails. */
unsigned int dkimbody_hash(const char *body, size_t len, enum dkimbody_canon,
    long long limit, const EVP_MD *md, unsigned char out[EVP_MAX_MD_SIZE]);

#endif
