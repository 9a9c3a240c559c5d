/*
 * mh_cidr - IPv4/IPv6 network prefixes ("192.0.2.0/24", "2001:db8::/32",
 * or a bare address meaning a single host) and matching addresses
 * against them, without allocation.
 *
 * Both families live in one 16-byte form: an IPv4 address a.b.c.d is
 * held as the IPv4-mapped IPv6 address ::ffff:a.b.c.d and an IPv4
 * prefix length n as 96 + n, so an IPv4 client reported as
 * "::ffff:192.0.2.1" matches "192.0.2.0/24" and vice versa.
 * The caller owns every struct; nothing here keeps pointers.
 */
#ifndef MH_CIDR_H
#define MH_CIDR_H

#include <stddef.h>

struct mh_cidr {
	unsigned char addr[16]; /* network address, host bits cleared */
	unsigned prefix; /* 0..128, in the 16-byte form */
};

/*
 * Parse a client address as a milter MTA reports it: "192.0.2.1",
 * "2001:db8::1", "::ffff:192.0.2.1", also "[...]", "IPv6:..." and an
 * "%zone" suffix. Returns 0, or -1 when it is not an address.
 */
int mh_cidr_addr_parse(const char *text, unsigned char addr[16]);

/*
 * Parse "ADDR/LEN" or a bare "ADDR" (LEN = 32 or 128). Host bits set
 * below the prefix are cleared, as routers do ("10.1.2.3/8" = 10/8).
 * Returns 0, or -1 with a reason ("bad prefix length", "bad address").
 */
int mh_cidr_parse(const char *text, struct mh_cidr *out, char *why, size_t whylen);

/* Does addr (16-byte form) lie inside c? */
int mh_cidr_match(const struct mh_cidr *c, const unsigned char addr[16]);

/* Does addr lie inside any of the n prefixes of list? */
int mh_cidr_match_any(const struct mh_cidr *list, size_t n, const unsigned char addr[16]);

#endif
