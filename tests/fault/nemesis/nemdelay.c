/*
 * nemdelay.c - delay and reorder packets with NFQUEUE, for the nemesis suite (this kernel
 * has no netem qdisc, so `tc qdisc add ... netem` is not available).
 *
 *   nemdelay --queue N --delay-ms D [--jitter-ms J] [--seed S]
 *
 * Binds NFQUEUE queue N of the network namespace it runs in (the harness starts it with
 * `ip netns exec <node-ns>` and points an iptables `-j NFQUEUE --queue-num N
 * --queue-bypass` rule at it). Every packet is held for D + uniform[0, J] ms and then
 * accepted; packets with different draws overtake each other, so the stream is reordered
 * as well as delayed. TCP turns both into latency, retransmissions and out-of-order
 * delivery; nothing is lost unless the holding queue is full.
 *
 * Invariants: at most HELD_MAX packets are held (beyond that a packet is accepted at once,
 * and the kernel queue is fail-open, so a full queue never drops); delays are bounded by
 * DELAY_MAX_MS; on SIGTERM/SIGINT every held packet is accepted before exit; with
 * --queue-bypass in the rule, packets pass untouched once the program is gone. Prints
 * "nemdelay: ready" on stdout once bound and a one-line count at exit.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HELD_MAX 65536
#define DELAY_MAX_MS 10000
#define QUEUE_MAXLEN 8192

struct held {
    uint64_t due_us;
    uint32_t id;
};

static struct held heap[HELD_MAX];
static size_t n_held;
static uint64_t rng;
static int delay_ms, jitter_ms;
static unsigned long long n_seen, n_held_total, n_passed_full;
static volatile sig_atomic_t stop;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t next_rand(void) /* splitmix64 */
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void heap_push(struct held h)
{
    size_t i = n_held++;
    heap[i] = h;
    while (i > 0 && heap[(i - 1) / 2].due_us > heap[i].due_us) {
        struct held t = heap[i];
        heap[i] = heap[(i - 1) / 2];
        heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static struct held heap_pop(void)
{
    struct held top = heap[0];
    heap[0] = heap[--n_held];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n_held && heap[l].due_us < heap[m].due_us)
            m = l;
        if (r < n_held && heap[r].due_us < heap[m].due_us)
            m = r;
        if (m == i)
            break;
        struct held t = heap[i];
        heap[i] = heap[m];
        heap[m] = t;
        i = m;
    }
    return top;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa,
                     void *data)
{
    (void)msg;
    (void)data;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (!ph)
        return 0;
    uint32_t id = ntohl(ph->packet_id);
    n_seen++;
    if (n_held >= HELD_MAX) {
        n_passed_full++;
        return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
    }
    uint64_t d = (uint64_t)delay_ms * 1000u;
    if (jitter_ms > 0)
        d += next_rand() % ((uint64_t)jitter_ms * 1000u + 1);
    heap_push((struct held){now_us() + d, id});
    n_held_total++;
    return 0;
}

static void release_due(struct nfq_q_handle *qh, uint64_t until_us)
{
    while (n_held > 0 && heap[0].due_us <= until_us) {
        struct held h = heap_pop();
        nfq_set_verdict(qh, h.id, NF_ACCEPT, 0, NULL);
    }
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int parse_args(int argc, char **argv, int *queue)
{
    *queue = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        long v = strtol(argv[i + 1], NULL, 10);
        if (strcmp(argv[i], "--queue") == 0 && v >= 0 && v <= 65535)
            *queue = (int)v;
        else if (strcmp(argv[i], "--delay-ms") == 0 && v >= 0 && v <= DELAY_MAX_MS)
            delay_ms = (int)v;
        else if (strcmp(argv[i], "--jitter-ms") == 0 && v >= 0 && v <= DELAY_MAX_MS)
            jitter_ms = (int)v;
        else if (strcmp(argv[i], "--seed") == 0)
            rng = (uint64_t)strtoull(argv[i + 1], NULL, 10);
        else
            return -1;
    }
    return (argc % 2 == 1 && *queue >= 0) ? 0 : -1;
}

static void run(struct nfq_handle *h, struct nfq_q_handle *qh)
{
    char buf[65536] __attribute__((aligned));
    int fd = nfq_fd(h);
    while (!stop) {
        int timeout_ms = 100;
        if (n_held > 0) {
            uint64_t now = now_us();
            timeout_ms = heap[0].due_us <= now ? 0 : (int)((heap[0].due_us - now) / 1000u);
            if (timeout_ms > 100)
                timeout_ms = 100;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, timeout_ms);
        if (pr > 0 && (p.revents & POLLIN)) {
            ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0)
                nfq_handle_packet(h, buf, (int)n);
            else if (n < 0 && errno == ENOBUFS)
                fprintf(stderr, "nemdelay: kernel queue overflow (fail-open)\n");
        }
        release_due(qh, now_us());
    }
    release_due(qh, UINT64_MAX); /* hand back everything still held */
}

int main(int argc, char **argv)
{
    int queue;
    if (parse_args(argc, argv, &queue) != 0) {
        fprintf(stderr, "usage: nemdelay --queue N --delay-ms D [--jitter-ms J] [--seed S]"
                        " (D, J <= %d)\n", DELAY_MAX_MS);
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    struct nfq_handle *h = nfq_open();
    if (!h) {
        perror("nemdelay: nfq_open");
        return 1;
    }
    struct nfq_q_handle *qh = nfq_create_queue(h, (uint16_t)queue, on_packet, NULL);
    if (!qh) {
        perror("nemdelay: nfq_create_queue");
        nfq_close(h);
        return 1;
    }
    if (nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0 ||
        nfq_set_queue_maxlen(qh, QUEUE_MAXLEN) < 0)
        perror("nemdelay: queue setup");
    nfq_set_queue_flags(qh, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_FAIL_OPEN);
    printf("nemdelay: ready queue=%d delay=%d jitter=%d\n", queue, delay_ms, jitter_ms);
    fflush(stdout);
    run(h, qh);
    printf("nemdelay: seen %llu held %llu passed-when-full %llu\n", n_seen, n_held_total,
           n_passed_full);
    nfq_destroy_queue(qh);
    nfq_close(h);
    return 0;
}
