/* envdctl batch --create / --claim: the pool grows while the jobs run.
 *
 * --create starts every create at once (16 in flight, cmd_sandbox_api.c)
 * and each sandbox joins the pool as its create completes.
 *
 * --claim makes one SandboxClaim for all the replicas. The library's claim
 * future only completes once the claim is Completed, but the controller
 * claims in batches and labels each Sandbox agents.kruise.io/claim-name as
 * it takes it (status.claimedReplicas grows meanwhile), so while the claim
 * fills, the claim's Sandboxes are listed by that label (back-off from
 * 200 ms to 2 s) and each running one joins the pool with a client made
 * from the list (its ID and token), as the claim's own result would make
 * it. Several smaller claims would do the same for the first jobs but cost
 * a claim object per slice, split the controller's batches and make one
 * shortfall several; listing keeps one claim, one release and one story.
 * When the claim future completes, the Sandboxes it has that the listing
 * did not see yet join, and its error (a partial or timed-out claim) is
 * said.
 *
 * The release gives back everything acquired, also what completes after
 * Ctrl-C: the creates still in flight are waited for and what they made is
 * killed; the claim is deleted with every Sandbox labelled with it. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#define LIST_FIRST_MS 200
#define LIST_MAX_MS 2000

struct batch_acq {
    cli_ctx *ctx;
    int quiet, stopped;
    int64_t t0;
    size_t want, got, failed;
    int over;
    /* --create */
    const char *template_id;
    cli_created *created;
    /* --claim */
    cli_claim claim;
    int claimed_made; /* the claim exists (or may): release it */
    envd_future *list;
    int64_t next_list, list_every;
    char *selector;
    batch_idset seen; /* NS/NAME of the claim's Sandboxes in the pool */
    /* the poll's pool and report */
    batch_pool *pool;
    batch_report *rep;
};

/* A sandbox with its client joins the pool. 0 or -1 (out of memory; the
 * client is freed). */
static int join(batch_acq *a, const char *label, int k8s, envd_client *client)
{
    if (batch_pool_add(a->pool, k8s ? NULL : label, k8s ? label : NULL, 0) != 0) {
        envd_client_free(client);
        return -1;
    }
    a->pool->s[a->pool->n - 1]->client = client;
    a->pool->last_ok = cli_now_ms(); /* the pool timeout counts from a usable pool */
    a->got++;
    batch_report_acquired(a->rep, cli_now_ms() - a->t0);
    return 0;
}

/* The acquisition both starters share, or NULL (out of memory). */
static batch_acq *acq_new(cli_ctx *ctx, int want, int quiet, batch_acq **out)
{
    batch_acq *a = calloc(1, sizeof(*a));
    *out = a;
    if (!a)
        return NULL;
    a->ctx = ctx;
    a->quiet = quiet;
    a->want = (size_t)want;
    a->t0 = cli_now_ms();
    return a;
}

/* ----------------------------------------------------------- --create */

int batch_acq_start_create(cli_ctx *ctx, const char *template_id, int count, int quiet,
                           batch_acq **out)
{
    batch_acq *a = acq_new(ctx, count, quiet, out);
    if (!a)
        return cli_errorf(ctx, "out of memory");
    a->template_id = template_id;
    cli_catch_interrupts(); /* until the scheduler's handler: a Ctrl-C is kept */
    return cli_create_start(ctx, template_id, count, &a->created);
}

static int pool_made(void *ud, const envd_sandbox *s)
{
    batch_acq *a = ud;
    envd_client *cl = envd_sandbox_take_client(s);
    return cl ? join(a, s->id, 0, cl) : -1;
}

static void poll_create(batch_acq *a)
{
    if (cli_create_poll(a->ctx, a->created, pool_made, a, &a->failed) > 0)
        return;
    a->over = 1;
    if (!a->quiet && a->got && !a->stopped)
        fprintf(stderr, "created %zu of %zu sandboxes of %s in %.1f s\n", a->got, a->want,
                a->template_id, (double)(cli_now_ms() - a->t0) / 1000.0);
    if (!a->got && !a->stopped)
        cli_errorf(a->ctx, "--create: no sandbox created");
}

/* ------------------------------------------------------------ --claim */

int batch_acq_start_claim(cli_ctx *ctx, const char *ref, int replicas, int quiet,
                          batch_acq **out)
{
    batch_acq *a = acq_new(ctx, replicas, quiet, out);
    if (!a)
        return cli_errorf(ctx, "out of memory");
    a->list_every = LIST_FIRST_MS;
    a->next_list = a->t0 + LIST_FIRST_MS;
    int rc = cli_claim_start(ctx, ref, replicas, quiet, &a->claim);
    a->claimed_made = a->claim.f != NULL;
    if (rc == 0 && !(a->selector = cli_strdupf("agents.kruise.io/claim-name=%s", a->claim.name)))
        rc = cli_errorf(ctx, "out of memory");
    return rc;
}

/* A listed or claimed Sandbox not in the pool yet joins it; the client is
 * taken (freed when it is not needed). */
static void claim_join(batch_acq *a, const envd_k8s_sandbox *s, envd_client *client)
{
    char *ref = cli_strdupf("%s/%s", s->namespace_, s->name);
    int added = ref ? batch_idset_add(&a->seen, ref) : -1;
    if (added == 1 && join(a, ref, 1, client) == 0)
        client = NULL;
    envd_client_free(client);
    if (added < 0 || (added == 1 && client))
        cli_errorf(a->ctx, "out of memory");
    free(ref);
}

/* A client from a listed Sandbox: its ID, its annotation's token, the
 * configuration the claim's own clients get. */
static envd_client *listed_client(batch_acq *a, const envd_k8s_sandbox *s)
{
    envd_client *cl = NULL;
    envd_error *e = NULL;
    envd_config *cfg = envd_config_dup(a->ctx->cfg);
    if (cfg && (!s->token || envd_config_set_runtime_token(cfg, s->token) == ENVD_OK))
        envd_client_new(a->ctx->rt, s->id, cfg, &cl, &e);
    envd_error_free(e); /* the claim's own result says why, if it is not joining */
    envd_config_free(cfg);
    return cl;
}

/* The claim's Sandboxes as listed so far: the running ones join. A failed
 * list is only tried again: the claim's own result says what went wrong. */
static void poll_list(batch_acq *a, int64_t now)
{
    if (!a->list) {
        if (now < a->next_list ||
            envd_k8s_sandbox_list_async(a->ctx->rt, cli_k8s_options(a->ctx), a->claim.ns,
                                        a->selector, &a->list) != ENVD_OK)
            return;
    }
    if (!envd_future_done(a->list))
        return;
    const envd_k8s_sandboxes *l = envd_future_k8s_sandboxes(a->list);
    for (size_t i = 0; l && i < l->count; i++) {
        char ref[600];
        snprintf(ref, sizeof(ref), "%s/%s", l->items[i].namespace_, l->items[i].name);
        if (l->items[i].running && !batch_idset_has(&a->seen, ref)) {
            envd_client *cl = listed_client(a, &l->items[i]);
            if (cl)
                claim_join(a, &l->items[i], cl);
        }
    }
    envd_future_free(a->list);
    a->list = NULL;
    a->next_list = now + a->list_every;
    a->list_every = a->list_every * 3 / 2 > LIST_MAX_MS ? LIST_MAX_MS : a->list_every * 3 / 2;
}

static void drop_list(batch_acq *a)
{
    if (!a->list)
        return;
    envd_future_cancel(a->list);
    envd_future_wait(a->list, -1);
    envd_future_free(a->list);
    a->list = NULL;
}

/* The claim completed: what it has joins, its shortfall is said. */
static void claim_done(batch_acq *a)
{
    drop_list(a);
    envd_future *f = a->claim.f;
    envd_k8s_claimed *c = envd_future_take_k8s_claimed(f);
    envd_status st = envd_future_status(f);
    /* no result: the claim was refused, nothing to release; canceled
     * (Ctrl-C), it may exist or not: released by name */
    a->claimed_made = c || st == ENVD_CANCELED;
    for (size_t i = 0; c && i < c->count; i++) {
        claim_join(a, &c->sandboxes[i], c->clients[i]);
        c->clients[i] = NULL;
    }
    if (st != ENVD_OK && st != ENVD_CANCELED) {
        const envd_error *e = envd_future_error(f);
        const char *why = e ? envd_error_message(e) : envd_strerror(st);
        cli_errorf(a->ctx, a->got ? "--claim: %s (going on with what it got)" : "--claim: %s",
                   why);
    }
    a->failed = a->want > a->got ? a->want - a->got : 0;
    batch_report_acquire_failed(a->rep, a->failed);
    if (!a->quiet && a->got && st != ENVD_CANCELED)
        fprintf(stderr, "claimed %zu of %zu sandboxes of %s as claim %s%s%s in %.1f s\n", a->got,
                a->want, a->claim.template_name, a->claim.ns ? a->claim.ns : "",
                a->claim.ns ? "/" : "", a->claim.name, (double)(cli_now_ms() - a->t0) / 1000.0);
    if (!a->got && st != ENVD_CANCELED)
        cli_errorf(a->ctx, "--claim: no sandbox claimed");
    envd_k8s_claimed_free(c);
    envd_future_free(f);
    a->claim.f = NULL;
    a->over = 1;
}

/* ------------------------------------------------------------- common */

int batch_acq_poll(batch_acq *a, batch_pool *p, batch_report *rep)
{
    if (a->over)
        return 0;
    a->pool = p;
    a->rep = rep;
    rep->acquiring = 1;
    if (a->created) {
        size_t failed = a->failed;
        poll_create(a);
        batch_report_acquire_failed(rep, a->failed - failed);
    } else if (a->claim.f && envd_future_done(a->claim.f)) {
        claim_done(a);
    } else if (a->claim.f) {
        poll_list(a, cli_now_ms());
    } else {
        a->over = 1;
    }
    return !a->over;
}

void batch_acq_stop(batch_acq *a)
{
    a->stopped = 1;
    if (a->created)
        cli_create_stop(a->created);
    drop_list(a);
    if (a->claim.f) /* stops the wait; the claim stays, released by name */
        envd_future_cancel(a->claim.f);
}

int batch_acq_release(batch_acq *a, int keep, int quiet)
{
    int rc = 0;
    if (!a->over && !quiet)
        fprintf(stderr, "%s: %zu of %zu sandboxes had joined the pool when the batch ended\n",
                a->created ? "--create" : "--claim", a->got, a->want);
    if (a->created) {
        size_t killed = 0;
        rc = cli_create_release(a->ctx, a->created, keep, &killed);
        size_t n = cli_created_count(a->created);
        if (rc == 0 && !quiet && n)
            fprintf(stderr, "%zu created sandbox%s %s\n", keep ? n : killed,
                    (keep ? n : killed) == 1 ? "" : "es", keep ? "kept (--keep)" : "killed");
        return rc;
    }
    batch_acq_stop(a);
    if (a->claim.f) { /* interrupted while it filled */
        envd_future_wait(a->claim.f, -1);
        envd_k8s_claimed *c = envd_future_take_k8s_claimed(a->claim.f);
        /* canceled, it may exist or not: released by name either way */
        a->claimed_made = c || envd_future_status(a->claim.f) == ENVD_CANCELED;
        envd_k8s_claimed_free(c);
    }
    if (!a->claimed_made)
        return 0;
    if (!keep && (rc = cli_claim_release(a->ctx, &a->claim)) != 0)
        return rc;
    if (!quiet)
        fprintf(stderr, "claim %s%s%s %s\n", a->claim.ns ? a->claim.ns : "",
                a->claim.ns ? "/" : "", a->claim.name,
                keep ? "kept (--keep)" : "released with its sandboxes");
    return 0;
}

void batch_acq_free(batch_acq *a)
{
    if (!a)
        return;
    drop_list(a);
    cli_created_free(a->created);
    cli_claim_free(&a->claim);
    batch_idset_free(&a->seen);
    free(a->selector);
    free(a);
}
