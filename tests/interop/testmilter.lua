-- testmilter.lua - milterhub-testmilter driven by Debian's miltertest (the
-- libmilter project's own MTA-side test driver), checking every reply.
--
-- Either let the script start the milter (it is stopped with SIGTERM at the end):
--   miltertest -D MILTER=unix:/tmp/tm.sock \
--              -D TESTMILTER=build/tools/testmilter/milterhub-testmilter \
--              [-D LOG=/tmp/tm.log] -s tests/interop/testmilter.lua
-- or start it yourself with the options of ARGS below, e.g.
--   milterhub-testmilter --listen unix:/tmp/tm.sock --log /tmp/tm.log \
--     --on 'mail=delay:50' --on 'rcpt:spam@example.org=reject' \
--     --on 'rcpt:<temp@example.org>=reply:451:4.7.1:try later' \
--     --on 'header:X-Reject=reply:550:5.7.1:header refused' --on 'unknown=tempfail' \
--     --on 'eom=progress,add-header:X-Testmilter:checked,ins-header:0:X-Top:first' \
--     --on 'eom=chg-header:Subject:1:changed,add-rcpt:<added@example.org>' \
--     --on 'eom=del-rcpt:<ok@example.org>,repl-body:new body\n,quarantine:held,accept'
-- and run: miltertest -D MILTER=unix:/tmp/tm.sock [-D LOG=/tmp/tm.log] -s tests/interop/testmilter.lua
-- With LOG the script also checks the testmilter's --log lines.

if MILTER == nil then
	error("define MILTER, e.g. -D MILTER=unix:/tmp/tm.sock")
end

ARGS = {
	"--on", "mail=delay:50",
	"--on", "rcpt:spam@example.org=reject",
	"--on", "rcpt:<temp@example.org>=reply:451:4.7.1:try later",
	"--on", "header:X-Reject=reply:550:5.7.1:header refused",
	"--on", "unknown=tempfail",
	"--on", "eom=progress,add-header:X-Testmilter:checked,ins-header:0:X-Top:first",
	"--on", "eom=chg-header:Subject:1:changed,add-rcpt:<added@example.org>",
	"--on", "eom=del-rcpt:<ok@example.org>,repl-body:new body\\n,quarantine:held,accept",
}

if TESTMILTER ~= nil then
	local argv = { "--listen", MILTER }
	if LOG ~= nil then
		os.remove(LOG)
		table.insert(argv, "--log")
		table.insert(argv, LOG)
	end
	for _, a in ipairs(ARGS) do
		table.insert(argv, a)
	end
	mt.startfilter(TESTMILTER, table.unpack(argv))
end

local function check(what, err)
	if err ~= nil then
		error(what .. " failed: " .. tostring(err))
	end
end

local function expect(conn, what, want)
	local got = mt.getreply(conn)
	if got ~= want then
		error(string.format("%s: reply '%s', expected '%s'", what, string.char(got),
			string.char(want)))
	end
end

local function must(cond, what)
	if not cond then
		error("check failed: " .. what)
	end
end

-- connection 1, negotiation and connection stages -----------------------------
local conn = mt.connect(MILTER, 100, 0.05)
if conn == nil then
	error("cannot connect to " .. MILTER)
end
check("negotiate", mt.negotiate(conn, nil, nil, nil))
-- default answer: every offered action, SKIP, no NO/NR bits
must(mt.test_action(conn, SMFIF_ADDHDRS), "ADDHDRS requested")
must(mt.test_action(conn, SMFIF_CHGBODY), "CHGBODY requested")
must(mt.test_action(conn, SMFIF_QUARANTINE), "QUARANTINE requested")
must(mt.test_option(conn, SMFIP_SKIP), "SKIP requested")
must(not mt.test_option(conn, SMFIP_NOCONNECT), "NOCONNECT not requested")
must(not mt.test_option(conn, SMFIP_NR_HDR), "NR_HDR not requested")

check("macro", mt.macro(conn, SMFIC_CONNECT, "j", "mta.example.org", "{daemon_name}", "mta"))
check("conninfo", mt.conninfo(conn, "mx.example.net", "192.0.2.1"))
expect(conn, "connect", SMFIR_CONTINUE)

-- a second connection, interleaved with the first: sessions are independent
local conn2 = mt.connect(MILTER, 100, 0.05)
if conn2 == nil then
	error("cannot open a second connection")
end
check("conninfo 2", mt.conninfo(conn2, "other.example.net", "198.51.100.7"))
expect(conn2, "connect 2", SMFIR_CONTINUE)

check("helo", mt.helo(conn, "mx.example.net"))
expect(conn, "helo", SMFIR_CONTINUE)

-- message 1: recipients decided one by one, edits at eom ---------------------
check("mail", mt.mailfrom(conn, "<sender@example.net>", "SIZE=100"))
expect(conn, "mail (after a 50 ms delay)", SMFIR_CONTINUE)
check("rcpt ok", mt.rcptto(conn, "<ok@example.org>"))
expect(conn, "rcpt <ok@example.org>", SMFIR_CONTINUE)
check("rcpt spam", mt.rcptto(conn, "<SPAM@example.org>"))
expect(conn, "rcpt <SPAM@example.org> (qualified rule, any case)", SMFIR_REJECT)
check("rcpt temp", mt.rcptto(conn, "<temp@example.org>"))
expect(conn, "rcpt <temp@example.org>", SMFIR_REPLYCODE)
check("data", mt.data(conn))
expect(conn, "data", SMFIR_CONTINUE)
check("header From", mt.header(conn, "From", "sender@example.net"))
expect(conn, "header From", SMFIR_CONTINUE)
check("header Subject", mt.header(conn, "Subject", "hello"))
expect(conn, "header Subject", SMFIR_CONTINUE)
check("eoh", mt.eoh(conn))
expect(conn, "eoh", SMFIR_CONTINUE)
check("body", mt.bodystring(conn, "Hello from miltertest.\r\n"))
expect(conn, "body", SMFIR_CONTINUE)
check("eom", mt.eom(conn))
expect(conn, "eom", SMFIR_ACCEPT)
must(mt.eom_check(conn, MT_HDRADD, "X-Testmilter", "checked"), "X-Testmilter added")
must(mt.eom_check(conn, MT_HDRINSERT, "X-Top", "first", 0), "X-Top inserted at 0")
must(mt.eom_check(conn, MT_HDRCHANGE, "Subject", "changed"), "Subject changed")
must(mt.eom_check(conn, MT_RCPTADD, "<added@example.org>"), "recipient added")
must(mt.eom_check(conn, MT_RCPTDELETE, "<ok@example.org>"), "recipient deleted")
must(mt.eom_check(conn, MT_BODYCHANGE, "new body\r\n"), "body replaced")
must(mt.eom_check(conn, MT_QUARANTINE, "held"), "quarantined")
must(not mt.eom_check(conn, MT_HDRDELETE), "no header deleted")

-- connection 2 meanwhile: plain continue through a message -------------------
check("mail 2", mt.mailfrom(conn2, "<x@example.net>"))
expect(conn2, "mail 2", SMFIR_CONTINUE)
check("rcpt 2", mt.rcptto(conn2, "<y@example.org>"))
expect(conn2, "rcpt 2", SMFIR_CONTINUE)
check("unknown 2", mt.unknown(conn2, "XFOO bar"))
expect(conn2, "unknown 2", SMFIR_TEMPFAIL)
mt.disconnect(conn2)

-- message 2: a header rule refuses the message, then ABORT (no reply) --------
check("mail m2", mt.mailfrom(conn, "<sender@example.net>"))
expect(conn, "mail m2", SMFIR_CONTINUE)
check("rcpt m2", mt.rcptto(conn, "<ok@example.org>"))
expect(conn, "rcpt m2", SMFIR_CONTINUE)
check("header m2", mt.header(conn, "X-Reject", "yes"))
expect(conn, "header X-Reject", SMFIR_REPLYCODE)
check("abort", mt.abort(conn))

-- message 3: fresh message state after the abort ----------------------------
check("mail m3", mt.mailfrom(conn, "<sender@example.net>"))
expect(conn, "mail m3", SMFIR_CONTINUE)
check("rcpt m3", mt.rcptto(conn, "<ok@example.org>"))
expect(conn, "rcpt m3", SMFIR_CONTINUE)
check("header m3", mt.header(conn, "Subject", "third"))
expect(conn, "header m3", SMFIR_CONTINUE)
check("eoh m3", mt.eoh(conn))
expect(conn, "eoh m3", SMFIR_CONTINUE)
check("body m3", mt.bodystring(conn, "second message\r\n"))
expect(conn, "body m3", SMFIR_CONTINUE)
check("eom m3", mt.eom(conn))
expect(conn, "eom m3", SMFIR_ACCEPT)

check("unknown", mt.unknown(conn, "XFOO bar"))
expect(conn, "unknown", SMFIR_TEMPFAIL)
mt.disconnect(conn)

-- the --log lines -----------------------------------------------------------
if LOG ~= nil then
	local want = {
		'{"conn":1,"cmd":"connect","hostname":"mx.example.net","family":"4","port":',
		'"macros":{"j":"mta.example.org","{daemon_name}":"mta"}}',
		'{"conn":2,"cmd":"connect","hostname":"other.example.net"',
		'{"conn":1,"cmd":"mail","args":["<sender@example.net>","SIZE=100"]',
		'{"conn":1,"cmd":"rcpt","args":["<SPAM@example.org>"]',
		-- message 1: two headers, FNV-1a 64 of "Hello from miltertest.\r\n"
		'{"conn":1,"cmd":"eom","body_len":24,"body_fnv":"cd6a8c62506f96a3","headers":2}',
		'{"conn":1,"cmd":"abort"}',
		-- message 3: counted afresh after the abort
		'{"conn":1,"cmd":"eom","body_len":16,"body_fnv":"ee97d2d86ecf2c01","headers":1}',
		'{"conn":1,"cmd":"unknown","line":"XFOO bar"}',
		'{"conn":2,"cmd":"close","reason":"quit"}',
	}
	-- the close line is written right after the QUIT; give the milter a moment
	local text = ""
	for _ = 1, 100 do
		local f = io.open(LOG, "r")
		if f ~= nil then
			text = f:read("a")
			f:close()
		end
		if string.find(text, '{"conn":1,"cmd":"close","reason":"quit"}', 1, true) then
			break
		end
		mt.sleep(0.02)
	end
	for _, w in ipairs(want) do
		if not string.find(text, w, 1, true) then
			error("log " .. LOG .. " lacks " .. w .. "\n" .. text)
		end
	end
	mt.echo("log checked: " .. LOG)
end

mt.echo("testmilter.lua: all checks passed")
