/*
 * mh_stats_page - the status page served on "/" (issue 6, design §5):
 * one self-contained HTML5 document a postmaster reads instead of the
 * logs, on a desktop or a phone.
 *
 * Self-contained: inline CSS, inline SVG graphs drawn here, no
 * JavaScript, no URL of any other host (no fonts, no CDNs, not even an
 * SVG namespace URI: the HTML parser puts <svg> in its namespace). The
 * page reloads itself every 30 s (<meta http-equiv="refresh">). Graphs
 * scale with their viewBox at width 100%; below 760 px wide everything
 * is one column.
 *
 * Content: the daemon (uptime, generation, workers, sessions open / max
 * / total, messages); "Sessions over time" for the last hour and day
 * (sessions started and messages per minute, sessions open); message
 * results and the header results children reported (spam, virus, spf,
 * dkim, dmarc); then one card per configured milter, in chain order:
 * health (state, enabled, restarts), totals, and graphs of its outcomes
 * per minute (accept, reject, tempfail, discard, fallback; red marks
 * along the bottom where it was not up) and of its latency (mean and
 * p95 per reply, all stages; see mh_stats_history.h) over the last hour
 * and day. Times on the axes are relative to the newest point ("-15m",
 * "-6h", "now"); the footer gives the snapshot's time in UTC.
 *
 * Stable DOM, for tests and scrapers:
 *   <section class="milter" id="milter-NAME" data-milter="NAME"> per milter
 *   <svg class="graph" data-graph="G"> with G one of sessions-hour,
 *     sessions-day (once) and outcomes-hour, outcomes-day, latency-hour,
 *     latency-day (in every milter card)
 *   data-stat="S" on the element whose text is exactly the number S:
 *     global (outside the cards): generation, workers, worker_restarts,
 *       sessions_total, sessions_open, sessions_max, messages,
 *       recipients, and result_R for R each mh_hub_result_name()
 *       (message results); the uptime is shown for people ("3d 4h 5m"),
 *       its seconds in the title attribute;
 *     per milter (inside its section): sessions, accept, reject,
 *       tempfail, discard (its answers summed over all stages),
 *       fallbacks (its fallback stood in, all stages and reasons),
 *       timeouts (the fallbacks for reason "timeout"), restarts,
 *       answers_timed (replies with a latency), and hdr_KIND_RESULT for
 *       each non-zero header result.
 *   Every value is the snapshot's total, the same as /stats reports.
 *   data-state="up|down|starting|unsupervised" and data-enabled="0|1" on
 *   the milter's health badge.
 * Names are HTML-escaped everywhere (text and attributes).
 */
#ifndef MH_STATS_PAGE_H
#define MH_STATS_PAGE_H

#include "stats/mh_stats.h"
#include "stats/mh_stats_history.h"
#include "util/mh_buf.h"

/*
 * Append the page to out (owned by the caller). h and s are read, not
 * kept; h may be NULL (no graphs data yet: empty graphs are drawn).
 * Serve as "text/html; charset=utf-8".
 */
void mh_stats_page_render(const struct mh_stats_history *h, const struct mh_stats_snapshot *s,
                          struct mh_buf *out);

#endif
