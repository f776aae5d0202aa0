/* envdctl batch: the results file. One JSON object per finished job,
 * written and flushed as one line, so whatever finished survives a crash;
 * read back (streamed) for --resume. */
#include "batch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *const batch_status_names[4] = {"ok", "failed", "error", "canceled"};

static int put_opt_string(cli_buf *b, const char *key, const char *s, size_t len)
{
    if (cli_buf_appendf(b, ",\"%s\":", key) != 0)
        return -1;
    return s ? cli_buf_json_string(b, s, len) : cli_buf_append(b, "null", 4);
}

int batch_result_write(FILE *f, const batch_result *r)
{
    cli_buf b = {0};
    char when[40];
    cli_format_time(r->started_sec, r->started_nsec, when, sizeof(when));
    int rc = cli_buf_append(&b, "{\"id\":", 6) || cli_buf_json_string(&b, r->id, strlen(r->id)) ||
             put_opt_string(&b, "sandbox", r->sandbox, r->sandbox ? strlen(r->sandbox) : 0) ||
             cli_buf_appendf(&b, ",\"status\":\"%s\"", batch_status_names[r->status]);
    if (!rc)
        rc = r->has_exit ? cli_buf_appendf(&b, ",\"exit_code\":%d", r->exit_code)
                         : cli_buf_appendf(&b, ",\"exit_code\":null");
    rc = rc || put_opt_string(&b, "error", r->error, r->error ? strlen(r->error) : 0) ||
         cli_buf_appendf(&b,
                         ",\"attempts\":%d,\"started_at\":\"%s\",\"duration_ms\":%lld,"
                         "\"upload_ms\":%lld,\"run_ms\":%lld,\"download_ms\":%lld",
                         r->attempts, when, (long long)r->duration_ms, (long long)r->upload_ms,
                         (long long)r->run_ms, (long long)r->download_ms);
    if (!rc && r->out)
        rc = put_opt_string(&b, "stdout", r->out->data ? r->out->data : "", r->out->len) ||
             cli_buf_appendf(&b, ",\"stdout_truncated\":%s", r->out_truncated ? "true" : "false");
    if (!rc && r->err)
        rc = put_opt_string(&b, "stderr", r->err->data ? r->err->data : "", r->err->len) ||
             cli_buf_appendf(&b, ",\"stderr_truncated\":%s", r->err_truncated ? "true" : "false");
    rc = rc || cli_buf_append(&b, "}\n", 2);
    if (!rc && (fwrite(b.data, 1, b.len, f) != b.len || fflush(f) != 0))
        rc = -1;
    cli_buf_free(&b);
    return rc ? -1 : 0;
}

/* One line of an existing results file. Any line saying an ID finished
 * counts: jobs that finished are never run again, so no later line can
 * contradict it. */
static int take_line(const char *line, size_t len, int rerun_failed, batch_idset *done)
{
    json_t *o = json_loadb(line, len, 0, NULL);
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *st = json_string_value(json_object_get(o, "status"));
    int rc = 0;
    if (id && st && (strcmp(st, "ok") == 0 || (!rerun_failed && strcmp(st, "failed") == 0)))
        rc = batch_idset_add(done, id) < 0 ? -1 : 0;
    json_decref(o);
    return rc;
}

int batch_results_load(const char *path, int rerun_failed, batch_idset *skip, char **err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        *err = cli_strdupf("%s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0)
        if (n > 1)
            rc = take_line(line, (size_t)n, rerun_failed, skip);
    if (rc == 0 && ferror(f))
        rc = -1;
    if (rc)
        *err = cli_strdupf("%s: %s", path, errno ? strerror(errno) : "out of memory");
    free(line);
    fclose(f);
    return rc;
}
