{
  # Builds the addon together with the C engine (every .c file of it, listed
  # by scripts/gyp-sources.js): ../c_core in the repository, c_core/ in a
  # packed tarball.
  "variables": {
    "c_core%": "<!(node scripts/gyp-sources.js dir)"
  },
  "targets": [
    {
      "target_name": "a3s_lane",
      "sources": [
        "src/addon.cc",
        "<!@(node scripts/gyp-sources.js sources)"
      ],
      "include_dirs": ["<(c_core)"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra"],
      "cflags_c": ["-std=c11"],
      "cflags_cc": ["-std=c++17"],
      "conditions": [
        ["OS=='mac'", {
          "xcode_settings": {
            "GCC_C_LANGUAGE_STANDARD": "c11",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "WARNING_CFLAGS": ["-Wall", "-Wextra"]
          }
        }]
      ]
    }
  ]
}
