#!/usr/bin/env node
// Used by binding.gyp: prints the C engine's folder (`dir`) or its .c files
// (`sources`), so new engine files are compiled without editing binding.gyp.
// In the repository the engine is ../c_core; a packed tarball carries a copy
// in c_core/ (made by scripts/vendor.js at `npm pack`).
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const dir = fs.existsSync(path.join(root, '..', 'c_core', 'lane_core.h')) ? '../c_core' : 'c_core';

if (process.argv[2] === 'dir') {
  console.log(dir);
} else {
  const files = fs.readdirSync(path.join(root, dir)).filter((f) => f.endsWith('.c')).sort();
  console.log(files.map((f) => `${dir}/${f}`).join('\n'));
}
