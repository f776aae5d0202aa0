/* The request queue between any thread and an engine's I/O thread (the
 * libcurl engine's and h2c.c's): a call's pending requests are bits on one
 * entry embedded in the call, queued once however often it is asked for.
 * The caller holds the engine's lock around put and take, and takes a
 * reference for the queue when put returns 1. take hands the whole queue
 * over: each entry's bits move to taken_bits and its link to tnext, so
 * another thread may queue the same call again (a new entry, with its own
 * reference) while the I/O thread works through the list. */
#ifndef ENVD_TRANSPORT_REQQ_H
#define ENVD_TRANSPORT_REQQ_H

#include <stddef.h>

typedef struct envd_req {
    struct envd_req *qnext, *tnext;
    unsigned qbits, taken_bits;
    int queued;
} envd_req;

typedef struct envd_reqq {
    envd_req *head, *tail;
} envd_reqq;

/* The object an entry is embedded in, as member m of type T. */
#define ENVD_REQ_OWNER(r, T, m) ((T *)(void *)((char *)(r) - offsetof(T, m)))

/* Adds bits to r, queuing r unless it is queued already: 1 when it was
 * queued now (the caller takes the queue's reference). */
static inline int envd_reqq_put(envd_reqq *q, envd_req *r, unsigned bits)
{
    r->qbits |= bits;
    if (r->queued)
        return 0;
    r->queued = 1;
    r->qnext = NULL;
    if (q->tail)
        q->tail->qnext = r;
    else
        q->head = r;
    q->tail = r;
    return 1;
}

/* The whole queue, linked by tnext, with each entry's bits in taken_bits. */
static inline envd_req *envd_reqq_take(envd_reqq *q)
{
    envd_req *list = q->head;
    for (envd_req *r = list; r; r = r->qnext) {
        r->taken_bits = r->qbits;
        r->qbits = 0;
        r->queued = 0;
        r->tnext = r->qnext;
    }
    q->head = q->tail = NULL;
    return list;
}

#endif
