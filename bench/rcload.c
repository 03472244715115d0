/*
 * bench/rcload.c - a small RESP load generator for the workloads redis-benchmark cannot
 * drive: a command sent once per connection before the load (READONLY for stale follower
 * reads), a read/write mix (90% GET / 10% SET), and a write loop that survives a node's
 * death (failover measurements: it logs every request and reconnects to the next port).
 *
 *   rcload -p PORT[,PORT...] [-c clients] [-P pipeline] [-d seconds | -n requests]
 *          [-r keyspace] [-s value_bytes] [-m read_percent] [-x get|cfg] [-R]
 *          [-l logfile] [-a]
 *
 *   -c 50      connections; connection i talks to PORT[i % nports] (127.0.0.1 only)
 *   -P 1       requests in flight per connection (pipeline depth)
 *   -d 5       run for this many seconds (default), or -n N requests in total
 *   -r 100000  keys key:000000000000 .. key:(r-1), 12 digits as redis-benchmark's -r
 *   -s 64      value size in bytes
 *   -m 100     percent of reads (GET); the rest are writes (SET)
 *   -x get     command family: get (GET/SET) or cfg (CFG.GET/CFG.SET)
 *   -R         send READONLY on each connection before the load (stale local reads)
 *   -l FILE    log every completed request: "send_ns done_ns status conn port\n" with
 *              CLOCK_REALTIME nanoseconds (comparable with `date +%s%N`) and status
 *              0 = ok, 1 = error reply, 2 = lost (connection closed with it in flight)
 *   -a         on a closed connection, reconnect to the next port (every 20 ms until one
 *              accepts) instead of stopping that connection
 *
 * SIGINT/SIGTERM end the run early (the summary is still printed). Output, one line:
 *   ops=N secs=S rps=R p50_ms=A p99_ms=B errors=E lost=L cpu_pct=C
 * where latency is per request (send to reply), rps counts ok and error replies, and
 * cpu_pct is this process's own user+system CPU over the run (100 = one core).
 *
 * Invariants: a connection's in-flight requests are answered in order (RESP), so their
 * send times are a FIFO ring of at most `pipeline` entries; a reply is parsed only when
 * complete in the input buffer (no partial state), bounded by INBUF_MAX.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PORTS_MAX 16
#define CLIENTS_MAX 4096
#define PIPELINE_MAX 1024
#define VALUE_MAX 65536
#define INBUF_MAX (1u << 20)
#define REPLY_DEPTH_MAX 8
#define RECONNECT_MS 20

enum { ST_OK = 0, ST_ERR = 1, ST_LOST = 2 };

struct conn {
	int fd;             /* -1 while disconnected */
	int port_idx;       /* index into opt.ports */
	int prelude;        /* READONLY sent, its reply not read yet */
	uint64_t retry_ns;  /* when disconnected: next connect attempt (monotonic) */
	uint64_t sent_ns[PIPELINE_MAX]; /* FIFO of in-flight send times (realtime) */
	int head, inflight;
	char *in;
	size_t in_len;
	char *out;
	size_t out_len, out_off;
};

static struct {
	int ports[PORTS_MAX];
	int nports, clients, pipeline, duration_s, keyspace, value_len, read_pct;
	long long requests;
	int cfg, readonly, reconnect;
	const char *logfile;
} opt = { .clients = 50, .pipeline = 1, .duration_s = 5, .keyspace = 100000,
	  .value_len = 64, .read_pct = 100 };

static volatile sig_atomic_t stop_flag;
static struct conn *conns;
static int ep = -1;
static char value[VALUE_MAX + 1];
static uint32_t *lat_us;      /* one latency per completed request */
static size_t lat_len, lat_cap;
static long long issued, errors, lost;
static FILE *log_fp;
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static size_t out_cap;        /* per connection: pipeline x largest request + READONLY */

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: rcload -p PORT[,PORT...] [-c clients] [-P pipeline] "
		"[-d seconds | -n requests] [-r keyspace] [-s value_bytes] [-m read_percent] "
		"[-x get|cfg] [-R] [-l logfile] [-a]\n");
	exit(2);
}

static int parse_int(const char *s, int lo, int hi)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < lo || v > hi)
		usage();
	return (int)v;
}

static void parse_ports(char *s)
{
	for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
		if (opt.nports == PORTS_MAX)
			usage();
		opt.ports[opt.nports++] = parse_int(tok, 1, 65535);
	}
}

static void parse_args(int argc, char **argv)
{
	int c;
	while ((c = getopt(argc, argv, "p:c:P:d:n:r:s:m:x:Rl:a")) != -1) {
		switch (c) {
		case 'p': parse_ports(optarg); break;
		case 'c': opt.clients = parse_int(optarg, 1, CLIENTS_MAX); break;
		case 'P': opt.pipeline = parse_int(optarg, 1, PIPELINE_MAX); break;
		case 'd': opt.duration_s = parse_int(optarg, 1, 86400); break;
		case 'n': opt.requests = parse_int(optarg, 1, 2000000000); break;
		case 'r': opt.keyspace = parse_int(optarg, 1, 1000000000); break;
		case 's': opt.value_len = parse_int(optarg, 1, VALUE_MAX); break;
		case 'm': opt.read_pct = parse_int(optarg, 0, 100); break;
		case 'x':
			if (strcmp(optarg, "get") && strcmp(optarg, "cfg"))
				usage();
			opt.cfg = !strcmp(optarg, "cfg");
			break;
		case 'R': opt.readonly = 1; break;
		case 'l': opt.logfile = optarg; break;
		case 'a': opt.reconnect = 1; break;
		default: usage();
		}
	}
	if (opt.nports == 0 || optind != argc)
		usage();
}

/* Connects conn c to its current port; 0 on success, -1 (fd stays -1) otherwise. */
static int conn_open(struct conn *c)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	sa.sin_port = htons((uint16_t)opt.ports[c->port_idx]);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		die("epoll_ctl");
	c->fd = fd;
	c->in_len = c->out_len = c->out_off = 0;
	c->head = c->inflight = 0;
	c->prelude = 0;
	return 0;
}

static void out_append(struct conn *c, const char *s, size_t n)
{
	if (c->out_len + n > out_cap) {
		fprintf(stderr, "rcload: output buffer overflow\n");
		exit(1);
	}
	memcpy(c->out + c->out_len, s, n);
	c->out_len += n;
}

static void out_bulk(struct conn *c, const char *s, size_t n)
{
	char hdr[32];
	int h = snprintf(hdr, sizeof(hdr), "$%zu\r\n", n);
	out_append(c, hdr, (size_t)h);
	out_append(c, s, n);
	out_append(c, "\r\n", 2);
}

/* Queues one GET or SET on a random key and records its send time. */
static void queue_request(struct conn *c)
{
	char key[32];
	int is_read = (int)(next_rand() % 100) < opt.read_pct;
	int klen = snprintf(key, sizeof(key), "key:%012llu",
			    (unsigned long long)(next_rand() % (uint64_t)opt.keyspace));
	const char *cmd = is_read ? (opt.cfg ? "CFG.GET" : "GET") : (opt.cfg ? "CFG.SET" : "SET");
	out_append(c, is_read ? "*2\r\n" : "*3\r\n", 4);
	out_bulk(c, cmd, strlen(cmd));
	out_bulk(c, key, (size_t)klen);
	if (!is_read)
		out_bulk(c, value, (size_t)opt.value_len);
	c->sent_ns[(c->head + c->inflight) % PIPELINE_MAX] = now_ns(CLOCK_REALTIME);
	c->inflight++;
	issued++;
}

static int want_more(uint64_t deadline_ns)
{
	if (stop_flag)
		return 0;
	if (opt.requests > 0)
		return issued < opt.requests;
	return now_ns(CLOCK_MONOTONIC) < deadline_ns;
}

/* Flushes c's output; returns -1 when the connection failed. */
static int conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (w < 0 && errno == EAGAIN) {
			struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
			epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			return 0;
		}
		if (w <= 0)
			return -1;
		c->out_off += (size_t)w;
	}
	c->out_off = c->out_len = 0;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	return 0;
}

static void fill(struct conn *c, uint64_t deadline_ns)
{
	if (c->fd < 0 || c->prelude)
		return;
	while (c->inflight < opt.pipeline && want_more(deadline_ns))
		queue_request(c);
}

/* Length of one complete RESP2/RESP3 reply at p, 0 when incomplete, -1 when malformed. */
static long reply_len(const char *p, size_t n, int depth)
{
	const char *nl = memchr(p, '\n', n);
	if (!nl)
		return 0;
	long hdr = nl - p + 1;
	long long v;
	switch (p[0]) {
	case '+': case '-': case ':': case '_': case ',': case '#': case '(':
		return hdr;
	case '$': case '=': case '!':
		v = atoll(p + 1);
		if (v < 0)
			return hdr;
		return (size_t)hdr + (size_t)v + 2 <= n ? hdr + v + 2 : 0;
	case '*': case '~': case '>': case '%': case '|': {
		if (depth >= REPLY_DEPTH_MAX)
			return -1;
		v = atoll(p + 1);
		if (p[0] == '%' || p[0] == '|')
			v *= 2;
		long off = hdr;
		for (long long i = 0; i < v; i++) {
			long l = reply_len(p + off, n - (size_t)off, depth + 1);
			if (l <= 0)
				return l;
			off += l;
		}
		return off;
	}
	default:
		return -1;
	}
}

static void record(struct conn *c, int status, uint64_t done_ns)
{
	uint64_t sent = c->sent_ns[c->head];
	c->head = (c->head + 1) % PIPELINE_MAX;
	c->inflight--;
	if (status == ST_LOST) {
		lost++;
	} else {
		if (status == ST_ERR)
			errors++;
		if (lat_len == lat_cap) {
			lat_cap = lat_cap ? lat_cap * 2 : 1 << 20;
			lat_us = realloc(lat_us, lat_cap * sizeof(*lat_us));
			if (!lat_us)
				die("realloc");
		}
		uint64_t us = (done_ns - sent) / 1000;
		lat_us[lat_len++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	}
	if (log_fp)
		fprintf(log_fp, "%llu %llu %d %d %d\n", (unsigned long long)sent,
			(unsigned long long)done_ns, status, (int)(c - conns),
			opt.ports[c->port_idx]);
}

static void conn_close(struct conn *c)
{
	uint64_t t = now_ns(CLOCK_REALTIME);
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	while (c->inflight > 0)
		record(c, ST_LOST, t);
	c->port_idx = (c->port_idx + 1) % opt.nports;
	c->retry_ns = now_ns(CLOCK_MONOTONIC);
}

/* Reads and consumes complete replies; returns -1 when the connection is gone. */
static int conn_read(struct conn *c)
{
	if (c->in_len == INBUF_MAX)
		return -1;
	ssize_t r = read(c->fd, c->in + c->in_len, INBUF_MAX - c->in_len);
	if (r < 0 && errno == EAGAIN)
		return 0;
	if (r <= 0)
		return -1;
	c->in_len += (size_t)r;
	size_t off = 0;
	uint64_t t = now_ns(CLOCK_REALTIME);
	for (;;) {
		long l = reply_len(c->in + off, c->in_len - off, 0);
		if (l < 0)
			return -1;
		if (l == 0)
			break;
		if (c->prelude) {
			if (c->in[off] == '-') {
				fprintf(stderr, "rcload: READONLY refused: %.*s\n", (int)l, c->in + off);
				exit(1);
			}
			c->prelude = 0;
		} else if (c->inflight > 0) {
			record(c, c->in[off] == '-' ? ST_ERR : ST_OK, t);
		}
		off += (size_t)l;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return 0;
}

static void conn_start(struct conn *c, uint64_t deadline_ns)
{
	if (conn_open(c) != 0) {
		c->port_idx = (c->port_idx + 1) % opt.nports;
		c->retry_ns = now_ns(CLOCK_MONOTONIC) + RECONNECT_MS * 1000000ull;
		return;
	}
	if (opt.readonly) {
		out_append(c, "*1\r\n$8\r\nREADONLY\r\n", 18);
		c->prelude = 1;
	}
	fill(c, deadline_ns);
	if (conn_flush(c) != 0)
		conn_close(c);
}

static int busy(void)
{
	for (int i = 0; i < opt.clients; i++)
		if (conns[i].inflight > 0 || conns[i].prelude)
			return 1;
	return 0;
}

static int any_open(void)
{
	for (int i = 0; i < opt.clients; i++)
		if (conns[i].fd >= 0)
			return 1;
	return 0;
}

static void retry_closed(uint64_t deadline_ns)
{
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	for (int i = 0; i < opt.clients; i++)
		if (conns[i].fd < 0 && opt.reconnect && now >= conns[i].retry_ns &&
		    want_more(deadline_ns))
			conn_start(&conns[i], deadline_ns);
}

static void run_loop(uint64_t deadline_ns)
{
	struct epoll_event evs[256];
	for (;;) {
		if (!want_more(deadline_ns) && !busy())
			return;
		if (stop_flag || (!opt.reconnect && !any_open()))
			return;
		int n = epoll_wait(ep, evs, 256, 5);
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->fd < 0)
				continue;
			int bad = 0;
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				bad = conn_read(c);
			if (!bad && (evs[i].events & EPOLLOUT))
				bad = conn_flush(c);
			if (!bad) {
				fill(c, deadline_ns);
				bad = conn_flush(c);
			}
			if (bad)
				conn_close(c);
		}
		retry_closed(deadline_ns);
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_ms(double p)
{
	if (lat_len == 0)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)(lat_len - 1) + 0.5);
	return lat_us[i] / 1000.0;
}

static void report(uint64_t t0_ns)
{
	double secs = (double)(now_ns(CLOCK_MONOTONIC) - t0_ns) / 1e9;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		     (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	qsort(lat_us, lat_len, sizeof(*lat_us), cmp_u32);
	printf("ops=%zu secs=%.3f rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%lld lost=%lld "
	       "cpu_pct=%.0f\n", lat_len, secs, secs > 0 ? (double)lat_len / secs : 0,
	       pct_ms(50), pct_ms(99), errors, lost, secs > 0 ? 100.0 * cpu / secs : 0);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	memset(value, 'x', (size_t)opt.value_len);
	rng ^= (uint64_t)getpid() << 20;
	if (opt.logfile && !(log_fp = fopen(opt.logfile, "w")))
		die(opt.logfile);
	ep = epoll_create1(0);
	conns = calloc((size_t)opt.clients, sizeof(*conns));
	if (ep < 0 || !conns)
		die("setup");
	out_cap = (size_t)opt.pipeline * ((size_t)opt.value_len + 128) + 64;
	uint64_t t0 = now_ns(CLOCK_MONOTONIC);
	uint64_t deadline = t0 + (uint64_t)opt.duration_s * 1000000000ull;
	for (int i = 0; i < opt.clients; i++) {
		struct conn *c = &conns[i];
		c->fd = -1;
		c->port_idx = i % opt.nports;
		c->in = malloc(INBUF_MAX);
		c->out = malloc(out_cap);
		if (!c->in || !c->out)
			die("malloc");
		conn_start(c, deadline);
		if (c->fd < 0 && !opt.reconnect) {
			fprintf(stderr, "rcload: cannot connect to 127.0.0.1:%d\n",
				opt.ports[c->port_idx]);
			return 1;
		}
	}
	run_loop(deadline);
	report(t0);
	if (log_fp)
		fclose(log_fp);
	return 0;
}
