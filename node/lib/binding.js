'use strict';
// Loads the native addon (build/Release, else build/Debug): the a3s-lane C
// engine behind `Engine`, and its return and outcome codes (`codes`).

const path = require('node:path');

const PACKAGE_DIR = path.join(__dirname, '..');

function loadBinding() {
  for (const build of ['Release', 'Debug']) {
    try {
      return require(`../build/${build}/a3s_lane.node`);
    } catch (error) {
      // Not built in this mode: try the next. Anything else (a broken
      // build, an ABI mismatch) is the real problem and is raised as it is.
      if (error && error.code !== 'MODULE_NOT_FOUND') throw error;
    }
  }
  const error = new Error(
    '@a3s-lab/lane: the native addon is not built (build/Release/a3s_lane.node is missing); ' +
      `run \`npm install\` or \`npm run build\` in ${PACKAGE_DIR}`,
  );
  error.code = 'ERR_LANE_NOT_BUILT';
  throw error;
}

const native = loadBinding();

module.exports = {
  native,
  Engine: native.Engine,
  C: native.codes,
};
