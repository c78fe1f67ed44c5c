/* Page-cache-bypassing blob writes of the addon (blobwrite.c); registered by berth_native.c. */
#ifndef BERTH_BLOBWRITE_H
#define BERTH_BLOBWRITE_H
#include <node_api.h>

napi_value js_write_blob(napi_env env, napi_callback_info info);

#endif
