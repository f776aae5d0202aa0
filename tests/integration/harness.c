#include "harness.h"
#include "../listening.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef ENVD_SOURCE_DIR
#error "ENVD_SOURCE_DIR must be defined"
#endif

/* ENVD_TEST_EXTERNAL=host:port points every test at a server started by
 * hand (a real envd, for a manual run) instead of a reference server;
 * ENVD_TEST_EXTERNAL_ROOT names the directory that server sees as "/", for
 * the tests that put files on its disk directly. The http and token a test
 * asks for are not applied, so tests that need h2c/gRPC or a token fail
 * there: the run says so on stderr every time. */
static int external_server(test_server *s, const char *ext, const char *http, const char *token)
{
    const char *colon = strrchr(ext, ':');
    int port = colon ? atoi(colon + 1) : 0;
    const char *root = getenv("ENVD_TEST_EXTERNAL_ROOT");
    if (port <= 0 || port > 65535 || strlen(ext) >= sizeof(s->addr) ||
        (root && strlen(root) >= sizeof(s->root))) {
        fprintf(stderr, "ENVD_TEST_EXTERNAL must be host:port (got '%s')\n", ext);
        return -1;
    }
    snprintf(s->addr, sizeof(s->addr), "%s", ext);
    s->port = port;
    if (root)
        snprintf(s->root, sizeof(s->root), "%s", root);
    s->external = 1;
    fprintf(stderr,
            "*** ENVD_TEST_EXTERNAL: testing the server at %s, NOT a reference server; "
            "asked-for http=%s token=%s are not applied, server setup is skipped, "
            "disk root %s ***\n",
            ext, http, token ? "set" : "none", root ? root : "(unset: disk checks fail)");
    return 0;
}

int test_server_signal(test_server *s, int sig)
{
    if (s->external || s->pid <= 0) {
        fprintf(stderr, "*** cannot signal the server (%s): this test needs a reference server ***\n",
                s->external ? "ENVD_TEST_EXTERNAL" : "not started");
        return -1;
    }
    return kill(s->pid, sig);
}

int test_server_start(test_server *s, const char *http, const char *token)
{
    return test_server_start_args(s, http, token, NULL);
}

int test_server_start_args(test_server *s, const char *http, const char *token,
                           const char *const *extra)
{
    memset(s, 0, sizeof(*s));
    const char *ext = getenv("ENVD_TEST_EXTERNAL");
    if (ext && *ext)
        return external_server(s, ext, http, token);
    snprintf(s->root, sizeof(s->root), "/tmp/envd-test-XXXXXX");
    if (!mkdtemp(s->root)) {
        perror("mkdtemp");
        return -1;
    }
    int out[2], in[2];
    if (pipe(out) != 0)
        return -1;
    if (pipe(in) != 0) {
        close(out[0]);
        close(out[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(in[0], 0);
        close(out[0]);
        close(out[1]);
        close(in[0]);
        close(in[1]);
        /* The server stops when our end of its stdin closes, so a test that
         * crashes never leaves it behind. */
        setenv("PEER_EXIT_ON_STDIN_EOF", "1", 1);
        const char *argv[32];
        int n = 0;
        argv[n++] = "node";
        argv[n++] = ENVD_SOURCE_DIR "/tests/peer/server.mjs";
        argv[n++] = "--port";
        argv[n++] = "0";
        argv[n++] = "--host";
        argv[n++] = "127.0.0.1";
        argv[n++] = "--root";
        argv[n++] = s->root;
        argv[n++] = "--http";
        argv[n++] = http;
        if (token) {
            argv[n++] = "--token";
            argv[n++] = token;
        }
        for (size_t i = 0; extra && extra[i] && n < 31; i++)
            argv[n++] = extra[i];
        argv[n] = NULL;
        execvp("node", (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    s->stdin_fd = in[1];
    fcntl(s->stdin_fd, F_SETFD, FD_CLOEXEC);
    s->pid = pid;
    char buf[256];
    s->port = test_read_listening_port(out[0], 20000, buf, sizeof(buf));
    close(out[0]);
    if (s->port <= 0) {
        fprintf(stderr, "reference server did not start (output: %s)\n", buf);
        test_server_stop(s);
        return -1;
    }
    snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", s->port);
    return 0;
}

void test_server_stop(test_server *s)
{
    if (s->external) {
        memset(s, 0, sizeof(*s)); /* not ours: nothing to stop or remove */
        return;
    }
    if (s->stdin_fd > 0) {
        close(s->stdin_fd);
        s->stdin_fd = 0;
    }
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        int st;
        for (int i = 0; i < 50; i++) {
            if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
                s->pid = 0;
                break;
            }
            usleep(100000);
        }
        if (s->pid > 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
        }
        s->pid = 0;
    }
    if (s->root[0]) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->root);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", s->root);
    }
}

envd_client *test_client(envd_runtime *rt, const test_server *s, envd_transport_kind kind,
                         const char *token)
{
    envd_config *cfg = envd_config_new();
    envd_config_set_domain(cfg, s->addr);
    envd_config_set_transport(cfg, kind);
    envd_config_set_request_timeout_ms(cfg, 20000);
    if (token)
        envd_config_set_runtime_token(cfg, token);
    envd_client *c = NULL;
    envd_error *err = NULL;
    envd_status st = envd_client_new(rt, "sbx-test", cfg, &c, &err);
    envd_config_free(cfg);
    if (st != ENVD_OK) {
        fprintf(stderr, "client: %s\n", err ? envd_error_message(err) : envd_strerror(st));
        envd_error_free(err);
        return NULL;
    }
    return c;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b)
        b[n] = 0;
    fclose(f);
    return b;
}

/* Replaces every @KEY@ in *s with val (reallocates). */
static void subst(char **s, const char *key, const char *val)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "@%s@", key);
    char *p;
    while ((p = strstr(*s, pat))) {
        size_t pre = (size_t)(p - *s), kl = strlen(pat), vl = strlen(val);
        char *n = malloc(strlen(*s) - kl + vl + 1);
        memcpy(n, *s, pre);
        memcpy(n + pre, val, vl);
        strcpy(n + pre + vl, p + kl);
        free(*s);
        *s = n;
    }
}

/* The gateway's TLS certificate: self-signed for 127.0.0.1, in dir/tls.crt
 * and dir/tls.key (the file a client names as its CA). */
static int gateway_cert(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
             "-keyout '%s/tls.key' -out '%s/tls.crt' 2>/dev/null",
             dir, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "openssl could not make the gateway's certificate\n");
        return -1;
    }
    return 0;
}

int test_gateway_start(test_gateway *g, const test_server *servers, const char *const *ids,
                       size_t n)
{
    memset(g, 0, sizeof(*g));
    snprintf(g->dir, sizeof(g->dir), "/tmp/envd-gw-XXXXXX");
    if (!mkdtemp(g->dir) || n == 0)
        return -1;
    char *conf = read_all(ENVD_SOURCE_DIR "/tests/gateway/nginx.conf.in");
    if (!conf)
        return -1;
    char ups[4096] = "", map[4096] = "", hashed[2048] = "", port[16];
    for (size_t i = 0; i < n; i++) {
        char line[256];
        snprintf(line, sizeof(line),
                 "  upstream sbx_%zu { server %s; keepalive 64; }\n"
                 "  upstream gsbx_%zu { server %s; keepalive 64; }\n",
                 i, servers[i].addr, i, servers[i].addr);
        strncat(ups, line, sizeof(ups) - strlen(ups) - 1);
        if (ids && ids[i]) {
            snprintf(line, sizeof(line), "    %s sbx_%zu;\n", ids[i], i);
            strncat(map, line, sizeof(map) - strlen(map) - 1);
        }
        snprintf(line, sizeof(line), "server %s; ", servers[i].addr);
        strncat(hashed, line, sizeof(hashed) - strlen(hashed) - 1);
    }
    subst(&conf, "HASHED", hashed);
    subst(&conf, "FLAKY", servers[0].addr);
    subst(&conf, "WORKER_CONNECTIONS", "16384");
    /* distinct free ports, each put in the template */
    struct {
        int *port;
        const char *name;
    } ports[] = {{&g->h1_port, "H1_PORT"},
                 {&g->h2_port, "H2_PORT"},
                 {&g->grpc_port, "GRPC_PORT"},
                 {&g->tls_port, "TLS_PORT"},
                 {&g->tls1_port, "TLS1_PORT"},
                 {&g->goaway_port, "GOAWAY_PORT"}};
    enum { NPORTS = sizeof ports / sizeof ports[0] };
    for (size_t i = 0; i < NPORTS; i++) {
        int taken;
        do {
            *ports[i].port = free_port();
            taken = 0;
            for (size_t j = 0; j < i; j++)
                taken |= *ports[j].port == *ports[i].port;
        } while (taken);
        snprintf(port, sizeof(port), "%d", *ports[i].port);
        subst(&conf, ports[i].name, port);
    }
    if (gateway_cert(g->dir) != 0) {
        free(conf);
        return -1;
    }
    subst(&conf, "DIR", g->dir);
    subst(&conf, "UPSTREAMS", ups);
    subst(&conf, "MAP", map);
    char path[300];
    snprintf(path, sizeof(path), "%s/nginx.conf", g->dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        free(conf);
        return -1;
    }
    fputs(conf, f);
    fclose(f);
    free(conf);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* A test that fails an assertion never reaches test_gateway_stop:
         * nginx goes with it rather than keep ctest's output pipe open
         * until the test's timeout. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) /* it died before the prctl */
            _exit(127);
        execlp("nginx", "nginx", "-p", g->dir, "-c", path, (char *)NULL);
        execl("/usr/sbin/nginx", "nginx", "-p", g->dir, "-c", path, (char *)NULL);
        _exit(127);
    }
    g->pid = pid;
    for (int i = 0; i < 100; i++) {
        int open = 1;
        for (size_t k = 0; k < NPORTS; k++)
            open &= port_open(*ports[k].port);
        if (open)
            return 0;
        usleep(50000);
    }
    fprintf(stderr, "nginx did not start (see %s/error.log)\n", g->dir);
    test_gateway_stop(g);
    return -1;
}

void test_gateway_stop(test_gateway *g)
{
    if (g->pid > 0) {
        kill(g->pid, SIGQUIT);
        int st;
        for (int i = 0; i < 50 && waitpid(g->pid, &st, WNOHANG) != g->pid; i++)
            usleep(100000);
        kill(g->pid, SIGKILL);
        waitpid(g->pid, &st, WNOHANG);
        g->pid = 0;
    }
    if (g->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", g->dir);
        g->dir[0] = 0;
    }
}

envd_client *test_gateway_client(envd_runtime *rt, int port, const char *id,
                                 envd_transport_kind kind, int h2c)
{
    test_server s;
    memset(&s, 0, sizeof(s));
    snprintf(s.addr, sizeof(s.addr), "127.0.0.1:%d", port);
    envd_config *cfg = envd_config_new();
    envd_config_set_domain(cfg, s.addr);
    envd_config_set_transport(cfg, kind);
    envd_config_set_request_timeout_ms(cfg, 20000);
    envd_config_set_h2c(cfg, h2c);
    envd_client *c = NULL;
    envd_error *err = NULL;
    if (envd_client_new(rt, id, cfg, &c, &err) != ENVD_OK) {
        fprintf(stderr, "client: %s\n", err ? envd_error_message(err) : "?");
        envd_error_free(err);
    }
    envd_config_free(cfg);
    return c;
}

static int cmp_ino(const void *a, const void *b)
{
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
    return x < y ? -1 : x > y;
}

/* The inodes of this process's sockets, sorted. */
static size_t own_sockets(unsigned long *ino, size_t cap)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < cap) {
        char path[300], link[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
        ssize_t k = readlink(path, link, sizeof(link) - 1);
        if (k <= 0)
            continue;
        link[k] = '\0';
        if (sscanf(link, "socket:[%lu]", &ino[n]) == 1)
            n++;
    }
    closedir(d);
    qsort(ino, n, sizeof(*ino), cmp_ino);
    return n;
}

/* Appends to hit[] the inodes of file's established connections to
 * loopback:port that are ours. */
static size_t tcp_conns_in(const char *file, const char *loopback, int port,
                           const unsigned long *own, size_t n_own, unsigned long *hit,
                           size_t n_hit, size_t cap)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return n_hit;
    char line[512];
    while (fgets(line, sizeof(line), f) && n_hit < cap) {
        unsigned lport, rport, st;
        unsigned long ino;
        char laddr[40], raddr[40];
        if (sscanf(line,
                   " %*d: %32[0-9A-Fa-f]:%x %32[0-9A-Fa-f]:%x %x %*x:%*x %*x:%*x %*x %*u %*u %lu",
                   laddr, &lport, raddr, &rport, &st, &ino) == 6 &&
            rport == (unsigned)port && st == 1 /* ESTABLISHED */ &&
            strcmp(raddr, loopback) == 0 && bsearch(&ino, own, n_own, sizeof(*own), cmp_ino))
            hit[n_hit++] = ino;
    }
    fclose(f);
    return n_hit;
}

int test_tcp_conns_to(int port)
{
    enum { MAX_FDS = 20000 };
    unsigned long *own = calloc(MAX_FDS, sizeof(*own));
    unsigned long *hit = calloc(MAX_FDS, sizeof(*hit));
    if (!own || !hit) {
        free(own);
        free(hit);
        return -1;
    }
    size_t n_own = own_sockets(own, MAX_FDS);
    size_t n = tcp_conns_in("/proc/net/tcp", "0100007F", port, own, n_own, hit, 0, MAX_FDS);
    n = tcp_conns_in("/proc/net/tcp6", "0000000000000000FFFF00000100007F", port, own, n_own, hit,
                     n, MAX_FDS);
    /* the table may change while it is read and list an entry twice */
    qsort(hit, n, sizeof(*hit), cmp_ino);
    int distinct = 0;
    for (size_t i = 0; i < n; i++)
        distinct += i == 0 || hit[i] != hit[i - 1];
    free(own);
    free(hit);
    return n_own ? distinct : -1;
}

long test_gateway_log_size(const test_gateway *g)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/access.log", g->dir);
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Calls fn for each log line past offset; -1 when there is no log. */
static int scan_log(const test_gateway *g, long offset,
                    void (*fn)(void *ud, int port, long conn, const char *id, int status),
                    void *ud)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/access.log", g->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    fseek(f, offset, SEEK_SET);
    int p, status;
    long conn;
    char id[128];
    while (fscanf(f, "%d %ld %127s %d", &p, &conn, id, &status) == 4)
        fn(ud, p, conn, id, status);
    fclose(f);
    return 0;
}

typedef struct req_count {
    int port, status, n;
    const char *id;
} req_count;

static void count_req(void *ud, int port, long conn, const char *id, int status)
{
    (void)conn;
    req_count *c = ud;
    if ((!c->port || c->port == port) && (!c->id || strcmp(c->id, id) == 0) &&
        (!c->status || c->status == status))
        c->n++;
}

int test_gateway_requests(const test_gateway *g, long offset, int port, const char *id,
                          int status)
{
    req_count c = {port, status, 0, id};
    return scan_log(g, offset, count_req, &c) == 0 ? c.n : -1;
}

typedef struct conn_set {
    int port;
    long *seen;
    size_t n, cap;
} conn_set;

static void add_conn(void *ud, int port, long conn, const char *id, int status)
{
    (void)id;
    (void)status;
    conn_set *s = ud;
    if (s->port && s->port != port)
        return;
    for (size_t i = 0; i < s->n; i++)
        if (s->seen[i] == conn)
            return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->seen = realloc(s->seen, s->cap * sizeof(*s->seen));
    }
    s->seen[s->n++] = conn;
}

int test_gateway_connections(const test_gateway *g, long offset, int port)
{
    conn_set s = {port, NULL, 0, 0};
    int rc = scan_log(g, offset, add_conn, &s);
    free(s.seen);
    return rc == 0 ? (int)s.n : -1;
}

int test_gateway_wait_requests(const test_gateway *g, long offset, int port, const char *id,
                               int status, int want)
{
    int n = -1;
    for (int i = 0; i < 300; i++) {
        n = test_gateway_requests(g, offset, port, id, status);
        if (n >= want)
            break;
        usleep(10000);
    }
    /* a line past the wanted count would be written by now, too */
    usleep(100000);
    return test_gateway_requests(g, offset, port, id, status);
}

int test_fx_direct(void **state, const char *token)
{
    test_fx *fx = calloc(1, sizeof(*fx));
    *state = fx;
    if (!fx || test_server_start(&fx->srv, "h1", token) != 0 ||
        envd_runtime_new(NULL, &fx->rt) != ENVD_OK)
        return -1;
    fx->c = test_client(fx->rt, &fx->srv, ENVD_TRANSPORT_CONNECT, token);
    return fx->c ? 0 : -1;
}

int test_fx_direct_h2c(void **state)
{
    test_fx *fx = calloc(1, sizeof(*fx));
    *state = fx;
    if (!fx || test_server_start(&fx->srv, "both", NULL) != 0 ||
        envd_runtime_new(NULL, &fx->rt) != ENVD_OK)
        return -1;
    fx->h2c = 1;
    envd_config *cfg = envd_config_new();
    envd_config_set_domain(cfg, fx->srv.addr);
    envd_config_set_transport(cfg, ENVD_TRANSPORT_CONNECT);
    envd_config_set_request_timeout_ms(cfg, 20000);
    envd_config_set_h2c(cfg, 1);
    envd_error *err = NULL;
    if (envd_client_new(fx->rt, "sbx-test", cfg, &fx->c, &err) != ENVD_OK) {
        fprintf(stderr, "client: %s\n", err ? envd_error_message(err) : "?");
        envd_error_free(err);
    }
    envd_config_free(cfg);
    return fx->c ? 0 : -1;
}

int test_fx_gateway(void **state, const char *id)
{
    test_fx *fx = calloc(1, sizeof(*fx));
    *state = fx;
    if (!fx || test_server_start(&fx->srv, "h1", NULL) != 0)
        return -1;
    const char *ids[] = {id};
    if (test_gateway_start(&fx->gw, &fx->srv, ids, 1) != 0)
        return -1;
    fx->has_gw = 1;
    if (envd_runtime_new(NULL, &fx->rt) != ENVD_OK)
        return -1;
    fx->c = test_gateway_client(fx->rt, fx->gw.h1_port, id, ENVD_TRANSPORT_CONNECT, 0);
    return fx->c ? 0 : -1;
}

int test_fx_teardown(void **state)
{
    test_fx *fx = *state;
    if (!fx)
        return 0;
    envd_client_free(fx->c);
    envd_runtime_free(fx->rt);
    if (fx->has_gw)
        test_gateway_stop(&fx->gw);
    test_server_stop(&fx->srv);
    free(fx);
    return 0;
}

static void *conn_sampler_main(void *arg)
{
    test_conn_sampler *s = arg;
    while (!s->stop) {
        int n = test_tcp_conns_to(s->port);
        if (n > s->peak)
            s->peak = n;
        usleep(2000);
    }
    return NULL;
}

int test_conn_sampler_start(test_conn_sampler *s, int port)
{
    memset(s, 0, sizeof(*s));
    s->port = port;
    return pthread_create(&s->th, NULL, conn_sampler_main, s) == 0 ? 0 : -1;
}

int test_conn_sampler_stop(test_conn_sampler *s)
{
    s->stop = 1;
    pthread_join(s->th, NULL);
    return s->peak;
}
