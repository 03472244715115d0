/*
 * cmd_gov.h - handlers of the governance commands (cmd_gov.c): schemas, snapshots,
 * rollback. Rows in commands.c's table; semantics in docs/governance.md.
 */
#ifndef RAFTCONF_CMD_GOV_H
#define RAFTCONF_CMD_GOV_H

#include <stddef.h>

struct client;
struct cslot;

void cmd_cfg_schema_set(struct client *, struct cslot *, int, char **, size_t *);
void cmd_cfg_schema_get(struct client *, struct cslot *, int, char **, size_t *);
void cmd_cfg_schema_del(struct client *, struct cslot *, int, char **, size_t *);
void cmd_cfg_schema_list(struct client *, struct cslot *, int, char **, size_t *);
void cmd_cfg_snapshot(struct client *, struct cslot *, int, char **, size_t *);
void cmd_cfg_snapshots(struct client *, struct cslot *, int, char **, size_t *);
void cmd_cfg_snapshot_del(struct client *, struct cslot *, int, char **, size_t *);
void cmd_cfg_rollback(struct client *, struct cslot *, int, char **, size_t *);

#endif
