'use strict';
// Loads the native addon — the a3s-lane C engine behind `Engine`, and its
// return and outcome codes (`codes`) — from, in this order:
//   1. a local node-gyp build: build/Release/a3s_lane.node, build/Debug/…
//      (development, or an install that compiled from source);
//   2. the prebuild shipped for this platform, arch, libc and N-API version:
//      prebuilds/<platform>-<arch>/@a3s-lab+lane.<libc>.node (lib/prebuild.js).
// Nothing else is needed at run time. When neither exists, the error names
// everything that was looked for.

const fs = require('node:fs');
const prebuild = require('./prebuild');

function loadBinding() {
  for (const build of prebuild.localBuilds()) {
    // A build that exists but fails to load (a broken build, an ABI mismatch)
    // is the real problem and is raised as it is.
    if (fs.existsSync(build.file)) return { native: require(build.file), path: build.file, from: 'build' };
  }
  const target = prebuild.hostTarget();
  const found = prebuild.findPrebuild(prebuild.PACKAGE_DIR, target);
  if (found.file) {
    try {
      return { native: require(found.file), path: found.file, from: 'prebuild' };
    } catch (cause) {
      const error = new Error(
        `@a3s-lab/lane: the prebuilt addon ${found.relative} does not load on ${prebuild.describe(target)}: ` +
          `${cause.message}. Build it from source instead: \`A3S_LANE_BUILD_FROM_SOURCE=1 npm rebuild @a3s-lab/lane\` ` +
          '(needs a C/C++ compiler, make and Python 3 for node-gyp)',
        { cause },
      );
      error.code = 'ERR_LANE_PREBUILD_FAILED';
      throw error;
    }
  }
  const error = new Error(
    `@a3s-lab/lane: ${prebuild.explainMissing(prebuild.PACKAGE_DIR, target)}. ` +
      'Build it from source: `A3S_LANE_BUILD_FROM_SOURCE=1 npm rebuild @a3s-lab/lane` in your project, or ' +
      '`npm run build` in the package (needs a C/C++ compiler, make and Python 3 for node-gyp)',
  );
  error.code = 'ERR_LANE_NOT_BUILT';
  throw error;
}

const loaded = loadBinding();
const native = loaded.native;

module.exports = {
  native,
  Engine: native.Engine,
  C: native.codes,
  // Which file was loaded, and whether it is a local build or a prebuild.
  addon: { path: loaded.path, from: loaded.from },
};
