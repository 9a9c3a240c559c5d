-- day-night.lua - different countermeasures by day and by night.
--
--   milterhub --check-config examples/day-night.lua
--
-- By day people wait for their mail: greylist only the clients that look dynamic (Rgrey).
-- By night nobody waits and most spam runs unattended: greylist every unauthenticated
-- client. The content scanner runs around the clock.
--
-- The schedule condition reads the hub's clock at connect; days and hours are in the given
-- time zone (default: the hub's local time). An hour range that wraps past midnight
-- ("22:00-06:00") is one night, and the start is included, the end is not.

manager {
	listen = "unix:/run/milterhub/milterhub.sock",
	socket_mode = "0660",
	fallback = "accept",
}

condition "office-hours" {
	type = "schedule",
	days = "mon-fri",
	hours = "08:00-19:00",
	timezone = "Europe/Berlin",
}

condition "night" {
	type = "schedule",
	hours = "22:00-06:00",
	timezone = "Europe/Berlin",
}

-- The same greylist daemon, applied under two different sets of conditions. Between
-- 19:00 and 22:00 and at weekends during the day neither applies.
milter "greylist-day" {
	socket = "unix:/run/milter-greylist/milter-greylist.sock",
	when = { "office-hours", "s25r", "unauthenticated" },
}

milter "greylist-night" {
	socket = "unix:/run/milter-greylist/milter-greylist.sock",
	when = { "night", "unauthenticated" },
}

milter "clamav" {
	socket = "unix:/run/clamav/clamav-milter.ctl",
	fallback = "tempfail",
	timeouts = { eom = 120 },
}
