#!/usr/bin/env node
// The install script. Uses the prebuilt addon shipped in prebuilds/ when one
// matches this platform, arch, libc and N-API version and loads; otherwise
// (or when told to: `--from-source`, A3S_LANE_BUILD_FROM_SOURCE=1, npm's
// `--build-from-source`, or in the repository checkout) builds the addon
// with node-gyp from the shipped sources. One log line says which path was
// taken and why (npm shows it with --foreground-scripts).
//
// The build uses the headers of the Node.js that runs this script, so no
// header download is ever needed: npm puts its bundled node-gyp on PATH and in
// npm_config_node_gyp for lifecycle scripts, and when no nodedir is
// configured, the headers next to the running node (<prefix>/include/node, as
// Debian, NodeSource, the official tarballs and nvm install them) are used.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');

function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
    path.join(path.dirname(process.execPath), 'node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
  ];
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed locally; the candidates above cover npm's own copy
  }
  return candidates.find((file) => file && fs.existsSync(file));
}

function localNodeDir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'common.gypi')) ? prefix : null;
}

/** node-gyp rebuild in `cwd`; returns its exit status. */
function nodeGypRebuild(cwd) {
  const gyp = findNodeGyp();
  if (!gyp) {
    console.error('@a3s-lab/lane: node-gyp not found (it ships with npm); cannot build the addon');
    return 1;
  }
  const args = [gyp, 'rebuild'];
  if (!process.env.npm_config_nodedir) {
    const nodedir = localNodeDir();
    if (nodedir) args.push(`--nodedir=${nodedir}`);
  }
  args.push(`--jobs=${process.env.JOBS || 'max'}`);
  const result = spawnSync(process.execPath, args, { cwd, stdio: 'inherit' });
  return result.status === null ? 1 : result.status;
}

function main() {
  const { installDecision } = require('../lib/prebuild.js');
  const decision = installDecision({ dir: ROOT, argv: process.argv.slice(2) });
  if (!decision.build) {
    console.log(`@a3s-lab/lane: using the prebuilt addon ${decision.prebuild.relative} ` +
      `(${decision.reason}); not compiling`);
    return 0;
  }
  console.log(`@a3s-lab/lane: building the addon from source with node-gyp (${decision.reason})`);
  return nodeGypRebuild(ROOT);
}

module.exports = { findNodeGyp, localNodeDir };

if (require.main === module) process.exit(main());
