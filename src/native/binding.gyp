{
  "targets": [
    {
      "target_name": "berth_native",
      "sources": ["berth_native.c", "netns.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
