/*
 * libmilter_milter - a tiny milter built on Debian's libmilter, the
 * reference milter-side implementation, for tests/interop/run.py.
 *
 * Usage: libmilter_milter SOCKET   (unix:/path, inet:PORT@HOST, ...)
 *
 * Behaviour, fixed so the tests can assert it:
 *  - RCPT <reject@example.org> (case-insensitive, with or without <>):
 *    smfi_setreply 550 5.1.1 and SMFIS_REJECT; every other recipient
 *    continues;
 *  - end of message: add "X-Libmilter: yes", change the first Subject to
 *    "changed by libmilter", accept;
 *  - nothing else is registered, so libmilter asks the MTA not to send
 *    the other events (NO* bits for the missing callbacks).
 * Runs until SIGTERM/SIGINT (libmilter takes a moment to stop).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libmilter/mfapi.h>

static const char reject_addr[] = "reject@example.org";

/* The address without one pair of angle brackets equals reject_addr. */
static int is_reject_rcpt(const char *addr)
{
	size_t n = strlen(addr);

	if (n >= 2 && addr[0] == '<' && addr[n - 1] == '>') {
		addr++;
		n -= 2;
	}
	return n == sizeof(reject_addr) - 1 && strncasecmp(addr, reject_addr, n) == 0;
}

static sfsistat on_envrcpt(SMFICTX *ctx, char **argv)
{
	if (argv[0] != NULL && is_reject_rcpt(argv[0])) {
		if (smfi_setreply(ctx, "550", "5.1.1", "no such user here") != MI_SUCCESS)
			fprintf(stderr, "libmilter_milter: smfi_setreply failed\n");
		return SMFIS_REJECT;
	}
	return SMFIS_CONTINUE;
}

static sfsistat on_eom(SMFICTX *ctx)
{
	if (smfi_addheader(ctx, "X-Libmilter", "yes") != MI_SUCCESS)
		fprintf(stderr, "libmilter_milter: smfi_addheader failed\n");
	if (smfi_chgheader(ctx, "Subject", 1, "changed by libmilter") != MI_SUCCESS)
		fprintf(stderr, "libmilter_milter: smfi_chgheader failed\n");
	return SMFIS_ACCEPT;
}

static struct smfiDesc desc = {
    .xxfi_name = "milterhub-interop",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS,
    .xxfi_envrcpt = on_envrcpt,
    .xxfi_eom = on_eom,
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
		return 1;
	}
	if (smfi_setconn(argv[1]) != MI_SUCCESS) {
		fprintf(stderr, "libmilter_milter: bad socket %s\n", argv[1]);
		return 1;
	}
	if (smfi_register(desc) != MI_SUCCESS) {
		fprintf(stderr, "libmilter_milter: smfi_register failed\n");
		return 1;
	}
	if (smfi_opensocket(1) != MI_SUCCESS) {
		fprintf(stderr, "libmilter_milter: cannot open %s\n", argv[1]);
		return 1;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
