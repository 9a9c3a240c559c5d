/*
 * mta_report - what milterhub-mta prints about one session: the JSON
 * report of docs/tools.md ("JSON report") or a readable summary.
 *
 * Both append to a caller-owned buffer; the record is only read.
 */
#ifndef MTA_REPORT_H
#define MTA_REPORT_H

#include "mta_config.h"
#include "mta_record.h"
#include "util/mh_buf.h"

void mta_report_json(const struct mta_record *r, struct mh_buf *out);
void mta_report_text(const struct mta_record *r, const struct mta_config *cfg, struct mh_buf *out);

#endif
