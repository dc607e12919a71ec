/* conn_limit.c - a hash table of client addresses: open connections and reservations. */
#include "api/conn_limit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct reservation {
    unsigned port;
    double until_s;
    struct reservation *next;
};

struct entry {
    struct fv_address address;
    unsigned open;
    unsigned reserved;
    struct reservation *reservations;
    struct entry *next;
};

struct fv_conn_limit {
    pthread_mutex_t lock;
    unsigned per_address;
    struct entry **buckets;
    size_t mask; /* buckets - 1, a power of two minus one */
};

struct fv_conn_limit *fv_conn_limit_new(unsigned per_address, unsigned addresses)
{
    if (per_address < 1)
        return NULL;
    struct fv_conn_limit *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    size_t n = 64;
    while (n < addresses && n < ((size_t)1 << 16))
        n *= 2;
    l->buckets = calloc(n, sizeof *l->buckets);
    if (!l->buckets) {
        free(l);
        return NULL;
    }
    l->mask = n - 1;
    l->per_address = per_address;
    pthread_mutex_init(&l->lock, NULL);
    return l;
}

static void entry_free(struct entry *e)
{
    while (e->reservations) {
        struct reservation *r = e->reservations;
        e->reservations = r->next;
        free(r);
    }
    free(e);
}

void fv_conn_limit_free(struct fv_conn_limit *l)
{
    if (!l)
        return;
    for (size_t i = 0; i <= l->mask; i++)
        while (l->buckets[i]) {
            struct entry *e = l->buckets[i];
            l->buckets[i] = e->next;
            entry_free(e);
        }
    free(l->buckets);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

/* FNV-1a over the family and the address bytes. */
static size_t bucket_of(const struct fv_conn_limit *l, const struct fv_address *a)
{
    uint32_t h = 2166136261u ^ (uint32_t)a->family;
    h *= 16777619u;
    int n = a->family == AF_INET ? 4 : 16;
    for (int i = 0; i < n; i++) {
        h ^= a->bytes[i];
        h *= 16777619u;
    }
    return h & l->mask;
}

/* The entry for a, created when create is set; NULL when absent or out of memory.
 * With the lock held. */
static struct entry *find(struct fv_conn_limit *l, const struct fv_address *a, int create)
{
    size_t b = bucket_of(l, a);
    for (struct entry *e = l->buckets[b]; e; e = e->next)
        if (fv_address_equal(&e->address, a))
            return e;
    if (!create)
        return NULL;
    struct entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->address = *a;
    e->next = l->buckets[b];
    l->buckets[b] = e;
    return e;
}

/* Frees e when nothing is left under it. With the lock held. */
static void release_if_empty(struct fv_conn_limit *l, struct entry *e)
{
    if (e->open || e->reservations)
        return;
    struct entry **p = &l->buckets[bucket_of(l, &e->address)];
    while (*p != e)
        p = &(*p)->next;
    *p = e->next;
    free(e);
}

/* Drops reservations that lapsed. With the lock held. */
static void lapse(struct entry *e, double now_s)
{
    for (struct reservation **p = &e->reservations; *p;) {
        if ((*p)->until_s <= now_s) {
            struct reservation *r = *p;
            *p = r->next;
            free(r);
            e->reserved--;
        } else {
            p = &(*p)->next;
        }
    }
}

int fv_conn_limit_admit(struct fv_conn_limit *l, const struct fv_address *a, unsigned port,
                        double now_s)
{
    int ok = 0;
    pthread_mutex_lock(&l->lock);
    struct entry *e = find(l, a, 1);
    if (!e)
        goto done;
    lapse(e, now_s);
    /* A reservation for the same port is for a connection that is gone (the
     * port is in use again): this one replaces it. */
    for (struct reservation *r = e->reservations; r; r = r->next)
        if (r->port == port) {
            r->until_s = now_s + FV_CONN_LIMIT_RESERVE_S;
            ok = 1;
            goto done;
        }
    if (e->open + e->reserved < l->per_address) {
        struct reservation *r = malloc(sizeof *r);
        if (r) {
            r->port = port;
            r->until_s = now_s + FV_CONN_LIMIT_RESERVE_S;
            r->next = e->reservations;
            e->reservations = r;
            e->reserved++;
            ok = 1;
        }
    }
    release_if_empty(l, e);
done:
    pthread_mutex_unlock(&l->lock);
    return ok;
}

void *fv_conn_limit_started(struct fv_conn_limit *l, const struct fv_address *a, unsigned port)
{
    pthread_mutex_lock(&l->lock);
    struct entry *e = find(l, a, 1);
    if (e) {
        for (struct reservation **p = &e->reservations; *p; p = &(*p)->next)
            if ((*p)->port == port) {
                struct reservation *r = *p;
                *p = r->next;
                free(r);
                e->reserved--;
                break;
            }
        e->open++;
    }
    pthread_mutex_unlock(&l->lock);
    return e;
}

void fv_conn_limit_closed(struct fv_conn_limit *l, void *slot)
{
    if (!slot)
        return;
    struct entry *e = slot;
    pthread_mutex_lock(&l->lock);
    if (e->open > 0)
        e->open--;
    release_if_empty(l, e);
    pthread_mutex_unlock(&l->lock);
}

unsigned fv_conn_limit_open(struct fv_conn_limit *l, const struct fv_address *a)
{
    pthread_mutex_lock(&l->lock);
    struct entry *e = find(l, a, 0);
    unsigned n = e ? e->open : 0;
    pthread_mutex_unlock(&l->lock);
    return n;
}
