/* The code interpreter's replies (api/code_stream.c, api/code_data.c): the
 * /execute NDJSON stream, read in pieces with a line cap, each event also
 * collected as envd_code_run collects it; and the same bytes as a context
 * reply and a context list. The first byte picks the piece size (1..16, or
 * all at once when 0) and the cap (small, to reach it, or 1 MiB). Checks:
 * nothing after the end, at most one end, every string of an event set. */
#include "fuzz_util.h"

#include "api/code_internal.h"

typedef struct state {
    code_exec *x;
    int ends;
} state;

static int on_event(void *ud, const envd_code_event *ev)
{
    state *s = ud;
    FUZZ_CHECK(s->ends == 0);
    switch (ev->type) {
    case ENVD_CODE_EVENT_STDOUT:
    case ENVD_CODE_EVENT_STDERR:
        FUZZ_CHECK(ev->text != NULL);
        break;
    case ENVD_CODE_EVENT_RESULT:
        FUZZ_CHECK(ev->result != NULL);
        break;
    case ENVD_CODE_EVENT_ERROR:
        FUZZ_CHECK(ev->error && ev->error->name && ev->error->value && ev->error->traceback);
        break;
    case ENVD_CODE_EVENT_END:
        s->ends++;
        break;
    case ENVD_CODE_EVENT_EXECUTION_COUNT:
        break;
    }
    return envd_code_execution_add(s->x, ev, 4096) != 0;
}

static void contexts(const uint8_t *data, size_t size)
{
    void *r = NULL;
    envd_free_fn free_fn = NULL;
    envd_error *e = envd_code_context_parse((const char *)data, size, &r, &free_fn);
    FUZZ_CHECK((e == NULL) == (r != NULL));
    if (r) {
        const envd_code_context *c = r;
        FUZZ_CHECK(c->id && c->language && c->cwd);
        free_fn(r);
    }
    envd_error_free(e);
    r = NULL;
    e = envd_code_context_list_parse((const char *)data, size, &r, &free_fn);
    FUZZ_CHECK((e == NULL) == (r != NULL));
    if (r) {
        const envd_code_contexts *l = r;
        for (size_t i = 0; i < l->n; i++)
            FUZZ_CHECK(l->items[i].id && l->items[i].language && l->items[i].cwd);
        free_fn(r);
    }
    envd_error_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = data[0] & 15, cap = (data[0] & 16) ? 64 : (size_t)1 << 20;
    data++;
    size--;
    state s = {envd_code_execution_new(), 0};
    if (!s.x)
        return 0;
    envd_code_reader r;
    envd_code_reader_init(&r, cap, on_event, &s);
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < size;) {
        size_t n = piece ? piece : size;
        n = n < size - off ? n : size - off;
        rc = envd_code_reader_feed(&r, data + off, n);
        off += n;
    }
    if (rc == 0)
        rc = envd_code_reader_finish(&r);
    FUZZ_CHECK((rc == 0) == (r.err == NULL));
    FUZZ_CHECK(rc != 0 || s.ends == 1);
    FUZZ_CHECK(s.x->pub.stdout_len <= 4096 && s.x->pub.stderr_len <= 4096);
    envd_code_reader_done(&r);
    envd_code_execution_free(&s.x->pub);
    contexts(data, size);
    return 0;
}
