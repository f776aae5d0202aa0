/* The execution stream reader (code_stream.h).
 *
 * Wire facts, from e2b-dev/code-interpreter template/server: stream.py writes
 * json.dumps(event) + "\n" per event and '{"type": "end_of_execution"}\n'
 * last; messaging.py drops None fields (model_dump(exclude_none=True)) and
 * sends {"type": "keepalive"} every 5 s while the kernel is silent;
 * api/models/{output,logs,result,error}.py name the types and fields. */
#include "api/code_stream.h"
#include "core/alloc.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void envd_code_reader_init(envd_code_reader *r, size_t max_line, envd_code_event_cb cb, void *ud)
{
    memset(r, 0, sizeof(*r));
    envd_buf_init(&r->line);
    r->max_line = max_line;
    r->cb = cb;
    r->ud = ud;
}

void envd_code_reader_done(envd_code_reader *r)
{
    envd_buf_free(&r->line);
    envd_error_free(r->err);
    r->err = NULL;
}

static envd_error *protocol(const char *fmt, const char *what)
{
    return envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_HTTP, 0, fmt, what);
}

/* A string member: *out is its value ("" when absent or null when
 * allow_missing), -1 with *err when it has another type. */
static int str_field(json_t *o, const char *key, const char **out, size_t *len, envd_error **err)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (len)
        *len = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        *err = protocol("execution stream: field '%s' is not a string", key);
        return -1;
    }
    *out = json_string_value(v);
    if (len)
        *len = json_string_length(v);
    return 0;
}

static const char *const RESULT_STRINGS[] = {"text", "html",  "markdown", "svg",       "png",
                                             "jpeg", "pdf",   "latex",    "javascript"};
static const char *const RESULT_OBJECTS[] = {"json", "data", "chart", "extra"};

/* The JSON text of the object fields; dumped[] is freed by the caller. */
static int result_from(json_t *o, envd_code_result *res, char **dumped, envd_error **err)
{
    const char **strs[] = {&res->text, &res->html,  &res->markdown, &res->svg,       &res->png,
                           &res->jpeg, &res->pdf,   &res->latex,    &res->javascript};
    const char **objs[] = {&res->json, &res->data, &res->chart, &res->extra};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if (str_field(o, RESULT_STRINGS[i], strs[i], NULL, err) != 0)
            return -1;
    for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
        json_t *v = json_object_get(o, RESULT_OBJECTS[i]);
        if (!v || json_is_null(v))
            continue;
        dumped[i] = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!dumped[i]) {
            *err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
            return -1;
        }
        *objs[i] = dumped[i];
    }
    json_t *m = json_object_get(o, "is_main_result");
    if (m && !json_is_boolean(m) && !json_is_null(m)) {
        *err = protocol("execution stream: field '%s' is not a boolean", "is_main_result");
        return -1;
    }
    res->is_main_result = m && json_is_true(m);
    return 0;
}

static int error_from(json_t *o, envd_code_error *e, envd_error **err)
{
    if (str_field(o, "name", &e->name, NULL, err) || str_field(o, "value", &e->value, NULL, err) ||
        str_field(o, "traceback", &e->traceback, NULL, err))
        return -1;
    e->name = e->name ? e->name : "";
    e->value = e->value ? e->value : "";
    e->traceback = e->traceback ? e->traceback : "";
    return 0;
}

/* Fills ev from the event object o of type `type`; 0, 1 (skip) or -1. */
static int event_from(json_t *o, const char *type, envd_code_event *ev, envd_code_result *res,
                      envd_code_error *e, char **dumped, envd_error **err)
{
    if (strcmp(type, "stdout") == 0 || strcmp(type, "stderr") == 0) {
        ev->type = type[3] == 'o' ? ENVD_CODE_EVENT_STDOUT : ENVD_CODE_EVENT_STDERR;
        if (str_field(o, "text", &ev->text, &ev->text_len, err) ||
            str_field(o, "timestamp", &ev->timestamp, NULL, err))
            return -1;
        ev->text = ev->text ? ev->text : "";
        return 0;
    }
    if (strcmp(type, "number_of_executions") == 0) {
        json_t *n = json_object_get(o, "execution_count");
        if (!json_is_integer(n)) {
            *err = protocol("execution stream: %s without an integer execution_count", type);
            return -1;
        }
        ev->type = ENVD_CODE_EVENT_EXECUTION_COUNT;
        ev->execution_count = (int64_t)json_integer_value(n);
        return 0;
    }
    if (strcmp(type, "result") == 0) {
        ev->type = ENVD_CODE_EVENT_RESULT;
        ev->result = res;
        return result_from(o, res, dumped, err);
    }
    if (strcmp(type, "error") == 0) {
        ev->type = ENVD_CODE_EVENT_ERROR;
        ev->error = e;
        return error_from(o, e, err);
    }
    if (strcmp(type, "end_of_execution") == 0) {
        ev->type = ENVD_CODE_EVENT_END;
        return 0;
    }
    return 1; /* keepalive, and whatever a newer server adds */
}

static int only_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

static int call(envd_code_event_cb cb, void *ud, const envd_code_event *ev, envd_error **err)
{
    if (cb && cb(ud, ev) != 0) {
        *err = envd_error_new(ENVD_CANCELED, ENVD_TRANSPORT_NONE, 0,
                              "code execution stopped by the event callback");
        return -1;
    }
    return 1;
}

/* The server's unexpected_end_of_execution (output.py; its messaging.py
 * turns it into an error named UnexpectedEndOfExecution before it reaches
 * the wire): delivered as that error, then the end. */
static int unexpected_end(envd_code_event_cb cb, void *ud, int *end, envd_error **err)
{
    envd_code_error e = {"UnexpectedEndOfExecution",
                         "the execution ended before it finished", ""};
    envd_code_event ev = {.type = ENVD_CODE_EVENT_ERROR, .error = &e};
    if (call(cb, ud, &ev, err) < 0)
        return -1;
    ev = (envd_code_event){.type = ENVD_CODE_EVENT_END};
    *end = 1;
    return call(cb, ud, &ev, err);
}

int envd_code_line_dispatch(const char *line, size_t len, envd_code_event_cb cb, void *ud,
                            int *end, envd_error **err)
{
    *end = 0;
    if (only_space(line, len))
        return 0;
    json_error_t jerr;
    json_t *o = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
    if (!json_is_object(o)) {
        *err = envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_HTTP, 0,
                              "execution stream: a line is not a JSON object (%s)",
                              o ? "another JSON value" : jerr.text);
        json_decref(o);
        return -1;
    }
    json_t *t = json_object_get(o, "type");
    if (!json_is_string(t)) {
        json_decref(o);
        *err = protocol("execution stream: an event without a string '%s'", "type");
        return -1;
    }
    const char *type = json_string_value(t);
    envd_code_event ev = {0};
    envd_code_result res = {0};
    envd_code_error e = {0};
    char *dumped[4] = {0};
    int rc;
    if (strcmp(type, "unexpected_end_of_execution") == 0)
        rc = unexpected_end(cb, ud, end, err);
    else if ((rc = event_from(o, type, &ev, &res, &e, dumped, err)) == 0) {
        *end = ev.type == ENVD_CODE_EVENT_END;
        rc = call(cb, ud, &ev, err);
    } else if (rc == 1)
        rc = 0;
    for (size_t i = 0; i < 4; i++)
        free(dumped[i]);
    json_decref(o);
    return rc;
}

/* One complete line. */
static int take_line(envd_code_reader *r, const char *s, size_t n)
{
    if (n && s[n - 1] == '\r')
        n--;
    r->lineno++;
    if (r->ended) {
        if (only_space(s, n))
            return 0;
        r->err = envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_HTTP, 0,
                                "execution stream: line %llu comes after end_of_execution",
                                (unsigned long long)r->lineno);
        return -1;
    }
    int end = 0;
    if (envd_code_line_dispatch(s, n, r->cb, r->ud, &end, &r->err) < 0)
        return -1;
    r->ended |= end;
    return 0;
}

static int too_long(envd_code_reader *r)
{
    r->err = envd_error_new(ENVD_RESOURCE_EXHAUSTED, ENVD_TRANSPORT_HTTP, 0,
                            "execution stream: line %llu is longer than the cap of %zu bytes "
                            "(envd_code_opts_set_max_line)",
                            (unsigned long long)r->lineno + 1, r->max_line);
    return -1;
}

int envd_code_reader_feed(envd_code_reader *r, const uint8_t *data, size_t len)
{
    const char *p = (const char *)data, *stop = p + len;
    while (!r->err && p < stop) {
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        size_t seg = (size_t)((nl ? nl : stop) - p);
        if (seg > r->max_line || r->line.len > r->max_line - seg)
            return too_long(r);
        if (nl && r->line.len == 0) { /* the whole line is here: no copy */
            if (take_line(r, p, seg) < 0)
                return -1;
        } else if (envd_buf_append(&r->line, p, seg) != 0) {
            r->err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0,
                                    "execution stream: out of memory");
            return -1;
        } else if (nl) {
            int rc = take_line(r, r->line.data, r->line.len);
            r->line.len = 0;
            if (rc < 0)
                return -1;
        }
        p += seg + (nl ? 1 : 0);
    }
    return r->err ? -1 : 0;
}

int envd_code_reader_finish(envd_code_reader *r)
{
    if (r->err)
        return -1;
    if (r->line.len > 0) {
        int rc = take_line(r, r->line.data, r->line.len);
        r->line.len = 0;
        if (rc < 0)
            return -1;
    }
    if (!r->ended) {
        r->err = envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_HTTP, 0,
                                "execution stream ended after %llu lines without "
                                "end_of_execution",
                                (unsigned long long)r->lineno);
        return -1;
    }
    return 0;
}
