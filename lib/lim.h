/*
 * lim.h -- the protocol limits of the SMTP proxy, in one place.
 *
 * Tunable limits live in struct conf (proxy.max_*); these are the fixed
 * bounds that protect our buffers, each citing where the number comes from.
 * Thread: constants only.
 * (Named lim.h, not limits.h: with -Iproxy that name would shadow the C
 * library's <limits.h> for every system header.)
 */
#ifndef POSTERN_LIM_H
#define POSTERN_LIM_H

/* RFC 5321 4.5.3.1.4: a command line is at most 512 octets with CRLF; we
 * accept up to proxy.max_line_length (>= 512) to tolerate long ESMTP
 * parameter lists. */
#define LIM_CMD_LINE_MIN	512
/* RFC 5321 4.5.3.1.3: a path is at most 256 octets. */
#define LIM_PATH		256
/* RFC 5321 4.5.3.1.1 / 4.5.3.1.2: local part 64, domain 255 octets. */
#define LIM_LOCAL_PART		64
#define LIM_DOMAIN		255
/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with CRLF; we
 * allow more from the backend but bound the whole reply. */
#define LIM_REPLY_LINE		1024
#define LIM_REPLY_LINES		64
#define LIM_REPLY_TOTAL		8192
/* RFC 5321 4.1.1.11 / RFC 1869: ESMTP parameters per MAIL or RCPT. */
#define LIM_ESMTP_PARAMS	16
/* RFC 5321 4.5.3.1.8: at least 100 recipients must be accepted; the
 * configured proxy.max_recipients may raise or lower our own bound. */
#define LIM_RCPT_MIN		100
/* RFC 5321 4.5.3.1.1 names 64 for local parts; the HELO argument is a
 * domain or an address literal (RFC 5321 4.1.1.1), bound like a domain. */
#define LIM_HELO		LIM_DOMAIN
/* RFC 3461 4.2: ORCPT and ENVID values are at most 100 (ENVID) / 500
 * (ORCPT) characters; we bound every parameter value by the larger. */
#define LIM_ESMTP_VALUE		500
/* Our own I/O chunk: how much one read() may bring in at once, and the
 * most we queue towards a peer before we stop reading from the other. */
#define LIM_IO_CHUNK		16384
#define LIM_OUT_HIGH		65536

/* The PROXY protocol (HAProxy's proxy-protocol.txt): a v1 line is at most
 * 107 bytes with its CRLF (2.1); a v2 header is 16 bytes and then as many
 * as its length field says (2.2): 36 for TCP over IPv6, 216 for AF_UNIX,
 * plus TLVs (a unique ID is at most 128, the SSL ones a few hundred). We
 * refuse a v2 length above this. */
#define LIM_PXP_V1		107
#define LIM_PXP_V2		1024

/* RFC 5321 4.5.3.2 names the timeouts (proxy.timeout_*); 421 4.4.2 on
 * expiry. RFC 5321 3.8. */
#endif
