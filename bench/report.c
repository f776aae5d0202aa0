/* --report DIR: the rows as JSON lines and SVG charts drawn by gnuplot.
 *
 * Every chart is one gnuplot script, DIR/NAME.gp, with its data inline
 * (datablocks), run by `gnuplot` to make DIR/NAME.svg. The scripts stay
 * beside the SVGs: `gnuplot -e 'png="x.png"' DIR/NAME.gp` draws the same chart
 * as a PNG. The charts read the rows back as the JSON objects --json prints,
 * so a report of one run and one of several runs' rows (--rows FILE) are
 * drawn by the same code.
 *
 * Chart kinds, one function each: calls/s against concurrency, client CPU
 * per call as bars, latency percentiles (p50 and p99 side by side), and
 * memory per sandbox / per call in flight against their count. */
#include "bench.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_KEYS 16   /* distinct clients / transports / concurrencies per chart */
#define MAX_POINTS 16 /* points per line */

typedef struct report {
    const char *dir;
    const char *gnuplot;
    json_t *rows; /* array of row objects */
    int block;    /* datablock counter, unique names within a script */
    int charts, failed;
} report;

/* ----------------------------------------------------------- reading rows */

static int num(const json_t *row, const char *key, double *out)
{
    const json_t *v = json_object_get(row, key);
    if (!json_is_number(v))
        return 0;
    *out = json_number_value(v);
    return 1;
}

static const char *str(const json_t *row, const char *key)
{
    const char *s = json_string_value(json_object_get(row, key));
    return s ? s : "";
}

/* A row with figures: run, not skipped, at least one call. */
static int usable(const json_t *row)
{
    double calls = 0;
    return !json_is_true(json_object_get(row, "skipped")) && num(row, "calls", &calls) &&
           calls > 0;
}

/* A closed-loop scenario (calls/s, CPU per call and latency mean something):
 * one the table gives a `start` and no runner of its own. Rows of scenarios
 * this build does not know are not charted. */
static int closed_loop(const char *scenario)
{
    const bench_scenario *sc = bench_scenario_find(scenario);
    return sc && sc->start && !sc->run;
}

static int in_scenario(const json_t *row, const char *scenario)
{
    return usable(row) && strcmp(str(row, "scenario"), scenario) == 0;
}

/* Distinct values of a string key among the scenario's usable rows, in the
 * order they first appear (the run's order). */
static size_t distinct(const report *r, const char *scenario, const char *key,
                       const char **out, size_t cap)
{
    size_t n = 0, i;
    json_t *row;
    json_array_foreach(r->rows, i, row)
    {
        if (!in_scenario(row, scenario))
            continue;
        const char *v = str(row, key);
        size_t k = 0;
        while (k < n && strcmp(out[k], v) != 0)
            k++;
        if (k == n && n < cap)
            out[n++] = v;
    }
    return n;
}

/* Sorted distinct concurrencies of the scenarios' usable rows. */
static size_t concurrencies(const report *r, const char *const *scenarios, size_t n_sc,
                            long *out, size_t cap)
{
    size_t n = 0, i;
    json_t *row;
    json_array_foreach(r->rows, i, row)
    {
        double c;
        for (size_t s = 0; s < n_sc; s++) {
            if (!in_scenario(row, scenarios[s]) || !num(row, "concurrency", &c))
                continue;
            size_t k = 0;
            while (k < n && out[k] < (long)c)
                k++;
            if ((k < n && out[k] == (long)c) || n == cap)
                continue;
            memmove(&out[k + 1], &out[k], (n - k) * sizeof(*out));
            out[k] = (long)c;
            n++;
        }
    }
    return n;
}

/* The row of a case, or NULL. */
static const json_t *find_row(const report *r, const char *scenario, const char *client,
                              const char *transport, long conc)
{
    size_t i;
    json_t *row;
    json_array_foreach(r->rows, i, row)
    {
        double c;
        if (in_scenario(row, scenario) && strcmp(str(row, "client"), client) == 0 &&
            strcmp(str(row, "transport"), transport) == 0 && num(row, "concurrency", &c) &&
            (long)c == conc)
            return row;
    }
    return NULL;
}

/* --------------------------------------------------------- gnuplot scripts */

/* A string as a gnuplot double-quoted literal. */
static void gp_str(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', fp);
        fputc((unsigned char)*s >= ' ' ? *s : ' ', fp);
    }
    fputc('"', fp);
}

/* Scenario names come from rows (perhaps a file): only [A-Za-z0-9_-] go
 * into a file name. */
static void file_name(char *buf, size_t cap, const char *scenario, const char *kind)
{
    char safe[64];
    size_t k = 0;
    for (const char *p = scenario; *p && k + 1 < sizeof(safe); p++)
        safe[k++] = (strchr("-_", *p) || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9'))
                        ? *p
                        : '_';
    safe[k] = 0;
    snprintf(buf, cap, "%s%s%s", safe, *safe ? "-" : "", kind);
}

/* Opens DIR/NAME.gp and writes the terminal (SVG; PNG when the variable
 * `png` names a file) and the common look. NULL with a message on error. */
static FILE *gp_open(report *r, const char *name, const char *title, int w, int h)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.gp", r->dir, name);
    FILE *fp = fopen(path, "w");
    if (!fp) {
        fprintf(stderr, "envd-bench: --report: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    r->block = 0;
    fprintf(fp, "# envd-bench --report: %s. gnuplot %s.gp draws %s.svg;\n"
                "# gnuplot -e 'png=\"FILE\"' %s.gp draws it as a PNG.\n",
            name, name, name, name);
    fprintf(fp, "if (exists(\"png\")) {\n"
                "  set terminal pngcairo size %d,%d font \"sans,10\" noenhanced\n"
                "  set output png\n"
                "} else {\n"
                "  set terminal svg size %d,%d dynamic font \"sans,12\" noenhanced "
                "background \"white\"\n"
                "  set output ",
            w, h, w, h);
    char out[4096];
    snprintf(out, sizeof(out), "%s/%s.svg", r->dir, name);
    gp_str(fp, out);
    fprintf(fp, "\n}\nset title ");
    gp_str(fp, title);
    fprintf(fp, "\nset grid ytics\nset key outside right top vertical Left reverse\n"
                "set datafile missing \"-\"\n");
    return fp;
}

/* Closes the script and runs gnuplot on it: 0, or -1 with its output. */
static int gp_run(report *r, FILE *fp, const char *name)
{
    char gp[4096], log[4096];
    int bad = ferror(fp);
    bad |= fclose(fp) != 0;
    snprintf(gp, sizeof(gp), "%s/%s.gp", r->dir, name);
    snprintf(log, sizeof(log), "%s/%s.log", r->dir, name);
    if (bad) {
        fprintf(stderr, "envd-bench: --report: writing %s failed\n", gp);
        return -1;
    }
    const char *argv[] = {r->gnuplot, gp, NULL};
    bench_child ch;
    int st = -1;
    if (bench_spawn(&ch, argv, NULL, log) != 0 || bench_wait(&ch, &st, NULL) != 0 ||
        !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "envd-bench: --report: %s %s failed (status %d), its output:\n",
                r->gnuplot, gp, st);
        FILE *lf = fopen(log, "r");
        char line[512];
        while (lf && fgets(line, sizeof(line), lf))
            fputs(line, stderr);
        if (lf)
            fclose(lf);
        return -1;
    }
    unlink(log); /* gnuplot's warnings, if any, were only noise */
    r->charts++;
    return 0;
}

/* x tics at the concurrencies measured, not at powers of ten. */
static void gp_xtics(FILE *fp, const long *xs, size_t n)
{
    fprintf(fp, "set logscale x\nset xtics (");
    for (size_t i = 0; i < n; i++)
        fprintf(fp, "%s\"%ld\" %ld", i ? ", " : "", xs[i], xs[i]);
    /* one point still gets a range around it */
    if (n)
        fprintf(fp, ")\nset xrange [%g:%g]\n", (double)xs[0] / 1.5, (double)xs[n - 1] * 1.5);
    else
        fprintf(fp, ")\n");
}

static const char *const colors[] = {"#1f77b4", "#2ca02c", "#d62728", "#8c564b",
                                     "#9467bd", "#ff7f0e", "#17becf", "#7f7f7f"};
#define N_COLORS (sizeof(colors) / sizeof(colors[0]))

/* One line of a line chart: the rows of `scenario` (and client, transport
 * when given) as (concurrency, ykey) points, written as a datablock. The
 * plot clause for it goes into `plot` (a buffer of `cap`). 0 when there is
 * no point. */
typedef struct chart_line {
    const char *scenario, *client, *transport, *ykey;
    const char *title;
    int color, dash; /* indexes */
} chart_line;

static int gp_line(report *r, FILE *fp, const chart_line *l, char *plot, size_t cap)
{
    double xs[MAX_POINTS], ys[MAX_POINTS];
    size_t n = 0, i;
    json_t *row;
    json_array_foreach(r->rows, i, row)
    {
        double x, y;
        if (!in_scenario(row, l->scenario) ||
            (l->client && strcmp(str(row, "client"), l->client)) ||
            (l->transport && strcmp(str(row, "transport"), l->transport)) ||
            !num(row, "concurrency", &x) || !num(row, l->ykey, &y) || y <= 0 || n == MAX_POINTS)
            continue;
        size_t k = n++;
        for (; k > 0 && xs[k - 1] > x; k--) { /* sorted by x */
            xs[k] = xs[k - 1];
            ys[k] = ys[k - 1];
        }
        xs[k] = x;
        ys[k] = y;
    }
    if (!n)
        return 0;
    int id = r->block++;
    fprintf(fp, "$d%d << EOD\n", id);
    for (size_t k = 0; k < n; k++)
        fprintf(fp, "%g %g\n", xs[k], ys[k]);
    fprintf(fp, "EOD\n");
    char title[160], clause[512];
    size_t k = 0;
    for (const char *t = l->title; *t && k + 1 < sizeof(title); t++)
        if (*t != '"' && *t != '\\')
            title[k++] = *t;
    title[k] = 0;
    size_t used = strlen(plot);
    int w = snprintf(clause, sizeof(clause),
                     "%s$d%d using 1:2 with linespoints lw 2 pt %d ps 1.2 dt %d lc rgb \"%s\" "
                     "title \"%s\"",
                     used ? ", \\\n  " : "", id, 5 + 2 * (l->dash % 4), 1 + l->dash % 5,
                     colors[(size_t)l->color % N_COLORS], title);
    if (w < 0 || (size_t)w >= sizeof(clause) || used + (size_t)w >= cap)
        return 0; /* its datablock stays unused */
    memcpy(plot + used, clause, (size_t)w + 1);
    return 1;
}

/* One panel of client x transport lines of a closed-loop scenario. Colour
 * says the client, dash and point the transport. */
static void panel_clients(report *r, FILE *fp, const char *scenario, const char *ykey)
{
    const char *clients[MAX_KEYS], *transports[MAX_KEYS];
    size_t nc = distinct(r, scenario, "client", clients, MAX_KEYS);
    size_t nt = distinct(r, scenario, "transport", transports, MAX_KEYS);
    char plot[8192] = "";
    for (size_t c = 0; c < nc; c++)
        for (size_t t = 0; t < nt; t++) {
            char title[128];
            snprintf(title, sizeof(title), "%s %s", clients[c], transports[t]);
            chart_line l = {scenario, clients[c], transports[t], ykey, title, (int)c, (int)t};
            gp_line(r, fp, &l, plot, sizeof(plot));
        }
    fprintf(fp, "plot %s\n", plot[0] ? plot : "NaN notitle");
}

/* ------------------------------------------------------------ chart kinds */

static void chart_calls(report *r, const char *scenario, const long *xs, size_t nx)
{
    char name[128], title[256];
    file_name(name, sizeof(name), scenario, "calls");
    snprintf(title, sizeof(title), "%s: calls/s against calls in flight (higher is better)",
             scenario);
    FILE *fp = gp_open(r, name, title, 960, 540);
    if (!fp) {
        r->failed++;
        return;
    }
    gp_xtics(fp, xs, nx);
    fprintf(fp, "set logscale y\nset xlabel \"concurrency (calls in flight)\"\n"
                "set ylabel \"calls/s\"\nset format y \"%%.0s%%c\"\n");
    panel_clients(r, fp, scenario, "calls_per_s");
    r->failed += gp_run(r, fp, name) != 0;
}

/* p50 and p99 side by side, on the same y range so they compare. */
static void chart_latency(report *r, const char *scenario, const long *xs, size_t nx)
{
    char name[128], title[256];
    file_name(name, sizeof(name), scenario, "latency");
    snprintf(title, sizeof(title), "%s: latency per call (lower is better)", scenario);
    FILE *fp = gp_open(r, name, title, 1250, 540);
    if (!fp) {
        r->failed++;
        return;
    }
    static const char *const keys[] = {"p50_us", "p99_us"};
    static const char *const names[] = {"p50", "p99"};
    double lo = 0, hi = 0;
    size_t i;
    json_t *row;
    json_array_foreach(r->rows, i, row)
    {
        double v;
        for (int k = 0; k < 2; k++)
            if (in_scenario(row, scenario) && num(row, keys[k], &v) && v > 0) {
                lo = lo == 0 || v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
    }
    fprintf(fp, "unset title\nset multiplot title ");
    gp_str(fp, title);
    fprintf(fp, "\n");
    gp_xtics(fp, xs, nx);
    fprintf(fp, "set logscale y\nset xlabel \"concurrency (calls in flight)\"\n");
    if (hi > 0)
        fprintf(fp, "set yrange [%g:%g]\n", lo / 1.5, hi * 1.5);
    /* the rows are in microseconds; ticks read as ms and s */
    fprintf(fp, "set ytics (\"10 us\" 10, \"100 us\" 100, \"1 ms\" 1e3, \"10 ms\" 1e4, "
                "\"100 ms\" 1e5, \"1 s\" 1e6, \"10 s\" 1e7, \"100 s\" 1e8)\n");
    /* two equal panels on the left, the one key to the right of both */
    fprintf(fp, "set lmargin 10\nset rmargin 2\nset size 0.37,0.92\n");
    for (int k = 0; k < 2; k++) {
        fprintf(fp, "set origin %s,0\nset title \"%s\"\nset ylabel \"%s latency (log)\"\n",
                k ? "0.39" : "0.02", names[k], names[k]);
        fprintf(fp, k ? "set key at screen 0.77,0.85 left top Left reverse\n" : "unset key\n");
        panel_clients(r, fp, scenario, keys[k]);
    }
    fprintf(fp, "unset multiplot\n");
    r->failed += gp_run(r, fp, name) != 0;
}

/* Bars: one group per client x transport, one bar per concurrency. */
static void chart_cpu(report *r, const char *scenario, const long *xs, size_t nx)
{
    char name[128], title[256];
    file_name(name, sizeof(name), scenario, "cpu");
    snprintf(title, sizeof(title),
             "%s: client CPU per call, user+system (lower is better)", scenario);
    FILE *fp = gp_open(r, name, title, 960, 540);
    if (!fp) {
        r->failed++;
        return;
    }
    const char *clients[MAX_KEYS], *transports[MAX_KEYS];
    size_t nc = distinct(r, scenario, "client", clients, MAX_KEYS);
    size_t nt = distinct(r, scenario, "transport", transports, MAX_KEYS);
    fprintf(fp, "$cpu << EOD\n\"case\"");
    for (size_t x = 0; x < nx; x++)
        fprintf(fp, " \"c=%ld\"", xs[x]);
    fprintf(fp, "\n");
    for (size_t c = 0; c < nc; c++)
        for (size_t t = 0; t < nt; t++) {
            char label[128];
            snprintf(label, sizeof(label), "%s %s", clients[c], transports[t]);
            int any = 0;
            char vals[MAX_KEYS * 24] = "";
            size_t used = 0;
            for (size_t x = 0; x < nx && used < sizeof(vals); x++) {
                const json_t *row = find_row(r, scenario, clients[c], transports[t], xs[x]);
                double v;
                if (row && num(row, "cpu_us_per_call", &v) && v > 0) {
                    any = 1;
                    used += (size_t)snprintf(vals + used, sizeof(vals) - used, " %g", v);
                } else {
                    used += (size_t)snprintf(vals + used, sizeof(vals) - used, " -");
                }
            }
            if (!any)
                continue;
            gp_str(fp, label);
            fprintf(fp, "%s\n", vals);
        }
    fprintf(fp, "EOD\n"
                "set style data histograms\nset style histogram clustered gap 1\n"
                "set style fill solid 0.85 border -1\nset boxwidth 0.9\n"
                "set logscale y\nset yrange [0.5:*]\nset ylabel \"CPU us per call (log)\"\n"
                "set xtics rotate by -30 nomirror\nset key title \"concurrency\"\n"
                "palette = \"");
    for (size_t k = 0; k < N_COLORS; k++)
        fprintf(fp, "%s%s", k ? " " : "", colors[k]);
    /* each bar's value above it: bar k of n in a cluster with gap 1 sits at
     * (k - (n-1)/2) / (n+1) from the cluster's centre */
    fprintf(fp, "\"\nn = %zu\nplot for [i=2:n+1] $cpu using i:xtic(1) title columnheader(i) "
                "lc rgb word(palette, (i-2)%%%zu+1), \\\n"
                "  for [i=2:n+1] $cpu skip 1 using ($0 + (i-2-(n-1)/2.0)/(n+1)):i:"
                "(sprintf(column(i) >= 100 ? \"%%.0f\" : \"%%.3g\", column(i))) "
                "with labels font \",8\" offset 0,0.6 "
                "notitle\n",
            nx, N_COLORS);
    r->failed += gp_run(r, fp, name) != 0;
}

/* KiB per sandbox (sandboxes: idle, and with a Stat in flight) and per call
 * in flight (inflight) against their number, with the targets of issue 11. */
static void chart_memory(report *r)
{
    static const char *const scen[] = {"sandboxes", "inflight"};
    long xs[MAX_KEYS];
    size_t nx = concurrencies(r, scen, 2, xs, MAX_KEYS);
    if (!nx)
        return;
    FILE *fp = gp_open(r, "memory",
                       "client RSS per sandbox and per call in flight (lower is better)", 1100,
                       540);
    if (!fp) {
        r->failed++;
        return;
    }
    gp_xtics(fp, xs, nx);
    fprintf(fp, "set xlabel \"sandboxes (clients, one runtime) / Stats in flight (one client)\"\n"
                "set ylabel \"KiB of RSS each (growth over the baseline)\"\n"
                "set yrange [0:*]\nset offsets 0, 0, graph 0.08, 0\n");
    static const struct {
        const char *scenario, *ykey, *what;
    } measures[] = {
        {"sandboxes", "idle_rss_per_client_kib", "idle client"},
        {"sandboxes", "rss_per_sandbox_kib", "sandbox + its Stat in flight"},
        {"inflight", "rss_per_call_kib", "Stat in flight"},
    };
    char plot[8192] = "";
    for (size_t m = 0; m < sizeof(measures) / sizeof(measures[0]); m++) {
        const char *transports[MAX_KEYS];
        size_t nt = distinct(r, measures[m].scenario, "transport", transports, MAX_KEYS);
        for (size_t t = 0; t < nt; t++) {
            char title[160];
            snprintf(title, sizeof(title), "%s: %s, %s", measures[m].scenario, measures[m].what,
                     transports[t]);
            chart_line l = {measures[m].scenario, "libenvd", transports[t], measures[m].ykey, title,
                      (int)m, (int)t};
            gp_line(r, fp, &l, plot, sizeof(plot));
        }
    }
    size_t used = strlen(plot);
    snprintf(plot + used, sizeof(plot) - used,
             "%s4 with lines lw 2 dt 3 lc rgb \"%s\" title \"target: idle client <= 4 KiB\", "
             "\\\n  12 with lines lw 2 dt 3 lc rgb \"%s\" title \"target: sandbox + call <= 12 "
             "KiB\", \\\n  16 with lines lw 2 dt 3 lc rgb \"%s\" title \"target: call in flight "
             "<= 16 KiB\"",
             used ? ", \\\n  " : "", colors[0], colors[1], colors[2]);
    fprintf(fp, "plot %s\n", plot);
    r->failed += gp_run(r, fp, "memory") != 0;
}

/* ----------------------------------------------------------------- driver */

static int find_program(const char *prog)
{
    if (strchr(prog, '/'))
        return access(prog, X_OK) == 0;
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        char full[4096];
        snprintf(full, sizeof(full), "%.*s/%s", (int)n, n ? p : ".", prog);
        if (access(full, X_OK) == 0)
            return 1;
        p += n;
        if (*p == ':')
            p++;
    }
    return 0;
}

static int write_rows(const report *r)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/rows.jsonl", r->dir);
    FILE *fp = fopen(path, "w");
    if (!fp) {
        fprintf(stderr, "envd-bench: --report: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t i;
    json_t *row;
    int bad = 0;
    json_array_foreach(r->rows, i, row)
    {
        char *s = bench_row_dumps(row);
        bad |= !s || fprintf(fp, "%s\n", s) < 0;
        free(s);
    }
    bad |= ferror(fp);
    bad |= fclose(fp) != 0;
    if (bad)
        fprintf(stderr, "envd-bench: --report: writing %s failed\n", path);
    return bad ? -1 : 0;
}

/* Scenarios in the order they first appear. */
static size_t scenarios(const report *r, const char **out, size_t cap)
{
    size_t n = 0, i;
    json_t *row;
    json_array_foreach(r->rows, i, row)
    {
        const char *v = str(row, "scenario");
        size_t k = 0;
        while (k < n && strcmp(out[k], v) != 0)
            k++;
        if (k == n && n < cap && *v)
            out[n++] = v;
    }
    return n;
}

static int report_rows(const char *dir, const char *gnuplot, json_t *rows)
{
    report r = {.dir = dir, .gnuplot = gnuplot ? gnuplot : "gnuplot", .rows = rows};
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "envd-bench: --report: mkdir %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (write_rows(&r) != 0)
        return -1;
    if (!find_program(r.gnuplot)) {
        fprintf(stderr,
                "envd-bench: --report: no charts: gnuplot (%s) not found; install the Debian "
                "package gnuplot-nox (scripts/install-deps.sh does). %s/rows.jsonl is written.\n",
                r.gnuplot, dir);
        return -1;
    }
    const char *sc[64];
    size_t ns = scenarios(&r, sc, 64);
    for (size_t s = 0; s < ns; s++) {
        size_t i, usable_rows = 0;
        json_t *row;
        json_array_foreach(rows, i, row)
        {
            usable_rows += in_scenario(row, sc[s]);
        }
        if (!usable_rows || !closed_loop(sc[s]))
            continue;
        long xs[MAX_KEYS];
        size_t nx = concurrencies(&r, &sc[s], 1, xs, MAX_KEYS);
        chart_calls(&r, sc[s], xs, nx);
        chart_cpu(&r, sc[s], xs, nx);
        chart_latency(&r, sc[s], xs, nx);
    }
    chart_memory(&r);
    bench_log("envd-bench: --report: %s/rows.jsonl (%zu rows), %d charts (SVG) in %s", dir,
              json_array_size(rows), r.charts, dir);
    return r.failed ? -1 : 0;
}

int bench_report_run(const char *dir, const char *gnuplot, const bench_result *rs, size_t n)
{
    json_t *rows = json_array();
    for (size_t i = 0; rows && i < n; i++)
        if (json_array_append_new(rows, bench_result_json(&rs[i])) != 0) {
            json_decref(rows);
            rows = NULL;
        }
    if (!rows) {
        fprintf(stderr, "envd-bench: --report: out of memory\n");
        return -1;
    }
    int rc = report_rows(dir, gnuplot, rows);
    json_decref(rows);
    return rc;
}

int bench_report_file(const char *dir, const char *gnuplot, const char *rows_path)
{
    FILE *fp = strcmp(rows_path, "-") == 0 ? stdin : fopen(rows_path, "r");
    if (!fp) {
        fprintf(stderr, "envd-bench: --rows %s: %s\n", rows_path, strerror(errno));
        return -1;
    }
    json_t *rows = json_array();
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = rows ? 0 : -1;
    while (rc == 0 && getline(&line, &cap, fp) >= 0) {
        lineno++;
        if (line[strspn(line, " \t\r\n")] == 0)
            continue;
        json_error_t err;
        json_t *row = json_loads(line, 0, &err);
        if (!json_is_object(row)) {
            fprintf(stderr, "envd-bench: --rows %s:%ld: not a JSON object (%s)\n", rows_path,
                    lineno, row ? "another JSON value" : err.text);
            rc = -1;
        }
        if (rc == 0 && json_array_append(rows, row) != 0)
            rc = -1;
        json_decref(row);
    }
    free(line);
    if (fp != stdin)
        fclose(fp);
    if (rc == 0 && json_array_size(rows) == 0) {
        fprintf(stderr, "envd-bench: --rows %s: no rows\n", rows_path);
        rc = -1;
    }
    if (rc == 0)
        rc = report_rows(dir, gnuplot, rows);
    json_decref(rows);
    return rc;
}
