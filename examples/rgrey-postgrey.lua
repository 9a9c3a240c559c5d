-- rgrey-postgrey.lua - Rgrey with postgrey: greylisting by a Postfix policy server, only for
-- clients that look like dynamic/end-user hosts.
--
--   milterhub --check-config examples/rgrey-postgrey.lua
--
-- The same idea as rgrey.lua (S25R decides who is greylisted, greylisting rescues S25R's
-- false positives, a client with a clean name is never delayed), but the greylisting is done
-- by postgrey (Debian package postgrey), which speaks the Postfix policy delegation protocol,
-- not the milter protocol. milterhub asks it as a `policy` child: at each RCPT it sends
-- postgrey the request Postfix itself would send (client, HELO, sender, recipient, ...) and
-- turns the answer into a milter answer: postgrey's "DEFER_IF_PERMIT Greylisted, ..." becomes
-- "450 4.7.1 Greylisted, ..." for that recipient; on a retry after the delay its
-- "PREPEND X-Greylist: delayed ..." becomes a header added to the message.
--
-- Why not list postgrey in Postfix's smtpd_recipient_restrictions instead? Postfix would ask
-- it for every client. Here it is asked only when the conditions in `when` hold, and it
-- shares the hub's chain, fallbacks and statistics with the milters.
--
-- postgrey itself (Debian: /etc/default/postgrey):
--   POSTGREY_OPTS="--inet=127.0.0.1:10023 --delay=300"
-- Postfix needs only the milter (and NOT check_policy_service for postgrey):
--   smtpd_milters = unix:/run/milterhub/milterhub.sock
--   milter_default_action = accept
-- The request attributes come from the milter macros Postfix sends. Its defaults already
-- cover the queue id (i), SMTP AUTH ({auth_*}, at MAIL), TLS ({tls_version} {cipher}
-- {cipher_bits} {cert_subject} {cert_issuer}, at HELO) and {daemon_addr}; for
-- reverse_client_name and server_port add {client_ptr} and {daemon_port} at connect:
--   milter_connect_macros = j {daemon_name} {daemon_addr} {daemon_port} {client_ptr} v _
-- postgrey needs only client_address, client_name, sender and recipient.

manager {
	listen = "unix:/run/milterhub/milterhub.sock",
	socket_mode = "0660",
	-- When no child applies (a clean client, no other milter): accept.
	fallback = "accept",
}

-- The S25R rules are built in; add your own false positives to the whitelist (the whitelist
-- wins over the blacklist). The default whitelist of big senders (google.com, ...) stays on.
condition "s25r" {
	whitelist = { "mx.example-partner.co.jp" },
	blacklist = { },
	ipv4_only = true,
}

-- Greylisting by postgrey, only for S25R-looking clients that did not authenticate (a user
-- submitting from a home connection logs in and must not be delayed).
policy "postgrey" {
	socket = "inet:10023@127.0.0.1",
	-- Ask once per recipient, as Postfix's smtpd_recipient_restrictions would (the default).
	-- "data" or "eom" ask once per message instead (recipient empty, recipient_count set).
	stage = "rcpt",
	when = { "s25r", "unauthenticated" },
	-- If postgrey is down, times out or answers nonsense: let the mail in rather than
	-- delay everybody.
	fallback = "accept",
	-- Seconds: connecting, and each request (write + answer).
	timeouts = { connect = 5, read = 5 },
	-- Connections to postgrey kept open and reused, per worker process (at most this many;
	-- more concurrent requests wait their turn).
	connections = 4,
}

-- Everyone's mail is signed as before: milters and policy servers share one chain.
milter "opendkim" {
	socket = "inet:8891@127.0.0.1",
	timeouts = { eom = 60 },
}
