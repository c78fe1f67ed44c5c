/*
 * berth_native: the few Linux syscalls that Node's fs module does not offer and that the image
 * store needs (device nodes and fifos in layers, extended attributes such as overlayfs whiteout
 * markers and file capabilities, and mount/umount for snapshots), and a sealed in-memory copy of
 * a binary and a light process spawn with its own reaping (the OCI runtime for health probes, see
 * src/runtime/probe.ts).
 *
 * Every function is synchronous (they are single fast syscalls) except umount2Async (unmounting
 * an overlay syncs the whole file system under it, which can take a second on a busy disk, so it
 * runs on a thread of its own), spawnWatched, the network namespace work of netns.c and the
 * blob writes of blobwrite.c (on libuv's thread pool). On failure a function throws a
 * plain Error carrying `errno` (positive) and `syscall`; src/native/index.ts turns that into a
 * Node-style error (code, negative errno, path), so the C side stays small.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <termios.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <signal.h>
#include <spawn.h>
#include <pthread.h>
#include <node_api.h>
#include <uv.h>
#include "netns.h"
#include "memory.h"
#include "blobwrite.h"
#include "errno_error.h"

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error(env, NULL, "berth_native: N-API call failed: " #call); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

napi_value errno_error(napi_env env, int err, const char *syscall) {
  napi_value msg, error, errno_v, syscall_v;
  if (napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &msg) != napi_ok) return NULL;
  if (napi_create_error(env, NULL, msg, &error) != napi_ok) return NULL;
  napi_create_int32(env, err, &errno_v);
  napi_set_named_property(env, error, "errno", errno_v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_v);
  napi_set_named_property(env, error, "syscall", syscall_v);
  return error;
}

/* Throws errno_error(); returns NULL for the caller to return. */
static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  napi_value error = errno_error(env, err, syscall);
  if (error != NULL) napi_throw(env, error);
  return NULL;
}

/*
 * Copies a JS string argument into a malloc'd buffer. A null/undefined argument gives NULL in
 * *out when allow_null is set (mount's source, fstype and data may be NULL). Returns 0 on success.
 */
static int get_string(napi_env env, napi_value v, int allow_null, char **out) {
  napi_valuetype t;
  size_t len = 0;
  *out = NULL;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_null || t == napi_undefined) {
    if (allow_null) return 0;
    napi_throw_type_error(env, NULL, "expected a string");
    return -1;
  }
  if (t != napi_string) {
    napi_throw_type_error(env, NULL, "expected a string");
    return -1;
  }
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return -1;
  *out = malloc(len + 1);
  if (*out == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return -1;
  }
  if (napi_get_value_string_utf8(env, v, *out, len + 1, &len) != napi_ok) {
    free(*out);
    *out = NULL;
    return -1;
  }
  return 0;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return -1;
  if (argc < want) {
    napi_throw_type_error(env, NULL, "too few arguments");
    return -1;
  }
  return 0;
}

/* mknod(path, mode, major, minor) */
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char *path;
  uint32_t mode, major, minor;
  if (get_args(env, info, 4, argv)) return NULL;
  if (get_string(env, argv[0], 0, &path)) return NULL;
  if (napi_get_value_uint32(env, argv[1], &mode) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &major) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &minor) != napi_ok) {
    free(path);
    napi_throw_type_error(env, NULL, "mode, major and minor must be numbers");
    return NULL;
  }
  int rc = mknod(path, (mode_t)mode, makedev(major, minor));
  int err = errno;
  free(path);
  if (rc != 0) return throw_errno(env, err, "mknod");
  return NULL;
}

/* lsetxattr(path, name, value: Buffer) */
static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char *path, *name;
  void *data;
  size_t len;
  bool is_buffer = false;
  if (get_args(env, info, 3, argv)) return NULL;
  CHECK(napi_is_buffer(env, argv[2], &is_buffer));
  if (!is_buffer) {
    napi_throw_type_error(env, NULL, "value must be a Buffer");
    return NULL;
  }
  CHECK(napi_get_buffer_info(env, argv[2], &data, &len));
  if (get_string(env, argv[0], 0, &path)) return NULL;
  if (get_string(env, argv[1], 0, &name)) {
    free(path);
    return NULL;
  }
  int rc = lsetxattr(path, name, data, len, 0);
  int err = errno;
  free(path);
  free(name);
  if (rc != 0) return throw_errno(env, err, "lsetxattr");
  return NULL;
}

/* lgetxattr(path, name) -> Buffer | null (null when the attribute is absent) */
static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2], result;
  char *path, *name;
  if (get_args(env, info, 2, argv)) return NULL;
  if (get_string(env, argv[0], 0, &path)) return NULL;
  if (get_string(env, argv[1], 0, &name)) {
    free(path);
    return NULL;
  }
  /* Size first, then read; retry if the value grew in between (ERANGE). */
  for (int attempt = 0; attempt < 5; attempt++) {
    ssize_t size = lgetxattr(path, name, NULL, 0);
    if (size < 0) {
      int err = errno;
      free(path);
      free(name);
      if (err == ENODATA) {
        CHECK(napi_get_null(env, &result));
        return result;
      }
      return throw_errno(env, err, "lgetxattr");
    }
    void *buf = malloc(size > 0 ? (size_t)size : 1);
    if (buf == NULL) {
      free(path);
      free(name);
      napi_throw_error(env, NULL, "out of memory");
      return NULL;
    }
    ssize_t got = lgetxattr(path, name, buf, (size_t)size);
    if (got < 0) {
      int err = errno;
      free(buf);
      if (err == ERANGE) continue;
      free(path);
      free(name);
      if (err == ENODATA) {
        CHECK(napi_get_null(env, &result));
        return result;
      }
      return throw_errno(env, err, "lgetxattr");
    }
    free(path);
    free(name);
    napi_status st = napi_create_buffer_copy(env, (size_t)got, buf, NULL, &result);
    free(buf);
    if (st != napi_ok) {
      napi_throw_error(env, NULL, "berth_native: cannot create buffer");
      return NULL;
    }
    return result;
  }
  free(path);
  free(name);
  return throw_errno(env, ERANGE, "lgetxattr");
}

/* llistxattr(path) -> string[] */
static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1], result, item;
  char *path;
  if (get_args(env, info, 1, argv)) return NULL;
  if (get_string(env, argv[0], 0, &path)) return NULL;
  for (int attempt = 0; attempt < 5; attempt++) {
    ssize_t size = llistxattr(path, NULL, 0);
    if (size < 0) {
      int err = errno;
      free(path);
      return throw_errno(env, err, "llistxattr");
    }
    char *buf = malloc(size > 0 ? (size_t)size : 1);
    if (buf == NULL) {
      free(path);
      napi_throw_error(env, NULL, "out of memory");
      return NULL;
    }
    ssize_t got = size > 0 ? llistxattr(path, buf, (size_t)size) : 0;
    if (got < 0) {
      int err = errno;
      free(buf);
      if (err == ERANGE) continue;
      free(path);
      return throw_errno(env, err, "llistxattr");
    }
    free(path);
    if (napi_create_array(env, &result) != napi_ok) {
      free(buf);
      return NULL;
    }
    uint32_t idx = 0;
    ssize_t off = 0;
    while (off < got) {
      size_t n = strnlen(buf + off, (size_t)(got - off));
      if (n > 0) {
        if (napi_create_string_utf8(env, buf + off, n, &item) != napi_ok ||
            napi_set_element(env, result, idx++, item) != napi_ok) {
          free(buf);
          return NULL;
        }
      }
      off += (ssize_t)n + 1;
    }
    free(buf);
    return result;
  }
  free(path);
  return throw_errno(env, ERANGE, "llistxattr");
}

/*
 * lstatXattrs(path, out: Float64Array(10), wantXattrs) -> string[] | undefined
 *
 * What the tar writer needs of one entry in a single call: lstat(2) into out (mode, uid, gid,
 * size, mtime seconds, nlink, dev, ino, rdev major, rdev minor) and, when wantXattrs, the names
 * llistxattr(2) gives (undefined when there are none or the file system has no xattrs). A tar
 * of 20,000 files made two calls and a fs.Stats object (with its Dates) per file before.
 */
static napi_value js_lstat_xattrs(napi_env env, napi_callback_info info) {
  napi_value argv[3], result, item;
  char path[PATH_MAX + 1];
  size_t len = 0;
  bool want = false;
  napi_typedarray_type type;
  size_t count;
  void *data;
  napi_value ab;
  size_t off_bytes;
  if (get_args(env, info, 3, argv)) return NULL;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a string");
    return NULL;
  }
  if (len >= PATH_MAX) return throw_errno(env, ENAMETOOLONG, "lstat");
  if (napi_get_typedarray_info(env, argv[1], &type, &count, &data, &ab, &off_bytes) != napi_ok || type != napi_float64_array || count < 10) {
    napi_throw_type_error(env, NULL, "expected a Float64Array of 10");
    return NULL;
  }
  CHECK(napi_get_value_bool(env, argv[2], &want));
  struct stat st;
  if (lstat(path, &st) != 0) return throw_errno(env, errno, "lstat");
  double *out = data;
  out[0] = (double)st.st_mode;
  out[1] = (double)st.st_uid;
  out[2] = (double)st.st_gid;
  out[3] = (double)st.st_size;
  out[4] = (double)st.st_mtim.tv_sec;
  out[5] = (double)st.st_nlink;
  out[6] = (double)st.st_dev;
  out[7] = (double)st.st_ino;
  out[8] = (double)major(st.st_rdev);
  out[9] = (double)minor(st.st_rdev);
  CHECK(napi_get_undefined(env, &result));
  if (!want) return result;
  /* Most files have no xattrs: one llistxattr into a stack buffer settles that. */
  char small[1024];
  char *buf = small;
  ssize_t got = llistxattr(path, small, sizeof(small));
  for (int attempt = 0; got < 0 && errno == ERANGE && attempt < 5; attempt++) {
    if (buf != small) free(buf);
    ssize_t size = llistxattr(path, NULL, 0);
    if (size < 0) break;
    buf = malloc((size_t)size + 1);
    if (buf == NULL) {
      napi_throw_error(env, NULL, "out of memory");
      return NULL;
    }
    got = llistxattr(path, buf, (size_t)size + 1);
  }
  if (got < 0) {
    int err = errno;
    if (buf != small) free(buf);
    if (err == ENOTSUP) return result;
    return throw_errno(env, err, "llistxattr");
  }
  if (got == 0) {
    if (buf != small) free(buf);
    return result;
  }
  if (napi_create_array(env, &result) != napi_ok) {
    if (buf != small) free(buf);
    return NULL;
  }
  uint32_t idx = 0;
  for (ssize_t off = 0; off < got;) {
    size_t n = strnlen(buf + off, (size_t)(got - off));
    if (n > 0 && (napi_create_string_utf8(env, buf + off, n, &item) != napi_ok || napi_set_element(env, result, idx++, item) != napi_ok)) {
      if (buf != small) free(buf);
      return NULL;
    }
    off += (ssize_t)n + 1;
  }
  if (buf != small) free(buf);
  return result;
}

/*
 * setSendBuffer(fd, bytes) -> the send buffer size the kernel reports afterwards.
 *
 * A unix stream socket queues at most its sender's SO_SNDBUF (~200 KB by default) in the
 * receiver's queue: a tar sent to `docker cp` in 1 MiB chunks then goes in 200 KB turns, each a
 * wake-up of the sender and of the reader. SO_SNDBUFFORCE (CAP_NET_ADMIN) goes past wmem_max;
 * without the capability SO_SNDBUF gives what wmem_max allows.
 */
static napi_value js_set_send_buffer(napi_env env, napi_callback_info info) {
  napi_value argv[2], result;
  int32_t fd, bytes;
  if (get_args(env, info, 2, argv)) return NULL;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_value_int32(env, argv[1], &bytes));
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes)) != 0 &&
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)) != 0) {
    return throw_errno(env, errno, "setsockopt");
  }
  int got = 0;
  socklen_t len = sizeof(got);
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &len) != 0) return throw_errno(env, errno, "getsockopt");
  CHECK(napi_create_int32(env, got, &result));
  return result;
}

/*
 * Sending a tar straight from files to a socket (containers/archive.ts, `docker cp` out): file
 * bodies go with sendfile(2), which on a unix socket hands the page-cache pages to the socket
 * instead of copying them twice (into a buffer, then into the socket), and the socket is waited
 * on with a uv_poll on Node's loop, never on a thread-pool thread (a client that stops reading
 * would hold it).
 */

/* dup(fd) -> a close-on-exec duplicate */
static napi_value js_dup(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  int32_t fd;
  if (get_args(env, info, 1, argv)) return NULL;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return throw_errno(env, errno, "dup");
  CHECK(napi_create_int32(env, d, &result));
  return result;
}

/* sendfile(outFd, inFd, offset, count) -> bytes sent (0 at the end of the file), -1 when outFd is full */
static napi_value js_sendfile(napi_env env, napi_callback_info info) {
  napi_value argv[4], result;
  int32_t out_fd, in_fd;
  int64_t offset, count;
  if (get_args(env, info, 4, argv)) return NULL;
  CHECK(napi_get_value_int32(env, argv[0], &out_fd));
  CHECK(napi_get_value_int32(env, argv[1], &in_fd));
  CHECK(napi_get_value_int64(env, argv[2], &offset));
  CHECK(napi_get_value_int64(env, argv[3], &count));
  off_t off = (off_t)offset;
  ssize_t n = sendfile(out_fd, in_fd, &off, (size_t)count);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) n = -1;
    else return throw_errno(env, errno, "sendfile");
  }
  CHECK(napi_create_int64(env, (int64_t)n, &result));
  return result;
}

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
} writable_t;

static void writable_free(uv_handle_t *h) {
  free(h->data);
}

static void writable_ready(uv_poll_t *poll, int status, int events) {
  writable_t *w = poll->data;
  napi_env env = w->env;
  napi_ref ref = w->cb;
  (void)events;
  uv_poll_stop(poll);
  uv_close((uv_handle_t *)poll, writable_free);
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value cb, global, argv[1], result, name;
    napi_async_context ctx;
    if (napi_get_reference_value(env, ref, &cb) == napi_ok && napi_get_global(env, &global) == napi_ok &&
        napi_create_int32(env, status < 0 ? -status : 0, &argv[0]) == napi_ok &&
        napi_create_string_utf8(env, "berth:writable", NAPI_AUTO_LENGTH, &name) == napi_ok &&
        napi_async_init(env, NULL, name, &ctx) == napi_ok) {
      /* make_callback: the promise the callback resolves runs its continuations right away. */
      napi_make_callback(env, ctx, global, cb, 1, argv, &result);
      napi_async_destroy(env, ctx);
    }
    napi_close_handle_scope(env, scope);
  }
  napi_delete_reference(env, ref);
}

/* waitWritable(fd, cb(errno)): cb runs once fd can be written to (or has failed: errno > 0). */
static napi_value js_wait_writable(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  uv_loop_t *loop;
  if (get_args(env, info, 2, argv)) return NULL;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_uv_event_loop(env, &loop));
  writable_t *w = calloc(1, sizeof(*w));
  if (w == NULL) return throw_errno(env, ENOMEM, "uv_poll_init");
  w->env = env;
  int rc = uv_poll_init(loop, &w->poll, fd);
  if (rc != 0) {
    free(w);
    return throw_errno(env, -rc, "uv_poll_init");
  }
  w->poll.data = w;
  if (napi_create_reference(env, argv[1], 1, &w->cb) != napi_ok) {
    uv_close((uv_handle_t *)&w->poll, writable_free);
    napi_throw_error(env, NULL, "berth_native: cannot keep the callback");
    return NULL;
  }
  rc = uv_poll_start(&w->poll, UV_WRITABLE | UV_DISCONNECT, writable_ready);
  if (rc != 0) {
    napi_delete_reference(env, w->cb);
    uv_close((uv_handle_t *)&w->poll, writable_free);
    return throw_errno(env, -rc, "uv_poll_start");
  }
  return NULL;
}

/* mount(source|null, target, fstype|null, flags, data|null) */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  char *source = NULL, *target = NULL, *fstype = NULL, *data = NULL;
  double flags_d;
  if (get_args(env, info, 5, argv)) return NULL;
  if (napi_get_value_double(env, argv[3], &flags_d) != napi_ok) {
    napi_throw_type_error(env, NULL, "flags must be a number");
    return NULL;
  }
  if (get_string(env, argv[0], 1, &source)) goto fail;
  if (get_string(env, argv[1], 0, &target)) goto fail;
  if (get_string(env, argv[2], 1, &fstype)) goto fail;
  if (get_string(env, argv[4], 1, &data)) goto fail;
  {
    int rc = mount(source, target, fstype, (unsigned long)flags_d, data);
    int err = errno;
    free(source);
    free(target);
    free(fstype);
    free(data);
    if (rc != 0) return throw_errno(env, err, "mount");
    return NULL;
  }
fail:
  free(source);
  free(target);
  free(fstype);
  free(data);
  return NULL;
}

/* umount2(target, flags) */
static napi_value js_umount2(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char *target;
  int32_t flags;
  if (get_args(env, info, 2, argv)) return NULL;
  if (napi_get_value_int32(env, argv[1], &flags) != napi_ok) {
    napi_throw_type_error(env, NULL, "flags must be a number");
    return NULL;
  }
  if (get_string(env, argv[0], 0, &target)) return NULL;
  int rc = umount2(target, flags);
  int err = errno;
  free(target);
  if (rc != 0) return throw_errno(env, err, "umount2");
  return NULL;
}

/*
 * umount2Async(target, flags) -> Promise<void>: umount2(2) on a thread of its own. Unmounting an
 * overlay syncs the whole file system under it, which on a busy disk takes from tens of
 * milliseconds to seconds; on libuv's four pool threads a few of those (an `rm -f` of many
 * containers) held up everything else queued there (spawns, namespace work, file I/O).
 */
struct umount_work {
  napi_deferred deferred;
  napi_threadsafe_function tsfn;
  char *path;
  int flags;
  int err;
};

static void umount_settle(napi_env env, napi_value js_cb, void *context, void *data) {
  struct umount_work *w = data;
  (void)js_cb;
  (void)context;
  if (env != NULL) {
    napi_value result;
    if (w->err == 0) {
      napi_get_undefined(env, &result);
      napi_resolve_deferred(env, w->deferred, result);
    } else {
      napi_reject_deferred(env, w->deferred, errno_error(env, w->err, "umount2"));
    }
  }
  free(w->path);
  free(w);
}

static void *umount_thread(void *data) {
  struct umount_work *w = data;
  napi_threadsafe_function tsfn = w->tsfn;
  w->err = umount2(w->path, w->flags) == 0 ? 0 : errno;
  napi_call_threadsafe_function(tsfn, w, napi_tsfn_blocking);
  napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  return NULL;
}

static napi_value js_umount2_async(napi_env env, napi_callback_info info) {
  napi_value argv[2], promise, name;
  struct umount_work *w;
  int32_t flags;
  pthread_attr_t attr;
  pthread_t thread;
  if (get_args(env, info, 2, argv)) return NULL;
  if (napi_get_value_int32(env, argv[1], &flags) != napi_ok) {
    napi_throw_type_error(env, NULL, "flags must be a number");
    return NULL;
  }
  w = calloc(1, sizeof(*w));
  if (w == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  if (get_string(env, argv[0], 0, &w->path)) {
    free(w);
    return NULL;
  }
  w->flags = flags;
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "berth:umount2", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, NULL, umount_settle, &w->tsfn) != napi_ok) {
    free(w->path);
    free(w);
    napi_throw_error(env, NULL, "berth_native: cannot set up umount2");
    return NULL;
  }
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  int rc = pthread_create(&thread, &attr, umount_thread, w);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    /* No thread: unmount here, as umount2 would. */
    w->err = umount2(w->path, w->flags) == 0 ? 0 : errno;
    napi_release_threadsafe_function(w->tsfn, napi_tsfn_release);
    umount_settle(env, NULL, NULL, w);
  }
  return promise;
}

/*
 * ttyRawOutput(fd): clears OPOST on a terminal. libuv's raw mode keeps output post-processing
 * (ONLCR), so a container's "\r\n" reached the screen as "\r\r\n"; docker's raw mode turns it
 * off. Node's setRawMode(false) restores the termios libuv saved first, OPOST included.
 */
static napi_value js_tty_raw_output(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  struct termios t;
  if (get_args(env, info, 1, argv)) return NULL;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "fd must be a number");
    return NULL;
  }
  if (tcgetattr(fd, &t) != 0) return throw_errno(env, errno, "tcgetattr");
  t.c_oflag &= ~(tcflag_t)OPOST;
  if (tcsetattr(fd, TCSANOW, &t) != 0) return throw_errno(env, errno, "tcsetattr");
  return NULL;
}

/*
 * sealedCopy(path, name) -> fd: a close-on-exec memfd holding the file's bytes, sealed against
 * any change (F_SEAL_SEAL|SHRINK|GROW|WRITE). crun and runc recognise a binary run from such a
 * memfd as already cloned (their CVE-2019-5736 defence) and skip copying themselves before an exec.
 */
static napi_value js_sealed_copy(napi_env env, napi_callback_info info) {
  napi_value argv[2], result;
  char *file = NULL, *name = NULL;
  int src = -1, fd = -1, err = 0;
  const char *syscall = "open";
  struct stat st;
  off_t off = 0;
  if (get_args(env, info, 2, argv) || get_string(env, argv[0], 0, &file) || get_string(env, argv[1], 0, &name)) goto out;
  src = open(file, O_RDONLY | O_CLOEXEC);
  if (src < 0 || fstat(src, &st) < 0) { err = errno; goto fail; }
  syscall = "memfd_create";
  fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) { err = errno; goto fail; }
  syscall = "sendfile";
  while (off < st.st_size) {
    ssize_t n = sendfile(fd, src, &off, (size_t)(st.st_size - off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) { err = n < 0 ? errno : EIO; goto fail; }
  }
  syscall = "fcntl";
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) { err = errno; goto fail; }
  close(src);
  free(file);
  free(name);
  if (napi_create_int32(env, fd, &result) != napi_ok) { close(fd); return NULL; }
  return result;
fail:
  if (src >= 0) close(src);
  if (fd >= 0) close(fd);
  throw_errno(env, err, syscall);
out:
  free(file);
  free(name);
  return NULL;
}

/*
 * spawnWatched(file, argv, envp, onExit, stdio) -> Promise<[pid, fd1, fd2, ...]>: posix_spawn (a
 * vfork-style clone: no copy of the daemon's page tables, unlike libuv's fork) with stdin from
 * /dev/null and the child's fds 1, 2, 3... as stdio says, one letter each: 'n' /dev/null, 'w' a
 * new pipe the child writes (the parent's read end is returned), 'r' one it reads (the write end
 * is returned; -1 for 'n'; the returned ends are close-on-exec), cwd /,
 * default signal dispositions and an empty mask. The spawn runs on libuv's thread pool: even a
 * vfork blocks its caller until the child has exec'd, which on a loaded machine is milliseconds.
 * The child is reaped here, not by libuv: a pidfd polled on Node's loop; onExit(code, signal)
 * runs once it has exited (code -1 and the signal when killed by one).
 */
#define SPAWN_MAX_FDS 8

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  int pidfd;
} watched_t;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref cb;
  char *file;
  char **args;
  char **envp;
  int err;
  const char *syscall;
  pid_t pid;
  int pidfd;
  /* The child's fds 1.. (at most SPAWN_MAX_FDS): 'n' /dev/null, 'w' a pipe the child writes,
     'r' a pipe the child reads; fds[i] is the parent's end (-1 for 'n'). */
  char modes[SPAWN_MAX_FDS + 1];
  int nfds;
  int fds[SPAWN_MAX_FDS];
} spawn_work_t;

static void watched_free(uv_handle_t *h) {
  free(h->data);
}

static void watched_exit(uv_poll_t *poll, int status, int events) {
  watched_t *w = poll->data;
  siginfo_t info;
  int code = -1, sig = 0;
  (void)status;
  (void)events;
  memset(&info, 0, sizeof(info));
  /* P_PIDFD (3): wait for exactly this child through its pidfd. */
  int r = waitid((idtype_t)3, (id_t)w->pidfd, &info, WEXITED | WNOHANG);
  if (r < 0 && errno == EINTR) return;
  if (r == 0 && info.si_pid == 0) return; /* not exited yet */
  if (r == 0 && info.si_code == CLD_EXITED) code = info.si_status;
  else if (r == 0) sig = info.si_status;
  /* r < 0: it cannot be waited for (reaped elsewhere): reported as code -1, signal 0. */
  uv_poll_stop(poll);
  close(w->pidfd);
  napi_handle_scope scope;
  napi_value cb, global, argv[2], result;
  if (napi_open_handle_scope(w->env, &scope) == napi_ok) {
    if (napi_get_reference_value(w->env, w->cb, &cb) == napi_ok && napi_get_global(w->env, &global) == napi_ok &&
        napi_create_int32(w->env, code, &argv[0]) == napi_ok && napi_create_int32(w->env, sig, &argv[1]) == napi_ok) {
      napi_async_context ctx;
      napi_value name;
      if (napi_create_string_utf8(w->env, "berth:probe-exit", NAPI_AUTO_LENGTH, &name) == napi_ok &&
          napi_async_init(w->env, NULL, name, &ctx) == napi_ok) {
        napi_make_callback(w->env, ctx, global, cb, 2, argv, &result);
        napi_async_destroy(w->env, ctx);
      }
    }
    napi_close_handle_scope(w->env, scope);
  }
  napi_delete_reference(w->env, w->cb);
  uv_close((uv_handle_t *)poll, watched_free);
}

static void free_strv(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

static int get_strv(napi_env env, napi_value arr, char ***out) {
  uint32_t n = 0;
  *out = NULL;
  if (napi_get_array_length(env, arr, &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected an array of strings");
    return -1;
  }
  char **v = calloc(n + 1, sizeof(char *));
  if (!v) {
    napi_throw_error(env, NULL, "out of memory");
    return -1;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value el;
    if (napi_get_element(env, arr, i, &el) != napi_ok || get_string(env, el, 0, &v[i])) {
      free_strv(v);
      return -1;
    }
  }
  *out = v;
  return 0;
}

/* Thread pool: pipes, posix_spawn, pidfd. Touches no JS. */
static void spawn_execute(napi_env env, void *data) {
  spawn_work_t *w = data;
  int child_end[SPAWN_MAX_FDS], rc;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t all, none;
  (void)env;
  for (int i = 0; i < w->nfds; i++) child_end[i] = w->fds[i] = -1;
  for (int i = 0; i < w->nfds; i++) {
    int p[2];
    if (w->modes[i] == 'n') continue;
    w->syscall = "pipe2";
    if (pipe2(p, O_CLOEXEC) < 0) {
      w->err = errno;
      goto fail;
    }
    int child = w->modes[i] == 'w' ? p[1] : p[0];
    w->fds[i] = w->modes[i] == 'w' ? p[0] : p[1];
    /* Above every target fd, so that no dup2 below overwrites a pipe not yet placed. */
    child_end[i] = fcntl(child, F_DUPFD_CLOEXEC, 64);
    close(child);
    if (child_end[i] < 0) {
      w->err = errno;
      w->syscall = "fcntl";
      goto fail;
    }
  }
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  for (int i = 0; i < w->nfds; i++) {
    if (w->modes[i] == 'n') posix_spawn_file_actions_addopen(&fa, i + 1, "/dev/null", O_WRONLY, 0);
    else posix_spawn_file_actions_adddup2(&fa, child_end[i], i + 1);
  }
  posix_spawn_file_actions_addchdir_np(&fa, "/");
  posix_spawnattr_init(&attr);
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  rc = posix_spawn(&w->pid, w->file, &fa, &attr, w->args, w->envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  for (int i = 0; i < w->nfds; i++) {
    if (child_end[i] >= 0) close(child_end[i]);
    child_end[i] = -1;
  }
  if (rc != 0) {
    w->err = rc;
    w->syscall = "posix_spawn";
    goto fail;
  }
  w->pidfd = (int)syscall(SYS_pidfd_open, w->pid, 0);
  if (w->pidfd < 0) {
    /* Cannot watch it: do not leave it running unreaped. */
    w->err = errno;
    w->syscall = "pidfd_open";
    kill(w->pid, SIGKILL);
    waitpid(w->pid, NULL, 0);
    goto fail;
  }
  return;
fail:
  for (int i = 0; i < w->nfds; i++) {
    if (child_end[i] >= 0) close(child_end[i]);
    if (w->fds[i] >= 0) close(w->fds[i]);
    w->fds[i] = -1;
  }
}

static void spawn_work_free(napi_env env, spawn_work_t *w) {
  napi_delete_async_work(env, w->work);
  if (w->cb) napi_delete_reference(env, w->cb);
  free(w->file);
  free_strv(w->args);
  free_strv(w->envp);
  free(w);
}

static void spawn_reject(napi_env env, spawn_work_t *w, int err, const char *syscall) {
  napi_reject_deferred(env, w->deferred, errno_error(env, err, syscall));
}

/* Loop thread: start watching the pidfd, resolve with the pid and the pipes' read ends. */
static void spawn_complete(napi_env env, napi_status status, void *data) {
  spawn_work_t *w = data;
  uv_loop_t *loop;
  watched_t *watch = NULL;
  napi_value result, v;
  if (status != napi_ok || w->err) {
    spawn_reject(env, w, w->err ? w->err : ECANCELED, w->err ? w->syscall : "spawn");
    spawn_work_free(env, w);
    return;
  }
  watch = calloc(1, sizeof(*watch));
  if (!watch || napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &watch->poll, w->pidfd) != 0) {
    kill(w->pid, SIGKILL);
    waitpid(w->pid, NULL, 0);
    close(w->pidfd);
    for (int i = 0; i < w->nfds; i++)
      if (w->fds[i] >= 0) close(w->fds[i]);
    free(watch);
    spawn_reject(env, w, ENOMEM, "uv_poll_init");
    spawn_work_free(env, w);
    return;
  }
  watch->poll.data = watch;
  watch->env = env;
  watch->pidfd = w->pidfd;
  watch->cb = w->cb; /* the watch owns the callback from here on */
  w->cb = NULL;
  uv_poll_start(&watch->poll, UV_READABLE, watched_exit);
  napi_create_array_with_length(env, (size_t)w->nfds + 1, &result);
  napi_create_int32(env, w->pid, &v);
  napi_set_element(env, result, 0, v);
  for (int i = 0; i < w->nfds; i++) {
    napi_create_int32(env, w->fds[i], &v);
    napi_set_element(env, result, (uint32_t)i + 1, v);
  }
  napi_resolve_deferred(env, w->deferred, result);
  spawn_work_free(env, w);
}

static napi_value js_spawn_watched(napi_env env, napi_callback_info info) {
  napi_value argv[5], promise, name;
  spawn_work_t *w;
  char *modes = NULL;
  if (get_args(env, info, 5, argv)) return NULL;
  w = calloc(1, sizeof(*w));
  if (!w) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  w->pidfd = -1;
  if (get_string(env, argv[4], 0, &modes)) goto fail;
  w->nfds = (int)strlen(modes);
  if (w->nfds < 2 || w->nfds > SPAWN_MAX_FDS || strspn(modes, "nrw") != strlen(modes)) {
    free(modes);
    napi_throw_type_error(env, NULL, "spawnWatched: stdio is 2 to 8 of n, r, w");
    goto fail;
  }
  memcpy(w->modes, modes, (size_t)w->nfds);
  free(modes);
  for (int i = 0; i < w->nfds; i++) w->fds[i] = -1;
  if (get_string(env, argv[0], 0, &w->file) || get_strv(env, argv[1], &w->args) || get_strv(env, argv[2], &w->envp)) goto fail;
  if (napi_create_reference(env, argv[3], 1, &w->cb) != napi_ok ||
      napi_create_promise(env, &w->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "berth:spawn", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, spawn_execute, spawn_complete, w, &w->work) != napi_ok ||
      napi_queue_async_work(env, w->work) != napi_ok) {
    napi_throw_error(env, NULL, "berth_native: cannot queue spawn");
    goto fail;
  }
  return promise;
fail:
  if (w->cb) napi_delete_reference(env, w->cb);
  free(w->file);
  free_strv(w->args);
  free_strv(w->envp);
  free(w);
  return NULL;
}

/*
 * signalInCgroup(pid, sig, cgroupPath) -> true when sent, false when pid is not (or no longer) a
 * process in that cgroup: a kill(2) that cannot hit a recycled pid. The pidfd pins the process
 * before /proc/<pid>/cgroup is read, so a process that passes the check is the one signalled
 * (pidfd_send_signal fails with ESRCH if it exited meanwhile). cgroupPath is as in the OCI spec
 * ("/parent/id"); it must be the process's path in some hierarchy (v1 "N:ctrl:/path", v2 "0::/path").
 */
static napi_value js_signal_in_cgroup(napi_env env, napi_callback_info info) {
  napi_value argv[3], result;
  int32_t pid, sig;
  char *want = NULL;
  if (get_args(env, info, 3, argv)) return NULL;
  if (napi_get_value_int32(env, argv[0], &pid) != napi_ok || napi_get_value_int32(env, argv[1], &sig) != napi_ok || pid <= 0) {
    napi_throw_type_error(env, NULL, "signalInCgroup(pid, signal, cgroupPath)");
    return NULL;
  }
  if (get_string(env, argv[2], 0, &want)) return NULL;
  int sent = 0, err = 0;
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd >= 0) {
    char file[64], buf[8192];
    snprintf(file, sizeof(file), "/proc/%d/cgroup", pid);
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    if (fd >= 0) close(fd);
    int member = 0;
    if (n > 0) {
      buf[n] = 0;
      size_t wl = strlen(want);
      for (char *line = buf; line && *line; ) {
        char *end = strchr(line, '\n');
        if (end) *end = 0;
        char *colon = strchr(line, ':');
        char *path = colon ? strchr(colon + 1, ':') : NULL;
        if (path && strlen(path + 1) == wl && memcmp(path + 1, want, wl) == 0) member = 1;
        line = end ? end + 1 : NULL;
      }
    }
    if (member) {
      if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0) sent = 1;
      else if (errno != ESRCH) err = errno;
    }
    close(pidfd);
  } else if (errno != ESRCH) {
    err = errno;
  }
  free(want);
  if (err) return throw_errno(env, err, "pidfd_send_signal");
  napi_get_boolean(env, sent, &result);
  return result;
}

/*
 * Regular files of a layer, for archive/apply.ts's LayerWriter. Creating a file through Node's
 * fs took four calls (open, write, futimes, close), each with its JS-side validation and error
 * context; these do the same syscalls in one call per file, relative to a directory fd the
 * writer holds on the layer root (no walk of the root's own path per file).
 *
 * Files are opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS):
 * the writer already refuses names that could leave the root (it tracks what the layer made), so
 * this is a second, kernel-enforced guard: no symlink is followed and nothing outside dirfd is
 * reached, whatever the name. Kernels without openat2 (before 5.6) get openat.
 */
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
struct berth_open_how {
  uint64_t flags;
  uint64_t mode;
  uint64_t resolve;
};
#define BERTH_RESOLVE_NO_MAGICLINKS 0x02
#define BERTH_RESOLVE_NO_SYMLINKS 0x04
#define BERTH_RESOLVE_BENEATH 0x08

static int have_openat2 = 1;

/* Creates rel below dirfd (O_EXCL, never following a symlink); returns the fd or -1 (errno). */
static int layer_open(int dirfd, const char *rel, mode_t mode) {
  int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  if (have_openat2) {
    struct berth_open_how how = {
      .flags = (uint64_t)flags,
      .mode = mode,
      .resolve = BERTH_RESOLVE_BENEATH | BERTH_RESOLVE_NO_SYMLINKS | BERTH_RESOLVE_NO_MAGICLINKS,
    };
    for (int attempt = 0;; attempt++) {
      long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
      if (fd >= 0) return (int)fd;
      /* EAGAIN: a rename elsewhere raced the scoped lookup; it is safe to try again. */
      if (errno == EAGAIN && attempt < 16) continue;
      if (errno == ENOSYS) {
        have_openat2 = 0;
        break;
      }
      if (errno != EPERM) return -1;
      /*
       * EPERM: some seccomp profiles (older container runtimes' defaults) refuse openat2
       * outright. If openat is allowed where openat2 was not, that is what happened: use openat
       * from now on. Otherwise openat's own error is the answer.
       */
      int fd2 = openat(dirfd, rel, flags, mode);
      if (fd2 >= 0) have_openat2 = 0;
      return fd2;
    }
  }
  return openat(dirfd, rel, flags, mode);
}

static int write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Seconds as a double to a timespec, as libuv does for fs.futimes (microsecond resolution). */
static struct timespec to_timespec(double t) {
  struct timespec ts;
  ts.tv_sec = (time_t)t;
  ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
  ts.tv_nsec -= ts.tv_nsec % 1000;
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1000000000;
    ts.tv_sec -= 1;
  }
  return ts;
}

typedef struct {
  int64_t uid, gid;  /* -1: no chown */
  int64_t chmod;     /* -1: no chmod (open's mode is already exact) */
  double atime, mtime;
} finish_t;

/* Owner, then mode (chown clears setuid bits), then times, then close; the fd is always closed. */
static int layer_finish(int fd, const finish_t *f, const char **syscall_out) {
  int err = 0;
  if (f->uid >= 0 && fchown(fd, (uid_t)f->uid, (gid_t)f->gid) != 0) {
    err = errno;
    *syscall_out = "fchown";
  } else if (f->chmod >= 0 && fchmod(fd, (mode_t)f->chmod) != 0) {
    err = errno;
    *syscall_out = "fchmod";
  } else {
    struct timespec ts[2] = {to_timespec(f->atime), to_timespec(f->mtime)};
    if (futimens(fd, ts) != 0) {
      err = errno;
      *syscall_out = "futimens";
    }
  }
  if (close(fd) != 0 && err == 0 && errno != EINTR) {
    err = errno;
    *syscall_out = "close";
  }
  return err;
}

static int get_finish(napi_env env, napi_value *argv, finish_t *f) {
  if (napi_get_value_int64(env, argv[0], &f->uid) != napi_ok ||
      napi_get_value_int64(env, argv[1], &f->gid) != napi_ok ||
      napi_get_value_int64(env, argv[2], &f->chmod) != napi_ok ||
      napi_get_value_double(env, argv[3], &f->atime) != napi_ok ||
      napi_get_value_double(env, argv[4], &f->mtime) != napi_ok) {
    napi_throw_type_error(env, NULL, "uid, gid, chmod, atime and mtime must be numbers");
    return -1;
  }
  return 0;
}

static int get_buffer(napi_env env, napi_value v, void **data, size_t *len) {
  bool is_buffer = false;
  if (napi_is_buffer(env, v, &is_buffer) != napi_ok || !is_buffer) {
    napi_throw_type_error(env, NULL, "expected a Buffer");
    return -1;
  }
  if (napi_get_buffer_info(env, v, data, len) != napi_ok) {
    napi_throw_error(env, NULL, "berth_native: napi_get_buffer_info failed");
    return -1;
  }
  return 0;
}

/* layerOpen(dirfd, rel, mode) -> fd: creates rel for writing (see layer_open). */
static napi_value js_layer_open(napi_env env, napi_callback_info info) {
  napi_value argv[3], result;
  int32_t dirfd;
  uint32_t mode;
  char *rel;
  if (get_args(env, info, 3, argv)) return NULL;
  if (napi_get_value_int32(env, argv[0], &dirfd) != napi_ok || napi_get_value_uint32(env, argv[2], &mode) != napi_ok) {
    napi_throw_type_error(env, NULL, "dirfd and mode must be numbers");
    return NULL;
  }
  if (get_string(env, argv[1], 0, &rel)) return NULL;
  int fd = layer_open(dirfd, rel, (mode_t)mode);
  int err = errno;
  free(rel);
  if (fd < 0) return throw_errno(env, err, "open");
  CHECK(napi_create_int32(env, fd, &result));
  return result;
}

/* layerWrite(fd, data: Buffer): writes all of data. */
static napi_value js_layer_write(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  void *data;
  size_t len;
  if (get_args(env, info, 2, argv)) return NULL;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "fd must be a number");
    return NULL;
  }
  if (get_buffer(env, argv[1], &data, &len)) return NULL;
  if (write_all(fd, data, len) != 0) return throw_errno(env, errno, "write");
  return NULL;
}

/* layerFinish(fd, uid, gid, chmod, atime, mtime): see layer_finish; fd is closed in any case. */
static napi_value js_layer_finish(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int32_t fd;
  finish_t f;
  const char *sc = NULL;
  if (get_args(env, info, 6, argv)) return NULL;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "fd must be a number");
    return NULL;
  }
  if (get_finish(env, argv + 1, &f)) {
    close(fd);
    return NULL;
  }
  int err = layer_finish(fd, &f, &sc);
  if (err != 0) return throw_errno(env, err, sc);
  return NULL;
}

/*
 * layerCreate(dirfd, rel, mode, data: Buffer, uid, gid, chmod, atime, mtime): a whole regular
 * file in one call (open, write, owner, mode, times, close). Nothing stays open on failure.
 */
static napi_value js_layer_create(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  int32_t dirfd;
  uint32_t mode;
  void *data;
  size_t len;
  finish_t f;
  char *rel;
  const char *sc = "open";
  if (get_args(env, info, 9, argv)) return NULL;
  if (napi_get_value_int32(env, argv[0], &dirfd) != napi_ok || napi_get_value_uint32(env, argv[2], &mode) != napi_ok) {
    napi_throw_type_error(env, NULL, "dirfd and mode must be numbers");
    return NULL;
  }
  if (get_buffer(env, argv[3], &data, &len)) return NULL;
  if (get_finish(env, argv + 4, &f)) return NULL;
  if (get_string(env, argv[1], 0, &rel)) return NULL;
  int fd = layer_open(dirfd, rel, (mode_t)mode);
  int err = fd < 0 ? errno : 0;
  free(rel);
  if (fd >= 0) {
    if (write_all(fd, data, len) != 0) {
      err = errno;
      sc = "write";
      close(fd);
    } else {
      err = layer_finish(fd, &f, &sc);
    }
  }
  if (err != 0) return throw_errno(env, err, sc);
  return NULL;
}

/*
 * copyBytes(target, targetStart, source): memcpy of all of source into target at targetStart;
 * returns the bytes copied. Buffer.copy into memory backed by a SharedArrayBuffer goes through
 * V8's relaxed (atomics-safe) byte copy, several times slower than memcpy; the tee that fills
 * batches shared with the extraction thread copies hundreds of megabytes so. The caller makes
 * sure no other thread touches the target range meanwhile.
 */
static napi_value js_copy_bytes(napi_env env, napi_callback_info info) {
  napi_value argv[3], result;
  void *target, *source;
  size_t target_len, source_len;
  int64_t start;
  if (get_args(env, info, 3, argv)) return NULL;
  if (get_buffer(env, argv[0], &target, &target_len) || get_buffer(env, argv[2], &source, &source_len)) return NULL;
  if (napi_get_value_int64(env, argv[1], &start) != napi_ok || start < 0 || (uint64_t)start > target_len) {
    napi_throw_range_error(env, NULL, "targetStart out of range");
    return NULL;
  }
  size_t n = target_len - (size_t)start;
  if (source_len < n) n = source_len;
  memcpy((char *)target + start, source, n);
  CHECK(napi_create_int64(env, (int64_t)n, &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lstatXattrs", NULL, js_lstat_xattrs, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setSendBuffer", NULL, js_set_send_buffer, NULL, NULL, NULL, napi_enumerable, NULL},
    {"dup", NULL, js_dup, NULL, NULL, NULL, napi_enumerable, NULL},
    {"sendfile", NULL, js_sendfile, NULL, NULL, NULL, napi_enumerable, NULL},
    {"waitWritable", NULL, js_wait_writable, NULL, NULL, NULL, napi_enumerable, NULL},
    {"mount", NULL, js_mount, NULL, NULL, NULL, napi_enumerable, NULL},
    {"umount2", NULL, js_umount2, NULL, NULL, NULL, napi_enumerable, NULL},
    {"umount2Async", NULL, js_umount2_async, NULL, NULL, NULL, napi_enumerable, NULL},
    {"ttyRawOutput", NULL, js_tty_raw_output, NULL, NULL, NULL, napi_enumerable, NULL},
    {"sealedCopy", NULL, js_sealed_copy, NULL, NULL, NULL, napi_enumerable, NULL},
    {"spawnWatched", NULL, js_spawn_watched, NULL, NULL, NULL, napi_enumerable, NULL},
    {"signalInCgroup", NULL, js_signal_in_cgroup, NULL, NULL, NULL, napi_enumerable, NULL},
    {"netnsCreate", NULL, js_netns_create, NULL, NULL, NULL, napi_enumerable, NULL},
    {"vethJoin", NULL, js_veth_join, NULL, NULL, NULL, napi_enumerable, NULL},
    {"vethLeave", NULL, js_veth_leave, NULL, NULL, NULL, napi_enumerable, NULL},
    {"layerOpen", NULL, js_layer_open, NULL, NULL, NULL, napi_enumerable, NULL},
    {"layerWrite", NULL, js_layer_write, NULL, NULL, NULL, napi_enumerable, NULL},
    {"layerFinish", NULL, js_layer_finish, NULL, NULL, NULL, napi_enumerable, NULL},
    {"layerCreate", NULL, js_layer_create, NULL, NULL, NULL, napi_enumerable, NULL},
    {"copyBytes", NULL, js_copy_bytes, NULL, NULL, NULL, napi_enumerable, NULL},
    {"releaseMemory", NULL, js_release_memory, NULL, NULL, NULL, napi_enumerable, NULL},
    {"writeBlob", NULL, js_write_blob, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
