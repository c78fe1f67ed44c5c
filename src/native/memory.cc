// The one part of the addon that needs V8's C++ API rather than N-API: asking V8 for the
// memory-reducing collection its memory reducer would otherwise run several seconds later.
//
// Start-up (module compilation, recovery, SQLite reads) leaves a few MB of garbage and grown heap
// spaces behind; V8 gives them back only in a memory-reducing full GC, which it schedules about
// 8 s after the last one, and which neither global.gc() nor any Node API asks for. berthd calls
// this once when start-up is done, so an idle daemon is as small as it will get from the moment
// it is ready. malloc_trim then returns the C heap's freed top and free pages (SQLite's and
// Node's start-up buffers) to the kernel. Together about 20 ms of start-up (a ~10 MB heap), once.
#include <malloc.h>
#include <v8.h>

#include "memory.h"

extern "C" napi_value js_release_memory(napi_env env, napi_callback_info info) {
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr) isolate->LowMemoryNotification();
  malloc_trim(0);
  return nullptr;
}
