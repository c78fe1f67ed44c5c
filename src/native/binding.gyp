{
  "targets": [
    {
      "target_name": "berth_native",
      "sources": ["berth_native.c", "netns.c", "memory.cc", "blobwrite.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
