/*
 * mh_cidr - network prefixes for conditions; see mh_cidr.h.
 *
 * Parsing copies the text into a fixed stack buffer (no allocation), so
 * the matcher can run in a condition's eval. inet_pton does the actual
 * address syntax; we only strip the decorations MTAs add.
 */
#include "conditions/mh_cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mh_err.h"

/* Longest text we accept: a full IPv6 with embedded IPv4 is 45 chars. */
#define ADDR_TEXT_MAX 64

static void to_mapped(const unsigned char v4[4], unsigned char addr[16])
{
	memset(addr, 0, 10);
	addr[10] = 0xff;
	addr[11] = 0xff;
	memcpy(addr + 12, v4, 4);
}

/* Parse a plain address of length len (not NUL-terminated); sets *is_v4. */
static int parse_plain(const char *s, size_t len, unsigned char addr[16], int *is_v4)
{
	char buf[ADDR_TEXT_MAX];
	unsigned char v4[4];

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (strchr(buf, ':') == NULL) {
		if (inet_pton(AF_INET, buf, v4) != 1)
			return -1;
		to_mapped(v4, addr);
		*is_v4 = 1;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, addr) != 1)
		return -1;
	*is_v4 = 0;
	return 0;
}

int mh_cidr_addr_parse(const char *text, unsigned char addr[16])
{
	const char *s = text, *end;
	int is_v4;

	if (text == NULL)
		return -1;
	end = s + strlen(s);
	if (*s == '[') {
		s++;
		if (end > s && end[-1] == ']')
			end--;
	}
	if (strncasecmp(s, "IPv6:", 5) == 0)
		s += 5;
	/* A link-local zone ("fe80::1%eth0") does not change the address. */
	const char *zone = memchr(s, '%', (size_t)(end - s));
	if (zone != NULL)
		end = zone;
	return parse_plain(s, (size_t)(end - s), addr, &is_v4);
}

int mh_cidr_parse(const char *text, struct mh_cidr *out, char *why, size_t whylen)
{
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);
	unsigned long len;
	int is_v4;
	unsigned i;

	if (parse_plain(text, alen, out->addr, &is_v4) != 0)
		return mh_errf(why, whylen, "bad address in '%s'", text);
	if (slash == NULL) {
		len = is_v4 ? 32 : 128;
	} else {
		char *e;

		if (slash[1] < '0' || slash[1] > '9')
			return mh_errf(why, whylen, "bad prefix length in '%s'", text);
		len = strtoul(slash + 1, &e, 10);
		if (*e != '\0' || len > (is_v4 ? 32u : 128u))
			return mh_errf(why, whylen, "bad prefix length in '%s'", text);
	}
	out->prefix = (unsigned)len + (is_v4 ? 96u : 0u);
	for (i = out->prefix; i < 128; i++)
		out->addr[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
	return 0;
}

int mh_cidr_match(const struct mh_cidr *c, const unsigned char addr[16])
{
	unsigned full = c->prefix / 8, rest = c->prefix % 8;

	if (memcmp(c->addr, addr, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	unsigned char mask = (unsigned char)(0xffu << (8 - rest));
	return (addr[full] & mask) == c->addr[full];
}

int mh_cidr_match_any(const struct mh_cidr *list, size_t n, const unsigned char addr[16])
{
	size_t i;

	for (i = 0; i < n; i++)
		if (mh_cidr_match(&list[i], addr))
			return 1;
	return 0;
}
