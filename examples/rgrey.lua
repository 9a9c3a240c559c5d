-- rgrey.lua - Rgrey: greylisting only for clients that look like dynamic/end-user hosts.
--
--   milterhub --check-config examples/rgrey.lua
--
-- S25R alone (reject every client whose reverse-DNS name looks dynamic) is cheap and strong,
-- but its false positives need hand-kept whitelists. Greylisting alone delays all mail.
-- Together (design.md, "Rgrey"): greylisting is applied only to S25R-looking clients, so a
-- false positive is rescued automatically (a real MTA retries after the temporary failure),
-- and a client with a clean name (mail.example.com) is never delayed.
--
-- The only Postfix setting needed is the milter itself:
--   smtpd_milters = unix:/run/milterhub/milterhub.sock
--   milter_default_action = accept
-- S25R reads the client name and address the MTA sends at connect; unauthenticated reads
-- {auth_type}/{auth_authen}, which Postfix sends at MAIL by default (milter_mail_macros).

manager {
	listen = "unix:/run/milterhub/milterhub.sock",
	socket_mode = "0660",
	fallback = "accept",
}

-- The S25R rules themselves are built in (client name "unknown" or an address literal, and
-- the six published regular expressions). Add your own false positives to the whitelist and
-- known offenders with clean-looking names to the blacklist; the whitelist wins. The default
-- whitelist of big senders (google.com, amazonses.com, ...) stays on.
condition "s25r" {
	-- A string is a host name or a domain suffix ("example.ne.jp" covers
	-- "p1234-ipad56.example.ne.jp"); "/.../" is a POSIX extended regular expression.
	whitelist = { "mx.example-partner.co.jp", "/^mail[0-9]+\\.example\\.org$/" },
	blacklist = { },
	-- IPv6 clients never look dynamic by name: leave them alone (the default).
	ipv4_only = true,
}

-- Greylisting only for S25R-looking clients that did not log in (a user submitting mail from
-- a home connection authenticates and must not be delayed).
milter "greylist" {
	socket = "unix:/run/milter-greylist/milter-greylist.sock",
	when = { "s25r", "unauthenticated" },
	-- If the greylist daemon is down, let the mail in rather than delay everybody.
	fallback = "accept",
	timeouts = { connect = 5, read = 5 },
}

-- Everyone else's filters run for every client, as before.
milter "opendkim" {
	socket = "inet:8891@127.0.0.1",
	timeouts = { eom = 60 },
}
