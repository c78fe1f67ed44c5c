/* Network namespace and veth work of the addon (netns.c); registered by berth_native.c. */
#ifndef BERTH_NETNS_H
#define BERTH_NETNS_H
#include <node_api.h>

napi_value js_netns_create(napi_env env, napi_callback_info info);
napi_value js_veth_join(napi_env env, napi_callback_info info);
napi_value js_veth_leave(napi_env env, napi_callback_info info);

#endif
