-- milterhub.lua - an example configuration (Lua 5.4).
--
--   milterhub --check-config examples/milterhub.lua   validate: "FILE: ok", or FILE:LINE and the key
--   milterhub --show-config  examples/milterhub.lua   the same with every default filled in
--   milterhub -c examples/milterhub.lua               run in the foreground, logs on stderr
--
-- Two constructors: `manager { ... }` (at most once) and `milter "name" { ... }` (one per child).
-- The order of the milter blocks is the chain order: every child gets the whole message in
-- turn and sees the changes made by the children above it (design §2.3), so put the filters
-- that change the message first and the DKIM signer last. Unknown keys are errors.

manager {
	-- Where the MTA connects: unix:/path, inet:PORT@HOST or inet:HOST:PORT, inet6:PORT@HOST.
	-- The directory must exist; milterhub creates (and on exit removes) the socket itself.
	listen = "unix:/run/milterhub/milterhub.sock",
	-- Mode of that unix socket (a string: Lua numbers are decimal). The MTA's user must be
	-- able to connect: run milterhub in the MTA's group, or use "0666" on a private host.
	socket_mode = "0660",
	-- The answer when no child applies to a session (every child disabled or retired).
	fallback = "accept",
	-- Message bodies above this size are kept in a temporary file under tmpdir.
	body_memory_limit = "4M",
	-- tmpdir = "/var/tmp/milterhub",
	log_level = "info", -- debug, info, warn, err (MILTERHUB_LOG_LEVEL overrides)
	-- log = "syslog", syslog_facility = "mail",  -- or "stderr" (default), or a file path
	-- Worker processes share the socket; default: one per CPU core.
	-- workers = 2,
	-- The master stays root (binds, starts supervised milters, rebinds on reload); the
	-- workers, which handle all mail traffic, become this user after binding:
	-- user = "nobody", group = "nogroup",
	-- socket_group = "postfix",  -- group of the unix socket, so the MTA can connect
	-- milterhubctl talks to the daemon here (mode 0600: root only):
	-- control = "unix:/run/milterhub/control.sock",
	-- SIGTERM / milterhubctl stop: sessions in progress get this long to finish.
	drain_timeout = 30,
}

-- Greylisting first: it answers at MAIL/RCPT, before anything looks at the content.
-- If it is down, let mail through rather than delay everyone (fallback = "accept", the default).
milter "greylist" {
	socket = "unix:/run/milter-greylist/milter-greylist.sock",
	fallback = "accept",
	-- Seconds. A child that misses a deadline gets its fallback and is dropped for the session;
	-- keep them below the MTA's own milter timeouts (Postfix: 30 s, 300 s at end of message).
	timeouts = { connect = 5, read = 5 },
}

-- The virus scanner: if it cannot answer, ask the client to retry later instead of letting
-- unscanned mail in.
milter "clamav" {
	socket = "unix:/run/clamav/clamav-milter.ctl",
	fallback = "tempfail",
	timeouts = { connect = 5, write = 7, read = 7, eom = 120 },
}

-- A new spam filter on trial: evaluation mode runs it for real and logs what it would have
-- done, but its reject/tempfail/discard count as accept and its changes are dropped.
milter "spamassassin" {
	socket = "unix:/run/spamass/spamass.sock",
	evaluate = true,
}

-- The DKIM signer last, so it signs the message as the MTA will deliver it.
milter "opendkim" {
	socket = "inet:8891@127.0.0.1",
	timeouts = { eom = 60 },
}

-- A child can be kept in the file but switched off.
milter "opendmarc" {
	socket = "inet:8893@127.0.0.1",
	enabled = false,
}

-- A milter milterhub starts and keeps running itself: restarted with a growing delay when it
-- exits, health-checked (connect + negotiate) every health_interval seconds; while it is down,
-- sessions get its fallback at once.
-- milter "opendkim" {
-- 	socket = "inet:8891@127.0.0.1",
-- 	command = { "/usr/sbin/opendkim", "-f", "-x", "/etc/opendkim.conf" },
-- 	user = "opendkim",
-- 	health_interval = 10, restart_delay = 1,
-- }
