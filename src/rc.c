/* rc.c - lookups into the error table of rc.h. */
#include "rc.h"

struct rc_row {
    const char *name;
    const char *prefix;
    const char *msg;
};

static const struct rc_row rc_rows[] = {
#define RC_ROW_(code, val, prefix, msg) [val] = {#code, prefix, msg},
    RC_TABLE(RC_ROW_)
#undef RC_ROW_
};

static const struct rc_row *row(int rc)
{
    static const struct rc_row unknown = {"RC_UNKNOWN", "ERR", "unknown error"};
    if (rc < 0 || rc >= RC__COUNT || !rc_rows[rc].name)
        return &unknown;
    return &rc_rows[rc];
}

const char *rc_name(int rc) { return row(rc)->name; }
const char *rc_prefix(int rc) { return row(rc)->prefix; }
const char *rc_message(int rc) { return row(rc)->msg; }
