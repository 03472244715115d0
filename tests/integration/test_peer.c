/*
 * test_peer.c - the peer transport's front door, against the real binary: the cluster port
 * admits only a member that proves the cluster secret (HMAC-SHA256 challenge), drops
 * malformed messages without dying, and a client-port connection can never run RAFT.*.
 * Also the cluster options' startup checks and the single-node shape of the cluster
 * commands (INFO replication, CFG.HEALTH, CFG.CLUSTER).
 *
 * The real multi-node behaviour (failover, partitions, membership) is tested in
 * tests/cluster/ with several processes.
 */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"

#define SECRET "itest-secret-123"

static struct itest_srv srv;
static int cport;
static char cport_s[16];

static void teardown(void) { itest_fini(); }

static void start_clustered(void)
{
    cport = itest_free_port();
    snprintf(cport_s, sizeof cport_s, "%d", cport);
    const char *extra[] = {"--cluster-secret", SECRET, "--cluster-port", cport_s, NULL};
    cr_assert_eq(itest_start(&srv, extra), 0, "server did not start");
}

static void mac_hex(const char *secret, const char *nonce, const char *from, const char *to,
                    char out[65])
{
    char msg[256];
    int n = snprintf(msg, sizeof msg, "%s|%s|%s", nonce, from, to);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg, (size_t)n, mac,
         &mlen);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

/* HELLO as node `from` to node 1 and answer the challenge with `secret`; returns the
 * formatted AUTH reply. */
/* The server's settings that decide how entries apply, as RAFT.HELLO carries them (the
 * defaults: the test servers set none of them). */
#define LIMITS "max-value-size=1048576,history-max-versions=100,audit-max-records=1000000," \
               "snapshots-max=1000,rollback-max-keys=100000"

static char *handshake(struct itest_conn *c, const char *from, const char *secret)
{
    const char *hello[] = {"RAFT.HELLO", "raftconf/2", from, "1", "127.0.0.1:1", LIMITS, NULL};
    struct itest_reply *r = itest_callv_r(c, hello);
    cr_assert(r && r->type == IT_BULK && r->len == 32, "HELLO must answer a 32-hex nonce");
    char mac[65];
    mac_hex(secret, r->str, from, "1", mac);
    itest_reply_free(r);
    const char *auth[] = {"RAFT.AUTH", mac, NULL};
    return itest_callv(c, auth);
}

static long long info_field(const char *section, const char *field)
{
    struct itest_conn *c = itest_connect(srv.port);
    cr_assert(c);
    char line[64];
    snprintf(line, sizeof line, "INFO %s", section);
    struct itest_reply *r = itest_call_r(c, line);
    cr_assert(r && r->str);
    char key[96];
    snprintf(key, sizeof key, "\n%s:", field);
    const char *p = strstr(r->str, key);
    cr_assert(p, "INFO %s has no %s:\n%s", section, field, r->str);
    long long v = atoll(p + strlen(key));
    itest_reply_free(r);
    itest_close(c);
    return v;
}

TestSuite(peer, .fini = teardown, .timeout = 60);

Test(peer, client_port_never_runs_raft_commands)
{
    start_clustered();
    struct itest_conn *c = itest_connect(srv.port);
    cr_assert(c);
    ITEST_EXPECT_PREFIX(c, "RAFT.MSG abc", "-ERR unknown command 'RAFT.MSG'");
    ITEST_EXPECT_PREFIX(c, "RAFT.HELLO raftconf/2 2 1 x " LIMITS, "-ERR unknown command");
    ITEST_EXPECT(c, "PING", "+PONG");
    itest_close(c);
}

Test(peer, messages_before_auth_are_refused_and_closed)
{
    start_clustered();
    struct itest_conn *c = itest_connect(cport);
    cr_assert(c, "cluster port %d not open", cport);
    ITEST_EXPECT(c, "RAFT.MSG abc", "-ERR authenticate first (RAFT.HELLO, RAFT.AUTH)");
    cr_assert(itest_wait_eof(c, 3000), "an unauthenticated peer must be disconnected");
    itest_close(c);
    c = itest_connect(cport); /* a HELLO for another node id */
    ITEST_EXPECT(c, "RAFT.HELLO raftconf/2 2 7 x " LIMITS, "-ERR wrong node: this is node 1");
    cr_assert(itest_wait_eof(c, 3000));
    itest_close(c);
    c = itest_connect(cport); /* another protocol */
    ITEST_EXPECT_PREFIX(c, "RAFT.HELLO raftconf/0 2 1 x " LIMITS, "-ERR bad RAFT.HELLO");
    itest_close(c);
    c = itest_connect(cport); /* the version before settings were exchanged */
    ITEST_EXPECT(c, "RAFT.HELLO raftconf/1 2 1 x",
                 "-ERR bad RAFT.HELLO (protocol raftconf/2 expected)");
    itest_close(c);
}

/* A peer whose settings would make it apply the same log differently (a value refused on
 * one node and stored on another, history pruned sooner...) is refused before the
 * challenge, with the setting named, and disconnected. */
Test(peer, peer_with_other_apply_settings_is_refused_naming_the_setting)
{
    start_clustered();
    struct itest_conn *c = itest_connect(cport);
    cr_assert(c);
    ITEST_EXPECT(c,
                 "RAFT.HELLO raftconf/2 2 1 x max-value-size=1048576,history-max-versions=50,"
                 "audit-max-records=1000000,snapshots-max=1000,rollback-max-keys=100000",
                 "-ERR settings that decide how entries apply differ: peer has "
                 "history-max-versions=50, this node 100 (history-max-versions must be the "
                 "same on every node)");
    cr_assert(itest_wait_eof(c, 3000), "a peer with other settings must be disconnected");
    itest_close(c);
    c = itest_connect(cport);
    ITEST_EXPECT(c, "RAFT.HELLO raftconf/2 2 1 x max-value-size=1048576",
                 "-ERR settings that decide how entries apply differ: peer sent "
                 "'max-value-size=1048576', this node has '" LIMITS "'");
    itest_close(c);
    /* The same settings get the challenge. */
    c = itest_connect(cport);
    char *got = handshake(c, "2", SECRET);
    cr_assert_str_eq(got, "+OK");
    free(got);
    itest_close(c);
}

Test(peer, wrong_secret_is_refused_and_counted)
{
    start_clustered();
    long long before = info_field("raft", "peer_auth_failures");
    struct itest_conn *c = itest_connect(cport);
    char *got = handshake(c, "2", "not-the-secret");
    cr_assert_str_eq(got, "-ERR cluster secret mismatch");
    free(got);
    cr_assert(itest_wait_eof(c, 3000), "a peer with the wrong secret must be disconnected");
    itest_close(c);
    cr_assert_eq(info_field("raft", "peer_auth_failures"), before + 1);
    /* A MAC computed for another nonce (replay) fails the same way. */
    c = itest_connect(cport);
    const char *hello[] = {"RAFT.HELLO", "raftconf/2", "2", "1", "x", LIMITS, NULL};
    char *nonce = itest_callv(c, hello);
    char mac[65];
    mac_hex(SECRET, "00000000000000000000000000000000", "2", "1", mac);
    const char *auth[] = {"RAFT.AUTH", mac, NULL};
    got = itest_callv(c, auth);
    cr_assert_str_eq(got, "-ERR cluster secret mismatch", "replayed MAC accepted (%s)", nonce);
    free(got);
    free(nonce);
    itest_close(c);
}

Test(peer, malformed_messages_are_dropped_and_counted)
{
    start_clustered();
    struct itest_conn *c = itest_connect(cport);
    char *got = handshake(c, "2", SECRET);
    cr_assert_str_eq(got, "+OK");
    free(got);
    long long bad = info_field("raft", "peer_msgs_bad");
    /* garbage, an empty frame, and a frame with a flipped checksum byte */
    unsigned char frame[64] = {1, 1, 0, 0, 0, 'M'};
    const char *a1[] = {"RAFT.MSG", "garbage", NULL};
    const char *argv[2] = {"RAFT.MSG", (const char *)frame};
    size_t lens[2] = {8, sizeof frame};
    cr_assert_eq(itest_send_argv(c, 2, a1, NULL), 0);
    lens[1] = 0;
    cr_assert_eq(itest_send_argv(c, 2, argv, lens), 0);
    lens[1] = sizeof frame;
    cr_assert_eq(itest_send_argv(c, 2, argv, lens), 0);
    for (int i = 0; i < 50 && info_field("raft", "peer_msgs_bad") < bad + 3; i++)
        usleep(20000);
    cr_assert_eq(info_field("raft", "peer_msgs_bad"), bad + 3);
    /* the connection stays (RESP framing is intact) and the server serves clients */
    cr_assert(!itest_wait_eof(c, 200), "a bad message must not cost the connection");
    struct itest_conn *k = itest_connect(srv.port);
    ITEST_EXPECT(k, "SET /peer/after ok", "+OK");
    ITEST_EXPECT(k, "GET /peer/after", "\"ok\"");
    itest_close(k);
    itest_close(c);
}

/* Run the binary with argv and return its exit code (bounded: 10 s). */
static int run_exit_code(const char *const *args, char *out, size_t outlen)
{
    char path[] = "/tmp/raftconf-peer-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    const char *argv[32] = {itest_bin()};
    int n = 1;
    for (; args[n - 1] && n < 31; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    pid_t pid;
    cr_assert_eq(posix_spawn(&pid, itest_bin(), &fa, NULL, (char *const *)argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    int st = 0, i = 0;
    while (waitpid(pid, &st, WNOHANG) == 0 && i++ < 100)
        usleep(100000);
    if (i > 100) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    ssize_t got = pread(fd, out, outlen - 1, 0);
    out[got > 0 ? got : 0] = '\0';
    close(fd);
    unlink(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(peer, multi_node_cluster_requires_a_secret)
{
    char out[2048];
    const char *a[] = {"--port", "1", "--node-id", "1", "--initial-cluster",
                       "1=127.0.0.1:7001,2=127.0.0.1:7002", NULL};
    cr_assert_eq(run_exit_code(a, out, sizeof out), 2, "output: %s", out);
    cr_assert(strstr(out, "cluster-secret is required"), "output: %s", out);
    const char *b[] = {"--initial-cluster", "1=127.0.0.1:7001,1=127.0.0.1:7002",
                       "--cluster-secret", "x", NULL};
    cr_assert_eq(run_exit_code(b, out, sizeof out), 2, "output: %s", out);
    cr_assert(strstr(out, "appears twice"), "output: %s", out);
    const char *c[] = {"--initial-cluster", "1=127.0.0.1", "--cluster-secret", "x", NULL};
    cr_assert_eq(run_exit_code(c, out, sizeof out), 2, "output: %s", out);
    cr_assert(strstr(out, "initial-cluster: bad"), "output: %s", out);
}

Test(peer, single_node_cluster_commands)
{
    start_clustered();
    struct itest_conn *c = itest_connect(srv.port);
    ITEST_EXPECT(c, "CFG.HEALTH", "+OK");
    char *info = itest_call(c, "INFO replication");
    cr_assert(strstr(info, "role:master") && strstr(info, "connected_slaves:0"), "%s", info);
    free(info);
    char *nodes = itest_call(c, "CFG.CLUSTER NODES");
    cr_assert(strstr(nodes, "1 127.0.0.1:") && strstr(nodes, "myself,leader,voter"), "%s",
              nodes);
    free(nodes);
    ITEST_EXPECT_PREFIX(c, "CFG.CLUSTER TRANSFER 9", "-ERR");
    ITEST_EXPECT_PREFIX(c, "CFG.CLUSTER ADD 0 127.0.0.1:1", "-ERR node id must be");
    ITEST_EXPECT_PREFIX(c, "CFG.CLUSTER ADD 2 nohostport", "-ERR bad address");
    ITEST_EXPECT_PREFIX(c, "CFG.CLUSTER FOO", "-ERR unknown subcommand");
    ITEST_EXPECT(c, "CONFIG GET cluster-secret", "[\"cluster-secret\", \"(set)\"]");
    itest_close(c);
}
