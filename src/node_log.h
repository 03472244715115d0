/*
 * node_log.h - the persistent Raft state of one group on a pst engine: hard state, log
 * entries and snapshot metadata, their record formats, loading with validation, and the
 * functions that add a Ready batch's output to a shared pst write batch.
 *
 * Keys (group prefix "g" + group id u32 big endian, see the brief / docs/storage.md):
 *   'g' G 'H'            hard state record
 *   'g' G 'L' + u64 BE   log entry record at that index
 *   'g' G 'S'            snapshot metadata record (index 0: only the bootstrap
 *                        configuration of a new group, no snapshot)
 *
 * Records (all integers big endian; every record ends with an XXH3_64bits checksum of the
 * bytes before it, computed with XXH3_64bits_withSeed(seed = the key's index for 'L' records,
 * 0 for 'H' and 'S'), so a record copied under the wrong index key fails its check):
 *
 *   Log entry ('L')                         Hard state ('H')
 *   off   size  field                       off  size  field
 *   0     1     format version (1)          0    1     format version (1)
 *   1     8     term                        1    8     term
 *   9     1     type (enum raft_entry_type) 9    8     vote (member id, 0 = none)
 *   10    4     data length N               17   8     commit index
 *   14    N     data (node_entry envelope)  25   8     XXH3 of bytes 0..24
 *   14+N  8     XXH3 of bytes 0..13+N
 *
 *   Snapshot metadata ('S')
 *   off   size   field
 *   0     1      format version (1)
 *   1     8      index (last index covered)
 *   9     8      term of that entry
 *   17    4      voters V (<= RAFT_VOTERS_MAX)
 *   21    8*V    voter ids
 *   21+8V 4      learners W (<= RAFT_LEARNERS_MAX)
 *   25+8V 8*W    learner ids
 *   ...   8      XXH3 of everything before
 *
 * Invariants kept on disk: the 'L' records of a group are exactly the indices
 * (S.index, last]; terms never decrease along the log; H.commit <= last. The writer keeps
 * them because every change (append, conflict truncation, compaction) is one atomic batch.
 * Loading checks them all: a bad record in the middle of the log, a gap, or a term going
 * backwards refuses to open. A bad LAST record past the persisted commit (and applied)
 * index is treated as a torn tail and truncated, with a note, ONLY when the group's
 * configuration (snapshot or bootstrap conf plus the conf entries of the valid log) has a
 * single voter: with more voters the entry may have been acknowledged to a leader (which
 * counts it toward a commit), so dropping it could lose a committed write; then loading
 * refuses with a message that says so.
 */
#ifndef RAFTCONF_NODE_LOG_H
#define RAFTCONF_NODE_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "persist/pst.h"
#include "raft/raft.h"

#define NODE_LOG_VERSION 1u
#define NODE_LOG_ENTRY_BYTES_MAX (64u * 1024u * 1024u) /* data bytes per entry record */
#define NODE_LOG_ENTRY_OVERHEAD 22u                      /* record bytes besides data */
#define NODE_LOG_HS_BYTES 33u
#define NODE_LOG_KEY_BYTES 14u                           /* 'L' key */
#define NODE_LOG_ENTRIES_MAX (16u * 1024u * 1024u)       /* entries loaded per group */

/* What is on disk for one group (as far as batches handed to pst_write go). */
struct node_log {
    uint32_t group;
    struct raft_hard_state hs;      /* last hard state added to a batch / loaded */
    struct raft_snapshot_meta snap; /* last snapshot meta added / loaded (index 0: none) */
    raft_index last_index;          /* last log index on disk (snap.index when empty) */
};

/* Keys. out must hold NODE_LOG_KEY_BYTES; the return value is the key length. */
size_t node_log_key_hs(uint32_t group, uint8_t *out);
size_t node_log_key_snap(uint32_t group, uint8_t *out);
size_t node_log_key_entry(uint32_t group, raft_index index, uint8_t *out);

/* Record codecs. Encoders return a malloc'd buffer (NULL on OOM or oversized data).
 * Decoders return RC_OK or RC_CORRUPT; the entry decoder mallocs out->data (when len > 0). */
uint8_t *node_log_entry_encode(const struct raft_entry *e, size_t *len);
int node_log_entry_decode(raft_index index, const uint8_t *buf, size_t len,
                          struct raft_entry *out);
void node_log_hs_encode(const struct raft_hard_state *hs, uint8_t out[NODE_LOG_HS_BYTES]);
int node_log_hs_decode(const uint8_t *buf, size_t len, struct raft_hard_state *out);
uint8_t *node_log_snap_encode(const struct raft_snapshot_meta *m, size_t *len);
int node_log_snap_decode(const uint8_t *buf, size_t len, struct raft_snapshot_meta *out);

/*
 * Load a group's state. `applied` is the state machine's applied index (a torn tail is only
 * truncated past max(hard state commit, applied), and only for a single-voter group);
 * `initial` is the configuration used when no snapshot meta records one. On RC_OK: *log
 * filled, *entries a malloc'd array of the stable log after the snapshot (free with
 * node_log_entries_free),
 * *note NULL or a malloc'd message about a truncated torn tail. On error (RC_CORRUPT,
 * RC_IO, RC_NOMEM) *err gets a malloc'd message naming group, index and the problem.
 */
int node_log_load(struct pst_engine *e, uint32_t group, raft_index applied,
                  const struct raft_conf *initial, struct node_log *log,
                  struct raft_entry **entries, size_t *n_entries, char **note, char **err);
void node_log_entries_free(struct raft_entry *entries, size_t n);

/* Add Ready output to batch b (written later by the caller, with one pst_write for all
 * groups). They update *log as if the batch were already durable: if the write fails the
 * node must stop anyway. */
void node_log_put_hs(struct node_log *log, struct pst_batch *b, const struct raft_hard_state *hs);
/* Deletes the stable suffix from entries[0].index first (a conflict was resolved), then
 * puts the entries. RC_OK, RC_BADARG (not contiguous / before the snapshot), RC_NOMEM. */
int node_log_put_entries(struct node_log *log, struct pst_batch *b, const struct raft_entry *ents,
                         size_t n);
/* A new group records its bootstrap configuration as snapshot meta with index 0 (no
 * snapshot), so a restart does not depend on the configuration it is started with. Only
 * valid on an empty log (RC_BADARG otherwise). */
int node_log_put_bootstrap(struct node_log *log, struct pst_batch *b, const struct raft_conf *c);
/* Record snapshot meta m and delete every log record up to and including m->index. When the
 * log ends before m->index (a snapshot received from the leader) the log becomes empty.
 * RC_OK, RC_BADARG when m->index is not past the current snapshot, RC_NOMEM. */
int node_log_put_snapshot(struct node_log *log, struct pst_batch *b,
                          const struct raft_snapshot_meta *m);
/* A snapshot received from the leader is installed: record m and delete the WHOLE stable
 * log (entries past m->index too, raft.h Ready.snapshot). RC_OK, RC_NOMEM. */
int node_log_put_install(struct node_log *log, struct pst_batch *b,
                         const struct raft_snapshot_meta *m);

#endif
