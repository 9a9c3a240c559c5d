-- submission.lua - skip the content scanners for authenticated submitters.
--
--   milterhub --check-config examples/submission.lua
--
-- Users who logged in (SMTP AUTH) send their own mail: scanning it for spam costs CPU and
-- only produces false positives on outgoing mail; signing it with DKIM is what it needs.
-- Mail from the outside (not authenticated) goes through the scanners as before.
--
-- The authenticated/unauthenticated conditions read the {auth_type} and {auth_authen}
-- macros at MAIL. Postfix sends them at MAIL by default; if you set milter_mail_macros
-- yourself, keep them in it:
--   milter_mail_macros = i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}
-- Sendmail: confMILTER_MACROS_ENVFROM must hold {auth_type} and {auth_authen} (the default
-- does). Until MAIL a condition on authentication is undecided: the scanners see connect
-- and helo, and are left out of the transaction (not the connection) at MAIL, so a client
-- that logs in for its second message is handled per message.

manager {
	listen = "unix:/run/milterhub/milterhub.sock",
	socket_mode = "0660",
	fallback = "accept",
}

-- The virus scanner: only mail from outside. Fail closed for that mail.
milter "clamav" {
	socket = "unix:/run/clamav/clamav-milter.ctl",
	when = { "unauthenticated" },
	fallback = "tempfail",
	timeouts = { eom = 120 },
}

-- The spam filter: only mail from outside.
milter "spamassassin" {
	socket = "unix:/run/spamass/spamass.sock",
	when = { "unauthenticated" },
}

-- The DKIM signer sees everything (last, so it signs the final message); opendkim itself
-- decides to sign mail from authenticated users and verify the rest.
milter "opendkim" {
	socket = "inet:8891@127.0.0.1",
	timeouts = { eom = 60 },
}
