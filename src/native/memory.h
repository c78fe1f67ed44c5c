/* Memory housekeeping of the addon (memory.cc); registered by berth_native.c. */
#ifndef BERTH_MEMORY_H
#define BERTH_MEMORY_H
#include <node_api.h>

#ifdef __cplusplus
extern "C" {
#endif
napi_value js_release_memory(napi_env env, napi_callback_info info);
#ifdef __cplusplus
}
#endif

#endif
