/* jobs_dir.c - a folder of job records shared by replicas: atomic replace, write-once, markers. */
#include "api/jobs_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_PREFIX ".tmp-"
#define NAME_MAX_LEN 64

static const char *const suffixes[FV_JOBS_FILE_COUNT] = {".live.json", ".final.json", ".cancel"};
_Static_assert(sizeof suffixes / sizeof suffixes[0] == FV_JOBS_FILE_COUNT, "one suffix a kind");

struct fv_jobs_dir {
    char *path;            /* for messages */
    int fd;                /* the folder, O_DIRECTORY: every name is relative to it */
    atomic_uint_fast64_t serial; /* temporary names when getrandom has nothing */
};

int fv_jobs_id_valid(const char *s, size_t len)
{
    if (len != FV_JOBS_ID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* The file name of a record; 0, or -1 for an id that is not one. */
static int record_name(const char *id, enum fv_jobs_file kind, char name[NAME_MAX_LEN])
{
    if (!id || !fv_jobs_id_valid(id, strnlen(id, FV_JOBS_ID_LEN + 1)) || (int)kind < 0 ||
        kind >= FV_JOBS_FILE_COUNT)
        return -1;
    snprintf(name, NAME_MAX_LEN, "%s%s", id, suffixes[kind]);
    return 0;
}

/* A fresh temporary name: random, so that replicas on other machines never pick
 * the same one. */
static void temp_name(struct fv_jobs_dir *d, char name[NAME_MAX_LEN])
{
    uint64_t r[2];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r[0] = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        r[1] = (uint64_t)getpid() << 32 ^ atomic_fetch_add(&d->serial, 1);
    }
    snprintf(name, NAME_MAX_LEN, TMP_PREFIX "%016llx%016llx", (unsigned long long)r[0],
             (unsigned long long)r[1]);
}

/* Writes text to a new temporary file and makes it durable; its name in tmp. */
static enum fv_status write_temp(struct fv_jobs_dir *d, const char *text, size_t len,
                                 char tmp[NAME_MAX_LEN], struct fv_error *err)
{
    int fd = -1;
    for (int attempt = 0; attempt < 4 && fd < 0; attempt++) {
        temp_name(d, tmp);
        fd = openat(d->fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0)
        return fv_error_set(err, FV_ERR_IO, "%s: cannot create a file: %s", d->path,
                            strerror(errno));
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    int e = errno;
    int ok = done == len && fsync(fd) == 0;
    if (!ok)
        e = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (!ok) {
        unlinkat(d->fd, tmp, 0);
        return fv_error_set(err, FV_ERR_IO, "%s: cannot write a record: %s", d->path,
                            strerror(e));
    }
    return FV_OK;
}

/* Makes a rename or link in the folder durable. */
static void sync_dir(struct fv_jobs_dir *d)
{
    fsync(d->fd);
}

enum fv_status fv_jobs_dir_open(const char *path, struct fv_jobs_dir **out, struct fv_error *err)
{
    *out = NULL;
    if (!path || !*path)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "no jobs folder given");
    if (mkdir(path, 0750) != 0 && errno != EEXIST)
        return fv_error_set(err, FV_ERR_IO, "jobs folder %s: cannot create it: %s", path,
                            strerror(errno));
    struct fv_jobs_dir *d = calloc(1, sizeof *d);
    if (!d || !(d->path = strdup(path))) {
        free(d);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    }
    d->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->fd < 0) {
        enum fv_status st = fv_error_set(err, FV_ERR_IO, "jobs folder %s: %s", path,
                                         strerror(errno));
        fv_jobs_dir_free(d);
        return st;
    }
    /* Write-once results rest on link(2): refuse a folder without it now rather
     * than fail every evaluation later. */
    char tmp[NAME_MAX_LEN], probe[NAME_MAX_LEN];
    enum fv_status st = write_temp(d, "", 0, tmp, err);
    if (st) {
        fv_jobs_dir_free(d);
        return st;
    }
    temp_name(d, probe);
    int linked = linkat(d->fd, tmp, d->fd, probe, 0) == 0;
    int e = errno;
    unlinkat(d->fd, tmp, 0);
    if (!linked) {
        st = fv_error_set(err, FV_ERR_UNSUPPORTED,
                          "jobs folder %s: cannot hard-link files there (%s); replicas need "
                          "link(2) to agree on results", path, strerror(e));
        fv_jobs_dir_free(d);
        return st;
    }
    unlinkat(d->fd, probe, 0);
    *out = d;
    return FV_OK;
}

void fv_jobs_dir_free(struct fv_jobs_dir *d)
{
    if (!d)
        return;
    if (d->fd >= 0)
        close(d->fd);
    free(d->path);
    free(d);
}

enum fv_status fv_jobs_dir_put(struct fv_jobs_dir *d, const char *id, enum fv_jobs_file kind,
                               const char *text, size_t len, struct fv_error *err)
{
    char name[NAME_MAX_LEN], tmp[NAME_MAX_LEN];
    if (record_name(id, kind, name))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "not a job id");
    enum fv_status st = write_temp(d, text, len, tmp, err);
    if (st)
        return st;
    if (renameat(d->fd, tmp, d->fd, name) != 0) {
        int e = errno;
        unlinkat(d->fd, tmp, 0);
        return fv_error_set(err, FV_ERR_IO, "%s/%s: %s", d->path, name, strerror(e));
    }
    sync_dir(d);
    return FV_OK;
}

enum fv_status fv_jobs_dir_put_once(struct fv_jobs_dir *d, const char *id, enum fv_jobs_file kind,
                                    const char *text, size_t len, int *created,
                                    struct fv_error *err)
{
    char name[NAME_MAX_LEN], tmp[NAME_MAX_LEN];
    *created = 0;
    if (record_name(id, kind, name))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "not a job id");
    enum fv_status st = write_temp(d, text, len, tmp, err);
    if (st)
        return st;
    int e = linkat(d->fd, tmp, d->fd, name, 0) == 0 ? 0 : errno;
    unlinkat(d->fd, tmp, 0);
    if (e && e != EEXIST)
        return fv_error_set(err, FV_ERR_IO, "%s/%s: %s", d->path, name, strerror(e));
    *created = e == 0;
    sync_dir(d);
    return FV_OK;
}

enum fv_status fv_jobs_dir_get(struct fv_jobs_dir *d, const char *id, enum fv_jobs_file kind,
                               size_t max, char **text, size_t *len, struct fv_error *err)
{
    char name[NAME_MAX_LEN];
    *text = NULL;
    *len = 0;
    if (record_name(id, kind, name))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "not a job id");
    int fd = openat(d->fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return fv_error_set(err, errno == ENOENT ? FV_ERR_NOT_FOUND : FV_ERR_IO, "%s/%s: %s",
                            d->path, name, strerror(errno));
    struct stat sb;
    enum fv_status st = FV_OK;
    char *buf = NULL;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = fv_error_set(err, FV_ERR_IO, "%s/%s: not a regular file", d->path, name);
        goto done;
    }
    if ((uint64_t)sb.st_size > max) {
        st = fv_error_set(err, FV_ERR_TOO_LARGE, "%s/%s: %lld bytes, more than %zu", d->path,
                          name, (long long)sb.st_size, max);
        goto done;
    }
    size_t size = (size_t)sb.st_size, got = 0;
    if (!(buf = malloc(size + 1))) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* The file is never written in place (only replaced), so its size holds. */
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got != size) {
        st = fv_error_set(err, FV_ERR_IO, "%s/%s: short read", d->path, name);
        goto done;
    }
    buf[size] = 0;
    *text = buf;
    *len = size;
    buf = NULL;
done:
    free(buf);
    close(fd);
    return st;
}

int fv_jobs_dir_has(struct fv_jobs_dir *d, const char *id, enum fv_jobs_file kind)
{
    char name[NAME_MAX_LEN];
    struct stat sb;
    return record_name(id, kind, name) == 0 &&
           fstatat(d->fd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

static int entry_order(const void *a, const void *b)
{
    const struct fv_jobs_entry *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Calls fn on each name in the folder; 0, or -1 when it cannot be read. */
static int each_name(struct fv_jobs_dir *d, void (*fn)(void *user, const char *name), void *user)
{
    int fd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(dir)))
        fn(user, e->d_name);
    closedir(dir);
    return 0;
}

struct listing {
    struct fv_jobs_dir *d;
    enum fv_jobs_file kind;
    struct fv_jobs_entry *entries;
    size_t n, cap;
    int nomem;
};

static void list_one(void *user, const char *name)
{
    struct listing *l = user;
    const char *suffix = suffixes[l->kind];
    if (l->nomem || !fv_jobs_id_valid(name, strnlen(name, FV_JOBS_ID_LEN)) ||
        strcmp(name + FV_JOBS_ID_LEN, suffix) != 0)
        return;
    struct stat sb;
    if (fstatat(l->d->fd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode))
        return; /* removed meanwhile, or not ours */
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct fv_jobs_entry *grown = realloc(l->entries, cap * sizeof *grown);
        if (!grown) {
            l->nomem = 1;
            return;
        }
        l->entries = grown;
        l->cap = cap;
    }
    struct fv_jobs_entry *e = &l->entries[l->n++];
    memcpy(e->id, name, FV_JOBS_ID_LEN);
    e->id[FV_JOBS_ID_LEN] = 0;
    e->mtime = sb.st_mtim;
}

enum fv_status fv_jobs_dir_list(struct fv_jobs_dir *d, enum fv_jobs_file kind,
                                struct fv_jobs_entry **out, size_t *n, struct fv_error *err)
{
    *out = NULL;
    *n = 0;
    if ((int)kind < 0 || kind >= FV_JOBS_FILE_COUNT)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "no such record kind");
    struct listing l = {.d = d, .kind = kind};
    if (each_name(d, list_one, &l)) {
        free(l.entries);
        return fv_error_set(err, FV_ERR_IO, "%s: cannot list: %s", d->path, strerror(errno));
    }
    if (l.nomem) {
        free(l.entries);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory listing %s", d->path);
    }
    if (l.n)
        qsort(l.entries, l.n, sizeof *l.entries, entry_order);
    *out = l.entries;
    *n = l.n;
    return FV_OK;
}

void fv_jobs_dir_delete(struct fv_jobs_dir *d, const char *id, enum fv_jobs_file kind)
{
    char name[NAME_MAX_LEN];
    if (record_name(id, kind, name) == 0)
        unlinkat(d->fd, name, 0);
}

void fv_jobs_dir_remove(struct fv_jobs_dir *d, const char *id)
{
    fv_jobs_dir_delete(d, id, FV_JOBS_LIVE);
    fv_jobs_dir_delete(d, id, FV_JOBS_CANCEL);
    fv_jobs_dir_delete(d, id, FV_JOBS_FINAL);
}

struct sweep {
    struct fv_jobs_dir *d;
    time_t before;
};

static void sweep_one(void *user, const char *name)
{
    struct sweep *s = user;
    struct stat sb;
    if (strncmp(name, TMP_PREFIX, sizeof TMP_PREFIX - 1) == 0 &&
        fstatat(s->d->fd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && sb.st_mtime < s->before)
        unlinkat(s->d->fd, name, 0);
}

void fv_jobs_dir_sweep(struct fv_jobs_dir *d, double age_s)
{
    struct sweep s = {d, time(NULL) - (time_t)age_s};
    each_name(d, sweep_one, &s);
}
