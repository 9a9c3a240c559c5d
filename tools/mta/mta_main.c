/*
 * milterhub-mta - an MTA simulator: plays the MTA side of SMTP sessions
 * against a milter and reports what happened (docs/tools.md).
 *
 * This file reads the command line into an mta_config, runs the sessions
 * (mta_load: one session, or --sessions N at --concurrency C) and prints
 * the report (mta_report) or the load statistics.
 *
 * Exit status: 0 the session ran to its end (whatever the milter
 * decided); 1 bad usage; 2 the milter could not be reached or the
 * negotiation failed; 3 the milter failed mid-session. Load mode: 0 when
 * no session failed, else 3.
 */
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mta_config.h"
#include "mta_load.h"
#include "mta_record.h"
#include "mta_report.h"
#include "util/mh_log.h"

#define EXIT_USAGE 1

static const char usage_text[] =
    "usage: milterhub-mta --socket SPEC [--socket SPEC]... [options]\n"
    "  --client-name NAME      (default mx.example.net)\n"
    "  --client-addr ADDR      (default 192.0.2.1; IPv6 ok)\n"
    "  --client-port N         (default 54321)\n"
    "  --helo NAME             (default: the client name)\n"
    "  --from ADDR             repeatable: message K uses the K-th, the last repeats\n"
    "                          (default <sender@example.net>)\n"
    "  --rcpt ADDR             repeatable (default <rcpt@example.org>)\n"
    "  --header 'Name: value'  repeatable; replaces the default headers\n"
    "  --body TEXT             \\n becomes CRLF\n"
    "  --message-file FILE     RFC 5322 message; overrides --header/--body\n"
    "  --macro STAGE:NAME=VALUE  repeatable; STAGE connect|helo|mail|rcpt|data|eoh|eom|unknown\n"
    "  --auth USER             {auth_type}=PLAIN, {auth_authen}=USER at MAIL\n"
    "  --unknown 'CMD LINE'    send an unknown SMTP command after HELO\n"
    "  --messages N            N transactions on one connection (default 1)\n"
    "  --sendmail              Sendmail flavour (default: Postfix)\n"
    "  --version N             protocol version offered, 2..6 (default 6)\n"
    "  --timeout SECONDS       per reply (default 10)\n"
    "  --max-payload N         largest reply payload accepted (default 65535)\n"
    "  --json                  JSON report on stdout\n"
    "  --sessions N --concurrency C   load mode\n"
    "  --rate R                load mode: start R sessions per second (open loop)\n"
    "  --hold SECONDS          load mode: each session pauses before its first MAIL\n"
    "  several --socket: chain mode, the milters in order as Postfix drives them\n";

enum {
	OPT_SOCKET = 256,
	OPT_CLIENT_NAME,
	OPT_CLIENT_ADDR,
	OPT_CLIENT_PORT,
	OPT_HELO,
	OPT_FROM,
	OPT_RCPT,
	OPT_HEADER,
	OPT_BODY,
	OPT_MESSAGE_FILE,
	OPT_MACRO,
	OPT_AUTH,
	OPT_UNKNOWN,
	OPT_MESSAGES,
	OPT_SENDMAIL,
	OPT_VERSION,
	OPT_TIMEOUT,
	OPT_MAX_PAYLOAD,
	OPT_JSON,
	OPT_SESSIONS,
	OPT_CONCURRENCY,
	OPT_RATE,
	OPT_HOLD,
	OPT_HELP,
};

static const struct option options[] = {
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"client-name", required_argument, NULL, OPT_CLIENT_NAME},
    {"client-addr", required_argument, NULL, OPT_CLIENT_ADDR},
    {"client-port", required_argument, NULL, OPT_CLIENT_PORT},
    {"helo", required_argument, NULL, OPT_HELO},
    {"from", required_argument, NULL, OPT_FROM},
    {"rcpt", required_argument, NULL, OPT_RCPT},
    {"header", required_argument, NULL, OPT_HEADER},
    {"body", required_argument, NULL, OPT_BODY},
    {"message-file", required_argument, NULL, OPT_MESSAGE_FILE},
    {"macro", required_argument, NULL, OPT_MACRO},
    {"auth", required_argument, NULL, OPT_AUTH},
    {"unknown", required_argument, NULL, OPT_UNKNOWN},
    {"messages", required_argument, NULL, OPT_MESSAGES},
    {"sendmail", no_argument, NULL, OPT_SENDMAIL},
    {"version", required_argument, NULL, OPT_VERSION},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"max-payload", required_argument, NULL, OPT_MAX_PAYLOAD},
    {"json", no_argument, NULL, OPT_JSON},
    {"sessions", required_argument, NULL, OPT_SESSIONS},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"rate", required_argument, NULL, OPT_RATE},
    {"hold", required_argument, NULL, OPT_HOLD},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* An unsigned number in [min, max], or -1 with err filled. */
static int number(const char *opt, const char *s, unsigned long min, unsigned long max,
                  unsigned long *out, char *err, size_t errlen)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
		snprintf(err, errlen, "--%s needs a number from %lu to %lu, got '%s'", opt, min,
		         max, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* A positive number up to max (seconds, sessions per second). */
static int positive(const char *opt, const char *s, double max, double *out, char *err,
                    size_t errlen)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v > 0) || v > max) {
		snprintf(err, errlen, "--%s needs a number above 0 and up to %g, got '%s'", opt,
		         max, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* One option into the config. Returns 0, or -1 with err filled. */
static int apply_option(struct mta_config *c, int opt, const char *arg, const char **msgfile,
                        int *have_socket, char *err, size_t errlen)
{
	unsigned long v;

	switch (opt) {
	case OPT_SOCKET:
		if (c->nsocks == MTA_SOCKETS_MAX) {
			snprintf(err, errlen, "at most %d --socket options", MTA_SOCKETS_MAX);
			return -1;
		}
		if (mh_sockspec_parse(arg, &c->socks[c->nsocks], err, errlen) < 0)
			return -1;
		c->sock = c->socks[0];
		c->nsocks++;
		*have_socket = 1;
		return 0;
	case OPT_CLIENT_NAME:
		c->client_name = arg;
		return 0;
	case OPT_CLIENT_ADDR:
		return mta_config_set_client_addr(c, arg, err, errlen);
	case OPT_CLIENT_PORT:
		if (number("client-port", arg, 0, 65535, &v, err, errlen) < 0)
			return -1;
		c->client_port = (unsigned)v;
		return 0;
	case OPT_HELO:
		c->helo = arg;
		return 0;
	case OPT_FROM:
		c->froms = mh_xrealloc(c->froms, (c->nfroms + 1) * sizeof(*c->froms));
		c->froms[c->nfroms++] = arg;
		return 0;
	case OPT_RCPT:
		c->rcpts = mh_xrealloc(c->rcpts, (c->nrcpts + 1) * sizeof(*c->rcpts));
		c->rcpts[c->nrcpts++] = arg;
		return 0;
	case OPT_HEADER:
		return mta_config_add_header(c, arg, err, errlen);
	case OPT_BODY:
		mta_config_set_body(c, arg);
		return 0;
	case OPT_MESSAGE_FILE:
		*msgfile = arg;
		return 0;
	case OPT_MACRO:
		return mta_config_add_macro(c, arg, err, errlen);
	case OPT_AUTH:
		c->auth = arg;
		return 0;
	case OPT_UNKNOWN:
		c->unknown = arg;
		return 0;
	case OPT_MESSAGES:
		if (number("messages", arg, 1, 100000, &v, err, errlen) < 0)
			return -1;
		c->messages = (unsigned)v;
		return 0;
	case OPT_SENDMAIL:
		c->flavour = MTA_SENDMAIL;
		return 0;
	case OPT_VERSION:
		if (number("version", arg, 2, 6, &v, err, errlen) < 0)
			return -1;
		c->version = (unsigned)v;
		return 0;
	case OPT_TIMEOUT:
		return positive("timeout", arg, 86400, &c->timeout, err, errlen);
	case OPT_MAX_PAYLOAD:
		if (number("max-payload", arg, 1, 1ul << 30, &v, err, errlen) < 0)
			return -1;
		c->max_payload = v;
		return 0;
	case OPT_JSON:
		c->json = 1;
		return 0;
	case OPT_SESSIONS:
		c->load = 1;
		return number("sessions", arg, 1, 100000000, &c->sessions, err, errlen);
	case OPT_CONCURRENCY:
		return number("concurrency", arg, 1, 1000000, &c->concurrency, err, errlen);
	case OPT_RATE:
		return positive("rate", arg, 1e7, &c->rate, err, errlen);
	case OPT_HOLD:
		return positive("hold", arg, 86400, &c->hold, err, errlen);
	default:
		snprintf(err, errlen, "unknown option (try --help)");
		return -1;
	}
}

static int parse_args(struct mta_config *c, int argc, char **argv, char *err, size_t errlen)
{
	const char *msgfile = NULL;
	int have_socket = 0, concurrency = 0, paced = 0, opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		if (opt == OPT_HELP) {
			fputs(usage_text, stdout);
			exit(0);
		}
		if (opt == '?' || opt == ':') {
			snprintf(err, errlen, "bad option '%s' (try --help)", argv[optind - 1]);
			return -1;
		}
		concurrency |= opt == OPT_CONCURRENCY;
		paced |= opt == OPT_RATE || opt == OPT_HOLD;
		if (apply_option(c, opt, optarg, &msgfile, &have_socket, err, errlen) < 0)
			return -1;
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if (!have_socket) {
		snprintf(err, errlen, "--socket is required");
		return -1;
	}
	if ((concurrency || paced) && !c->load) {
		snprintf(err, errlen, "--concurrency, --rate and --hold need --sessions");
		return -1;
	}
	if (c->nsocks > 1 && c->flavour == MTA_SENDMAIL) {
		/* Chain mode follows Postfix (milter.c, milter8.c) only. */
		snprintf(err, errlen, "several --socket options need the Postfix flavour");
		return -1;
	}
	if (msgfile != NULL && mta_config_load_message(c, msgfile, err, errlen) < 0)
		return -1;
	mta_config_finish(c);
	return 0;
}

int main(int argc, char **argv)
{
	struct mta_config cfg;
	struct mta_load_stats st;
	struct mta_record rec;
	struct mh_buf out = MH_BUF_INIT;
	char err[512];
	int rc;

	mh_log_set_ident("milterhub-mta");
	mta_config_init(&cfg);
	if (parse_args(&cfg, argc, argv, err, sizeof(err)) < 0) {
		fprintf(stderr, "milterhub-mta: %s\n", err);
		mta_config_free(&cfg);
		return EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	mta_load_run(&cfg, &st, cfg.load ? NULL : &rec);
	if (cfg.load) {
		mta_load_print(&st, cfg.json, &out);
		rc = st.failed ? 3 : 0;
	} else {
		if (cfg.json)
			mta_report_json(&rec, &out);
		else
			mta_report_text(&rec, &cfg, &out);
		rc = rec.exit_code;
		mta_record_free(&rec);
	}
	fwrite(mh_buf_head(&out), 1, mh_buf_size(&out), stdout);
	fflush(stdout);
	mh_buf_free(&out);
	mta_config_free(&cfg);
	ev_loop_destroy(EV_DEFAULT);
	return rc;
}
