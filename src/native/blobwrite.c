/*
 * writeBlob: stores a piece of a big blob (an imported or loaded layer, a pulled one) without
 * passing it through the page cache.
 *
 * Why: a layer being imported is unpacked while it is stored, so every byte ends up in memory
 * twice, once in the extracted files and once in the blob's pages, and the blob's copy is the
 * one nobody reads soon (save and push come later, if ever). Buffered writes make the kernel
 * find a fresh page for each 4 KiB of it; on a busy host, or in a VM whose memory is handed back
 * to its host while free (virtio-balloon free page reporting, as on this project's machines),
 * that costs a page fault or reclaim per page: measured at 0.3-1.5 CPU-s of kernel time for a
 * 545 MB layer, against ~0.1 s for the same bytes written with O_DIRECT from a small reused
 * buffer (dd on the same file system), and it pushes other data out of the cache.
 *
 * The aligned middle of each piece goes through directFd (the same file opened with O_DIRECT),
 * copied through a bounce buffer (O_DIRECT wants aligned memory, file offsets and lengths; the
 * caller's pieces are neither). The caller passes that buffer too, BOUNCE_BYTES + DIO_ALIGN bytes
 * long (its aligned part is used), one per blob being written: a buffer allocated per call (a
 * thread-pool thread's arena gives 1 MiB back to the kernel on free) cost 256 page faults a call. The unaligned head and tail, and pieces too small
 * to be worth a device round trip, go through fd (buffered). The kernel keeps the two views
 * coherent: a direct write flushes and drops cached pages of its own range first, and the two
 * never share a block here. If the file system refuses a direct write (EINVAL), the rest of the
 * piece is written buffered and the result tells the caller to stop trying.
 *
 * Runs on libuv's thread pool; the caller keeps the buffer unchanged until the promise settles.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <node_api.h>
#include "blobwrite.h"
#include "errno_error.h"

/* Alignment of memory, offsets and lengths for O_DIRECT: the largest logical block size in use. */
#define DIO_ALIGN 4096
/* The bounce buffer: one tee batch (archive/tee.ts) in one write. */
#define BOUNCE_BYTES (1 << 20)
/* A middle shorter than this is written buffered: a direct write waits for the device. */
#define MIN_DIRECT_BYTES (64 << 10)

struct blob_work {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref data_ref;
  napi_ref bounce_ref;
  char *bounce;
  int direct_fd;
  int fd;
  const char *data;
  size_t len;
  int64_t pos;
  int err;
  bool direct_refused;
};

/* pwrite(2) of all n bytes; 0 or an errno. */
static int pwrite_all(int fd, const char *p, size_t n, int64_t pos) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, (off_t)pos);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    p += w;
    n -= (size_t)w;
    pos += w;
  }
  return 0;
}

/*
 * Writes src[0..n) at pos (both aligned) through the bounce buffer and direct_fd. Returns 0, an
 * errno, or -1 when the file system refused (EINVAL); *done says how much was written.
 */
static int direct_write(int direct_fd, char *bounce, const char *src, size_t n, int64_t pos, size_t *done) {
  *done = 0;
  while (*done < n) {
    size_t piece = n - *done < BOUNCE_BYTES ? n - *done : BOUNCE_BYTES;
    memcpy(bounce, src + *done, piece);
    size_t off = 0;
    while (off < piece) {
      ssize_t w = pwrite(direct_fd, bounce + off, piece - off, (off_t)(pos + (int64_t)(*done + off)));
      if (w < 0) {
        if (errno == EINTR) continue;
        return errno == EINVAL ? -1 : errno;
      }
      if (w == 0) return EIO;
      /* A short direct write may end off the alignment; the next one would then be refused. */
      if ((size_t)w % DIO_ALIGN != 0 && off + (size_t)w < piece) {
        *done += off + (size_t)w;
        return -1;
      }
      off += (size_t)w;
    }
    *done += piece;
  }
  return 0;
}

static void blob_execute(napi_env env, void *arg) {
  struct blob_work *w = arg;
  (void)env;
  int64_t start = w->pos, end = w->pos + (int64_t)w->len;
  int64_t a = (start + DIO_ALIGN - 1) & ~(int64_t)(DIO_ALIGN - 1);
  int64_t b = end & ~(int64_t)(DIO_ALIGN - 1);
  if (w->direct_fd < 0 || b - a < MIN_DIRECT_BYTES) {
    w->err = pwrite_all(w->fd, w->data, w->len, start);
    return;
  }
  w->err = pwrite_all(w->fd, w->data, (size_t)(a - start), start);
  if (w->err == 0) {
    size_t done = 0;
    int rc = direct_write(w->direct_fd, w->bounce, w->data + (a - start), (size_t)(b - a), a, &done);
    if (rc == -1) {
      w->direct_refused = true;
      rc = pwrite_all(w->fd, w->data + (a - start) + done, (size_t)(b - a) - done, a + (int64_t)done);
    }
    w->err = rc;
  }
  if (w->err == 0) w->err = pwrite_all(w->fd, w->data + (b - start), (size_t)(end - b), b);
}

static void blob_complete(napi_env env, napi_status status, void *arg) {
  struct blob_work *w = arg;
  napi_value result;
  if (status == napi_ok && w->err == 0) {
    napi_get_boolean(env, !w->direct_refused, &result);
    napi_resolve_deferred(env, w->deferred, result);
  } else {
    napi_reject_deferred(env, w->deferred, errno_error(env, w->err ? w->err : ECANCELED, "write"));
  }
  napi_delete_reference(env, w->data_ref);
  napi_delete_reference(env, w->bounce_ref);
  napi_delete_async_work(env, w->work);
  free(w);
}

/*
 * writeBlob(directFd, fd, data: Buffer, position, bounce: Buffer) -> Promise<boolean>: writes all
 * of data at position (see above); resolves false if the file system refused direct I/O (the
 * bytes are written anyway), true otherwise. directFd -1: all buffered. bounce is this writer's
 * own (not shared by writes in flight at once), at least BOUNCE_BYTES + DIO_ALIGN long.
 */
napi_value js_write_blob(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], promise, name;
  int32_t direct_fd, fd;
  int64_t pos;
  bool is_buffer = false;
  void *data, *bounce;
  size_t len, bounce_len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) {
    napi_throw_type_error(env, NULL, "too few arguments");
    return NULL;
  }
  if (napi_get_value_int32(env, argv[0], &direct_fd) != napi_ok || napi_get_value_int32(env, argv[1], &fd) != napi_ok ||
      napi_get_value_int64(env, argv[3], &pos) != napi_ok || pos < 0) {
    napi_throw_type_error(env, NULL, "directFd, fd and position must be numbers");
    return NULL;
  }
  if (napi_is_buffer(env, argv[2], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "data must be a Buffer");
    return NULL;
  }
  if (napi_is_buffer(env, argv[4], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[4], &bounce, &bounce_len) != napi_ok || bounce_len < BOUNCE_BYTES + DIO_ALIGN) {
    napi_throw_type_error(env, NULL, "bounce must be a Buffer of at least 1 MiB + 4 KiB");
    return NULL;
  }
  struct blob_work *w = calloc(1, sizeof(*w));
  if (w == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  w->direct_fd = direct_fd;
  w->fd = fd;
  w->data = data;
  w->len = len;
  w->pos = pos;
  w->bounce = (char *)(((uintptr_t)bounce + DIO_ALIGN - 1) & ~(uintptr_t)(DIO_ALIGN - 1));
  if (napi_create_reference(env, argv[2], 1, &w->data_ref) != napi_ok) {
    free(w);
    napi_throw_error(env, NULL, "berth_native: cannot hold the buffer");
    return NULL;
  }
  if (napi_create_reference(env, argv[4], 1, &w->bounce_ref) != napi_ok) {
    napi_delete_reference(env, w->data_ref);
    free(w);
    napi_throw_error(env, NULL, "berth_native: cannot hold the buffer");
    return NULL;
  }
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "berth:writeBlob", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, blob_execute, blob_complete, w, &w->work) != napi_ok ||
      napi_queue_async_work(env, w->work) != napi_ok) {
    napi_delete_reference(env, w->data_ref);
    napi_delete_reference(env, w->bounce_ref);
    free(w);
    napi_throw_error(env, NULL, "berth_native: cannot queue a blob write");
    return NULL;
  }
  return promise;
}
