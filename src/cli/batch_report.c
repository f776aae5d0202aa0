/* envdctl batch: the progress line and the summary. Latencies go into
 * log-scale histograms (fixed memory whatever the number of jobs; about 3 %
 * resolution above 64 ms, exact below), the five slowest jobs are kept by
 * name. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int bucket_of(int64_t ms)
{
    if (ms < 0)
        ms = 0;
    if (ms < 64)
        return (int)ms;
    int e = 63 - __builtin_clzll((unsigned long long)ms); /* >= 6 */
    if (e > 39)
        return BATCH_HIST_BUCKETS - 1;
    int sub = (int)((ms >> (e - 5)) & 31);
    return 64 + (e - 6) * 32 + sub;
}

static int64_t bucket_value(int b)
{
    if (b < 64)
        return b;
    int e = (b - 64) / 32 + 6, sub = (b - 64) % 32;
    int64_t lo = (int64_t)(32 + sub) << (e - 5);
    return lo + ((int64_t)1 << (e - 5)) / 2;
}

void batch_hist_add(batch_hist *h, int64_t ms)
{
    h->n[bucket_of(ms)]++;
    h->count++;
}

int64_t batch_hist_quantile(const batch_hist *h, double q)
{
    if (!h->count)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999), seen = 0;
    if (rank < 1)
        rank = 1;
    for (int b = 0; b < BATCH_HIST_BUCKETS; b++) {
        seen += h->n[b];
        if (seen >= rank)
            return bucket_value(b);
    }
    return bucket_value(BATCH_HIST_BUCKETS - 1);
}

void batch_report_init(batch_report *r, int mode, uint64_t total)
{
    memset(r, 0, sizeof(*r));
    r->mode = mode;
    r->total = total;
    r->t0 = cli_now_ms();
    r->last_draw = r->t0;
}

static void keep_if_slow(batch_report *r, const char *id, int64_t ms)
{
    int at = -1;
    for (int i = 0; i < 5; i++)
        if (!r->slow[i].id || ms > r->slow[i].ms) {
            at = i;
            break;
        }
    if (at < 0)
        return;
    char *copy = strdup(id);
    if (!copy)
        return;
    free(r->slow[4].id);
    memmove(&r->slow[at + 1], &r->slow[at], (size_t)(4 - at) * sizeof(r->slow[0]));
    r->slow[at].id = copy;
    r->slow[at].ms = ms;
}

void batch_report_add(batch_report *r, const batch_result *res)
{
    r->counts[res->status]++;
    if (res->status == BATCH_CANCELED)
        return;
    batch_hist_add(&r->phase[0], res->duration_ms);
    batch_hist_add(&r->phase[1], res->upload_ms);
    batch_hist_add(&r->phase[2], res->run_ms);
    batch_hist_add(&r->phase[3], res->download_ms);
    keep_if_slow(r, res->id, res->duration_ms);
}

void batch_report_acquired(batch_report *r, int64_t ms)
{
    batch_hist_add(&r->acquire, ms);
    if (ms > r->acquire_max)
        r->acquire_max = ms;
}

void batch_report_acquire_failed(batch_report *r, uint64_t n)
{
    r->acquire_failed += n;
}

static uint64_t done_count(const batch_report *r)
{
    return r->counts[0] + r->counts[1] + r->counts[2] + r->counts[3];
}

static void draw(batch_report *r, int64_t now)
{
    uint64_t done = done_count(r);
    double secs = (double)(now - r->t0) / 1000.0;
    double rate = secs > 0 ? (double)done / secs : 0;
    char eta[32] = "-";
    if (rate > 0 && r->total >= done) {
        long s = (long)((double)(r->total - done) / rate + 0.5);
        snprintf(eta, sizeof(eta), "%ld:%02ld", s / 60, s % 60);
    }
    char line[256];
    int n = snprintf(line, sizeof(line),
                     "%llu/%llu ok %llu failed %llu error %llu | %.1f jobs/s | ETA %s",
                     (unsigned long long)done, (unsigned long long)r->total,
                     (unsigned long long)r->counts[0], (unsigned long long)r->counts[1],
                     (unsigned long long)r->counts[2], rate, eta);
    if (r->mode == 1) {
        fprintf(stderr, "envdctl: batch: %s\n", line);
        return;
    }
    char bar[23] = "[                    ]";
    size_t fill = r->total ? (size_t)(20 * done / r->total) : 0;
    for (size_t i = 0; i < fill && i < 20; i++)
        bar[1 + i] = '#';
    /* \r and clear-to-end: one line redrawn in place. */
    fprintf(stderr, "\r%s %.*s\033[K", bar, n, line);
    fflush(stderr);
    r->drawn = 1;
}

void batch_report_tick(batch_report *r, int force)
{
    if (r->mode == 0)
        return;
    int64_t now = cli_now_ms();
    int64_t every = r->mode == 2 ? 100 : 5000;
    if (!force && now - r->last_draw < every)
        return;
    r->last_draw = now;
    draw(r, now);
}

static void fmt_ms(int64_t ms, char *buf, size_t cap)
{
    if (ms < 1000)
        snprintf(buf, cap, "%lldms", (long long)ms);
    else
        snprintf(buf, cap, "%.2fs", (double)ms / 1000.0);
}

/* A quantile of the acquisition times: never past the exact maximum (a
 * bucket's middle can be). */
static int64_t acquire_q(const batch_report *r, double q)
{
    int64_t v = batch_hist_quantile(&r->acquire, q);
    return v < r->acquire_max ? v : r->acquire_max;
}

void batch_report_summary(batch_report *r)
{
    if (r->drawn)
        fputs("\r\033[K", stderr);
    int64_t wall = cli_now_ms() - r->t0;
    uint64_t done = done_count(r);
    fprintf(stderr,
            "envdctl batch: %llu jobs: %llu ok, %llu failed, %llu error, %llu canceled "
            "(%llu not run)\n",
            (unsigned long long)done, (unsigned long long)r->counts[0],
            (unsigned long long)r->counts[1], (unsigned long long)r->counts[2],
            (unsigned long long)r->counts[3],
            (unsigned long long)(r->total > done ? r->total - done : 0));
    fprintf(stderr, "  wall %.2fs, %.1f jobs/s\n", (double)wall / 1000.0,
            wall > 0 ? (double)done * 1000.0 / (double)wall : 0.0);
    static const char *const names[4] = {"total", "upload", "run", "download"};
    fprintf(stderr, "  %-9s %9s %9s %9s\n", "phase", "p50", "p95", "p99");
    for (int i = 0; i < 4; i++) {
        char a[24], b[24], c[24];
        fmt_ms(batch_hist_quantile(&r->phase[i], 0.50), a, sizeof(a));
        fmt_ms(batch_hist_quantile(&r->phase[i], 0.95), b, sizeof(b));
        fmt_ms(batch_hist_quantile(&r->phase[i], 0.99), c, sizeof(c));
        fprintf(stderr, "  %-9s %9s %9s %9s\n", names[i], a, b, c);
    }
    if (r->acquiring) {
        char a[24], b[24], c[24];
        fmt_ms(acquire_q(r, 0.50), a, sizeof(a));
        fmt_ms(acquire_q(r, 0.95), b, sizeof(b));
        fmt_ms(r->acquire_max, c, sizeof(c));
        fprintf(stderr, "  acquired %llu sandboxes (%llu failed), each in: p50 %s, p95 %s, max %s\n",
                (unsigned long long)r->acquire.count, (unsigned long long)r->acquire_failed, a,
                b, c);
    }
    if (r->slow[0].id)
        fprintf(stderr, "  slowest:");
    for (int i = 0; i < 5 && r->slow[i].id; i++) {
        char a[24];
        fmt_ms(r->slow[i].ms, a, sizeof(a));
        fprintf(stderr, " %s (%s)%s", r->slow[i].id, a, i < 4 && r->slow[i + 1].id ? "," : "\n");
    }
}

/* {"p50_ms":..,"p95_ms":..,<last>:..}. */
static json_t *quantiles(int64_t p50, int64_t p95, const char *last, int64_t last_v)
{
    return json_pack("{s:I,s:I,s:I}", "p50_ms", (json_int_t)p50, "p95_ms", (json_int_t)p95, last,
                     (json_int_t)last_v);
}

int batch_report_json(const batch_report *r, const char *path)
{
    uint64_t done = done_count(r);
    static const char *const names[4] = {"total", "upload", "run", "download"};
    json_t *phases = json_object();
    for (int i = 0; phases && i < 4; i++)
        json_object_set_new(phases, names[i],
                            quantiles(batch_hist_quantile(&r->phase[i], 0.50),
                                      batch_hist_quantile(&r->phase[i], 0.95), "p99_ms",
                                      batch_hist_quantile(&r->phase[i], 0.99)));
    json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o*}", "jobs", (json_int_t)done, "ok",
                          (json_int_t)r->counts[0], "failed", (json_int_t)r->counts[1], "error",
                          (json_int_t)r->counts[2], "canceled", (json_int_t)r->counts[3],
                          "not_run", (json_int_t)(r->total > done ? r->total - done : 0),
                          "wall_ms", (json_int_t)(cli_now_ms() - r->t0), "phases", phases);
    json_t *acq = r->acquiring ? quantiles(acquire_q(r, 0.50), acquire_q(r, 0.95), "max_ms",
                                           r->acquire_max)
                               : NULL;
    if (acq) {
        json_object_set_new(acq, "count", json_integer((json_int_t)r->acquire.count));
        json_object_set_new(acq, "failed", json_integer((json_int_t)r->acquire_failed));
    }
    if (o && acq)
        json_object_set_new(o, "acquire", acq);
    else
        json_decref(acq);
    int rc = o ? json_dump_file(o, path, JSON_COMPACT) : -1;
    json_decref(o);
    return rc;
}

void batch_report_free(batch_report *r)
{
    for (int i = 0; i < 5; i++)
        free(r->slow[i].id);
    memset(r->slow, 0, sizeof(r->slow));
}
