/* The addon's one way to turn an errno into a JS error (berth_native.c); used by its C files. */
#ifndef BERTH_ERRNO_ERROR_H
#define BERTH_ERRNO_ERROR_H
#include <node_api.h>

/*
 * Error(strerror(err)) with .errno (positive) and .syscall set, not thrown; src/native/index.ts
 * turns it into a Node-style error. NULL if N-API failed (an exception is then pending).
 */
napi_value errno_error(napi_env env, int err, const char *syscall);

#endif
