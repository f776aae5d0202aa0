/* envdctl batch: the jobs file, streamed. JSON Lines are read a line at a
 * time; YAML through libyaml's event parser, one list item at a time (each
 * item becomes a jansson object, so both formats share one validator). */
#include "batch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

struct batch_reader {
    char *name; /* for messages */
    FILE *f;
    int own_tmp; /* f is a temporary copy of standard input */
    int yaml;
    yaml_parser_t parser;
    int parser_live;
    int yaml_done; /* the list ended or a syntax error stopped it */
    char *line;
    size_t line_cap;
    long lineno;
    size_t index;
    int nomem; /* an error was for want of memory */
};

void batch_job_free(batch_job *j)
{
    if (!j)
        return;
    free(j->id);
    free(j->cmd);
    free(j->code);
    free(j->language);
    for (char **a = j->argv; a && *a; a++)
        free(*a);
    free(j->argv);
    free(j->sandbox);
    for (char **e = j->env; e && *e; e++)
        free(*e);
    free(j->env);
    free(j->cwd);
    free(j->user);
    free(j->stdin_data);
    for (size_t i = 0; i < j->n_up; i++) {
        free(j->up[i].src);
        free(j->up[i].dst);
    }
    for (size_t i = 0; i < j->n_down; i++) {
        free(j->down[i].src);
        free(j->down[i].dst);
    }
    free(j->up);
    free(j->down);
    memset(j, 0, sizeof(*j));
}

/* ------------------------------------------------------------ one job */

static const char *const known_fields[] = {"id",  "cmd",     "argv",    "sandbox", "env",
                                           "cwd", "user",    "timeout", "stdin",   "upload",
                                           "download", "retries", "code",  "language", NULL};

static int is_known(const char *k)
{
    for (const char *const *f = known_fields; *f; f++)
        if (strcmp(*f, k) == 0)
            return 1;
    return 0;
}

/* A string field: absent is fine (*out stays NULL). */
static int take_string(json_t *o, const char *key, char **out, char **why)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_string(v) || json_string_length(v) == 0) {
        *why = cli_strdupf("'%s' must be a non-empty string", key);
        return -1;
    }
    *out = strdup(json_string_value(v));
    return *out ? 0 : -1;
}

static int take_argv(json_t *v, char ***out, char **why)
{
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n == 0) {
        *why = cli_strdupf("'argv' must be a non-empty array of strings");
        return -1;
    }
    char **a = calloc(n + 1, sizeof(*a));
    if (!(*out = a))
        return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s)) {
            *why = cli_strdupf("'argv' item %zu is not a string", i);
            return -1;
        }
        if (!(a[i] = strdup(json_string_value(s))))
            return -1;
    }
    return 0;
}

static int take_env(json_t *v, char ***out, char **why)
{
    if (!json_is_object(v)) {
        *why = cli_strdupf("'env' must be an object of strings");
        return -1;
    }
    char **e = calloc(2 * json_object_size(v) + 1, sizeof(*e));
    if (!(*out = e))
        return -1;
    const char *k;
    json_t *val;
    size_t i = 0;
    json_object_foreach(v, k, val)
    {
        if (!json_is_string(val) || !*k) {
            *why = cli_strdupf("'env' value of '%s' is not a string", k);
            return -1;
        }
        if (!(e[i++] = strdup(k)) || !(e[i++] = strdup(json_string_value(val))))
            return -1;
    }
    return 0;
}

static int take_xfers(json_t *v, const char *key, int local_src, batch_xfer **out, size_t *n,
                      char **why)
{
    if (!json_is_array(v)) {
        *why = cli_strdupf("'%s' must be a list of {\"src\", \"dst\"}", key);
        return -1;
    }
    size_t cnt = json_array_size(v);
    if (cnt && !(*out = calloc(cnt, sizeof(**out))))
        return -1;
    for (size_t i = 0; i < cnt; i++) {
        json_t *it = json_array_get(v, i), *s = json_object_get(it, "src"),
               *d = json_object_get(it, "dst");
        if (!json_is_object(it) || json_object_size(it) != 2 || !json_is_string(s) ||
            !json_is_string(d) || !*json_string_value(s) || !*json_string_value(d)) {
            *why = cli_strdupf("'%s' item %zu must be {\"src\": PATH, \"dst\": PATH}", key, i);
            return -1;
        }
        struct stat st;
        const char *src = json_string_value(s);
        if (local_src && (stat(src, &st) != 0 || !S_ISREG(st.st_mode))) {
            *why = cli_strdupf("'%s' item %zu: %s: %s", key, i, src,
                               errno && stat(src, &st) != 0 ? strerror(errno) : "not a file");
            return -1;
        }
        (*n)++;
        if (!((*out)[i].src = strdup(src)) || !((*out)[i].dst = strdup(json_string_value(d))))
            return -1;
    }
    return 0;
}

static int take_number_fields(json_t *o, batch_job *j, char **why)
{
    json_t *v = json_object_get(o, "timeout");
    if (v) {
        double t = json_number_value(v);
        if (!json_is_number(v) || t <= 0 || t > 1e9) {
            *why = cli_strdupf("'timeout' must be a positive number of seconds");
            return -1;
        }
        j->timeout_ms = (int64_t)(t * 1000.0 + 0.5);
    }
    j->retries = -1;
    if ((v = json_object_get(o, "retries"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100) {
            *why = cli_strdupf("'retries' must be an integer from 0 to 100");
            return -1;
        }
        j->retries = (int)json_integer_value(v);
    }
    return 0;
}

/* Fills j from one object; -1 with *why (NULL: out of memory). */
static int job_from_json(json_t *o, batch_job *j, char **why)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (!is_known(k)) {
            *why = cli_strdupf("unknown field '%s'", k);
            return -1;
        }
    }
    json_t *cmd = json_object_get(o, "cmd"), *argv = json_object_get(o, "argv");
    json_t *code = json_object_get(o, "code");
    if (!!cmd + !!argv + !!code != 1) {
        *why = cli_strdupf(cmd && argv ? "both 'cmd' and 'argv' given (exactly one)"
                           : code      ? "'code' with 'cmd' or 'argv' given (exactly one)"
                                       : "missing 'cmd' or 'argv' (or 'code')");
        return -1;
    }
    if (code && (json_object_get(o, "stdin") || json_object_get(o, "user"))) {
        *why = cli_strdupf("'code' takes no '%s'", json_object_get(o, "stdin") ? "stdin" : "user");
        return -1;
    }
    if (!code && json_object_get(o, "language")) {
        *why = cli_strdupf("'language' goes with 'code'");
        return -1;
    }
    if ((v = json_object_get(o, "id")) && json_is_integer(v))
        j->id = cli_strdupf("%lld", (long long)json_integer_value(v));
    else if (take_string(o, "id", &j->id, why) != 0)
        return -1;
    if (take_string(o, "cmd", &j->cmd, why) || take_string(o, "code", &j->code, why) ||
        take_string(o, "language", &j->language, why) || (argv && take_argv(argv, &j->argv, why)) ||
        take_string(o, "sandbox", &j->sandbox, why) || take_string(o, "cwd", &j->cwd, why) ||
        take_string(o, "user", &j->user, why) || take_number_fields(o, j, why))
        return -1;
    if ((v = json_object_get(o, "env")) && take_env(v, &j->env, why))
        return -1;
    if ((v = json_object_get(o, "stdin"))) {
        if (!json_is_string(v)) {
            *why = cli_strdupf("'stdin' must be a string");
            return -1;
        }
        j->stdin_len = json_string_length(v);
        if (!(j->stdin_data = malloc(j->stdin_len + 1)))
            return -1;
        memcpy(j->stdin_data, json_string_value(v), j->stdin_len + 1);
    }
    if ((v = json_object_get(o, "upload")) && take_xfers(v, "upload", 1, &j->up, &j->n_up, why))
        return -1;
    if ((v = json_object_get(o, "download")) &&
        take_xfers(v, "download", 0, &j->down, &j->n_down, why))
        return -1;
    return 0;
}

/* The job at r->lineno from o (NULL: not an object). */
static int make_job(batch_reader *r, json_t *o, long line, batch_job *job, char **err)
{
    memset(job, 0, sizeof(*job));
    job->line = line;
    job->index = r->index++;
    char *why = NULL;
    int rc = 0;
    if (!json_is_object(o)) {
        why = cli_strdupf("a job must be an object");
        rc = -1;
    } else if (job_from_json(o, job, &why) != 0) {
        rc = -1;
    } else if (!job->id && !(job->id = cli_strdupf("%ld", r->yaml ? (long)job->index + 1 : line))) {
        rc = -1;
    }
    if (rc) {
        r->nomem |= !why;
        *err = cli_strdupf("%s:%ld: %s", r->name, line, why ? why : "out of memory");
        batch_job_free(job);
    }
    free(why);
    return rc;
}

/* ---------------------------------------------------------- JSON Lines */

static int next_jsonl(batch_reader *r, batch_job *job, char **err)
{
    for (;;) {
        errno = 0;
        ssize_t n = getline(&r->line, &r->line_cap, r->f);
        if (n < 0) {
            if (ferror(r->f) || errno == ENOMEM) { /* not the end: getline could not grow */
                r->nomem = errno == ENOMEM;
                *err = cli_strdupf("%s: %s", r->name, strerror(errno));
                return -1;
            }
            return 0;
        }
        r->lineno++;
        const char *p = r->line;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (!*p || *p == '#')
            continue;
        json_error_t je;
        json_t *o = json_loadb(r->line, (size_t)n, JSON_REJECT_DUPLICATES, &je);
        if (!o) {
            *err = cli_strdupf("%s:%ld: invalid JSON: %s", r->name, r->lineno, je.text);
            r->index++; /* it still takes a place, so later indexes stay put */
            return -1;
        }
        int rc = make_job(r, o, r->lineno, job, err);
        json_decref(o);
        return rc == 0 ? 1 : -1;
    }
}

/* ---------------------------------------------------------------- YAML */

static int yaml_next_event(batch_reader *r, yaml_event_t *ev, char **err)
{
    if (!yaml_parser_parse(&r->parser, ev)) {
        *err = cli_strdupf("%s:%ld: YAML: %s", r->name, (long)r->parser.problem_mark.line + 1,
                           r->parser.problem ? r->parser.problem : "syntax error");
        r->yaml_done = 1;
        return -1;
    }
    return 0;
}

/* A plain scalar is typed as YAML 1.2's core schema says; quoted ones are
 * strings. */
static json_t *yaml_scalar(const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_stringn(s, len);
    if (!strcmp(s, "null") || !strcmp(s, "~") || len == 0)
        return json_null();
    if (!strcmp(s, "true") || !strcmp(s, "false"))
        return json_boolean(s[0] == 't');
    char *end;
    errno = 0;
    long long i = strtoll(s, &end, 10);
    if (*s && !*end && !errno)
        return json_integer(i);
    double d = strtod(s, &end);
    if (*s && !*end && !errno)
        return json_real(d);
    return json_stringn(s, len);
}

static json_t *yaml_node(batch_reader *r, yaml_event_t *ev, int depth, char **err);

/* The rest of a mapping or sequence whose start event was consumed. */
static json_t *yaml_collection(batch_reader *r, int mapping, int depth, char **err)
{
    json_t *c = mapping ? json_object() : json_array();
    for (;;) {
        yaml_event_t ev;
        if (yaml_next_event(r, &ev, err) != 0)
            break;
        yaml_event_type_t t = ev.type;
        if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return c;
        }
        json_t *key = mapping ? yaml_node(r, &ev, depth + 1, err) : NULL;
        if (mapping && (!key || !json_is_string(key))) {
            if (key && !*err)
                *err = cli_strdupf("%s:%ld: a key must be a string", r->name,
                                   (long)ev.start_mark.line + 1);
            json_decref(key);
            break;
        }
        yaml_event_t vev;
        if (mapping && yaml_next_event(r, &vev, err) != 0) {
            json_decref(key);
            break;
        }
        json_t *val = yaml_node(r, mapping ? &vev : &ev, depth + 1, err);
        if (!val) {
            json_decref(key);
            break;
        }
        if (mapping) {
            if (json_object_get(c, json_string_value(key)) && !*err)
                *err = cli_strdupf("%s:%ld: duplicate key '%s'", r->name,
                                   (long)vev.start_mark.line + 1, json_string_value(key));
            json_object_set_new(c, json_string_value(key), val);
            json_decref(key);
            if (*err)
                break;
        } else {
            json_array_append_new(c, val);
        }
    }
    json_decref(c);
    return NULL;
}

/* The node starting with ev (consumed, and deleted here). */
static json_t *yaml_node(batch_reader *r, yaml_event_t *ev, int depth, char **err)
{
    json_t *out = NULL;
    long line = (long)ev->start_mark.line + 1;
    if (depth > 32)
        *err = cli_strdupf("%s:%ld: nested too deeply", r->name, line);
    else if (ev->type == YAML_SCALAR_EVENT)
        out = yaml_scalar(ev);
    else if (ev->type == YAML_MAPPING_START_EVENT || ev->type == YAML_SEQUENCE_START_EVENT)
        out = yaml_collection(r, ev->type == YAML_MAPPING_START_EVENT, depth, err);
    else
        *err = cli_strdupf("%s:%ld: aliases and tags are not supported", r->name, line);
    yaml_event_delete(ev);
    return out;
}

/* Up to the list's start: stream, document, sequence. */
static int yaml_open_list(batch_reader *r, char **err)
{
    for (;;) {
        yaml_event_t ev;
        if (yaml_next_event(r, &ev, err) != 0)
            return -1;
        yaml_event_type_t t = ev.type;
        long line = (long)ev.start_mark.line + 1;
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_START_EVENT)
            continue;
        if (t == YAML_SEQUENCE_START_EVENT)
            return 0;
        r->yaml_done = 1;
        if (t == YAML_STREAM_END_EVENT)
            return 0; /* an empty file: no jobs */
        *err = cli_strdupf("%s:%ld: expected a list of jobs", r->name, line);
        return -1;
    }
}

static int next_yaml(batch_reader *r, batch_job *job, char **err)
{
    if (r->yaml_done)
        return 0;
    if (!r->parser_live) {
        if (!yaml_parser_initialize(&r->parser)) {
            r->nomem = 1;
            *err = cli_strdupf("out of memory");
            return -1;
        }
        yaml_parser_set_input_file(&r->parser, r->f);
        r->parser_live = 1;
        if (yaml_open_list(r, err) != 0 || r->yaml_done)
            return r->yaml_done && !*err ? 0 : -1;
    }
    yaml_event_t ev;
    if (yaml_next_event(r, &ev, err) != 0)
        return -1;
    if (ev.type == YAML_SEQUENCE_END_EVENT) {
        yaml_event_delete(&ev);
        r->yaml_done = 1;
        return 0;
    }
    long line = (long)ev.start_mark.line + 1;
    json_t *o = yaml_node(r, &ev, 0, err);
    if (!o) {
        r->yaml_done = 1; /* the parser's position is lost */
        if (!*err) {
            r->nomem = 1;
            *err = cli_strdupf("%s:%ld: out of memory", r->name, line);
        }
        return -1;
    }
    int rc = make_job(r, o, line, job, err);
    json_decref(o);
    return rc == 0 ? 1 : -1;
}

/* ------------------------------------------------------------- reader */

int batch_reader_nomem(const batch_reader *r)
{
    return r->nomem;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static FILE *spool_stdin(char **err)
{
    FILE *t = tmpfile();
    char buf[65536];
    size_t n;
    while (t && (n = fread(buf, 1, sizeof(buf), stdin)) > 0) {
        if (fwrite(buf, 1, n, t) != n) {
            fclose(t);
            t = NULL;
        }
    }
    if (!t || ferror(stdin)) {
        *err = cli_strdupf("-: cannot read standard input: %s", strerror(errno));
        if (t)
            fclose(t);
        return NULL;
    }
    rewind(t);
    return t;
}

batch_reader *batch_reader_open(const char *path, int stdin_yaml, char **err)
{
    batch_reader *r = calloc(1, sizeof(*r));
    if (!r || !(r->name = strdup(path))) {
        free(r);
        *err = NULL; /* out of memory */
        return NULL;
    }
    if (strcmp(path, "-") == 0) {
        r->f = spool_stdin(err);
        r->own_tmp = 1;
        r->yaml = stdin_yaml;
    } else {
        r->f = fopen(path, "r");
        if (!r->f)
            *err = cli_strdupf("%s: %s", path, strerror(errno));
        r->yaml = ends_with(path, ".yaml") || ends_with(path, ".yml");
    }
    if (!r->f) {
        free(r->name);
        free(r);
        return NULL;
    }
    return r;
}

int batch_reader_rewind(batch_reader *r, char **err)
{
    if (r->parser_live)
        yaml_parser_delete(&r->parser);
    r->parser_live = 0;
    r->yaml_done = 0;
    r->lineno = 0;
    r->index = 0;
    if (fseek(r->f, 0, SEEK_SET) != 0) {
        *err = cli_strdupf("%s: cannot read it again: %s", r->name, strerror(errno));
        return -1;
    }
    clearerr(r->f);
    return 0;
}

int batch_reader_next(batch_reader *r, batch_job *job, char **err)
{
    *err = NULL;
    return r->yaml ? next_yaml(r, job, err) : next_jsonl(r, job, err);
}

void batch_reader_close(batch_reader *r)
{
    if (!r)
        return;
    if (r->parser_live)
        yaml_parser_delete(&r->parser);
    if (r->f)
        fclose(r->f);
    free(r->line);
    free(r->name);
    free(r);
}
