#!/usr/bin/env node
// `npm pack` hooks: copy the C engine (../c_core) and the Redis lane rules
// (../pylane/redis/lanes.lua, the one source of them, shared with the Python
// package) into the package before it is packed (prepack), and remove the
// copies afterwards (postpack), so the tarball works on its own.
// binding.gyp prefers ../c_core when it exists; lib/redis/connection.js
// prefers lua/lanes.lua. `clean` also removes prebuilds/ (made by
// scripts/prebuild.js at prepack): it is a packing artifact, never kept in
// the checkout.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const source = path.join(root, '..', 'c_core');
const target = path.join(root, 'c_core');
const luaSource = path.join(root, '..', 'pylane', 'redis', 'lanes.lua');
const luaTarget = path.join(root, 'lua');

const command = process.argv[2];
if (command === 'copy') {
  fs.rmSync(target, { recursive: true, force: true });
  fs.mkdirSync(target);
  for (const name of fs.readdirSync(source)) {
    if (/\.[ch]$/.test(name)) fs.copyFileSync(path.join(source, name), path.join(target, name));
  }
  fs.rmSync(luaTarget, { recursive: true, force: true });
  fs.mkdirSync(luaTarget);
  fs.copyFileSync(luaSource, path.join(luaTarget, 'lanes.lua'));
} else if (command === 'clean') {
  fs.rmSync(target, { recursive: true, force: true });
  fs.rmSync(luaTarget, { recursive: true, force: true });
  fs.rmSync(path.join(root, 'prebuilds'), { recursive: true, force: true });
} else {
  console.error('usage: vendor.js copy|clean');
  process.exit(2);
}
