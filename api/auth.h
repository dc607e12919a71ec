/* auth.h - API keys: loading a key file and checking a presented key.
 *
 *   struct fv_api_keys *keys;
 *   if (fv_api_keys_load("keys.txt", &keys, &err)) ...
 *   if (!fv_api_keys_check(keys, presented, strlen(presented))) ... // 401
 *   fv_api_keys_free(keys);
 *
 * The file holds one key per line; blank lines and lines starting with '#'
 * are ignored, surrounding whitespace is trimmed. The check compares the
 * presented key with every key, each in time that depends only on the
 * lengths, so timing does not reveal how much of a key was right.
 */
#ifndef FV_AUTH_H
#define FV_AUTH_H

#include <stddef.h>

#include "model/status.h"

#define FV_API_KEY_MAX 256

struct fv_api_keys;

/* Reads the key file. FV_ERR_NOT_FOUND / FV_ERR_IO when it cannot be read,
 * FV_ERR_FORMAT when it holds no key or a key longer than FV_API_KEY_MAX. */
enum fv_status fv_api_keys_load(const char *path, struct fv_api_keys **out,
                                struct fv_error *err);
/* Keys from memory, same format as the file (for tests and embedding). */
enum fv_status fv_api_keys_parse(const char *text, size_t size, struct fv_api_keys **out,
                                 struct fv_error *err);
void fv_api_keys_free(struct fv_api_keys *keys);
int fv_api_keys_count(const struct fv_api_keys *keys);

/* 1 when key (len bytes) is one of the keys, else 0. */
int fv_api_keys_check(const struct fv_api_keys *keys, const char *key, size_t len);

#endif
