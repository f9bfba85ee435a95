#!/usr/bin/env node
// Builds the addon with node-gyp against the headers of the Node.js that runs
// this script, so no header download is ever needed.
//
// npm puts its bundled node-gyp on PATH and in npm_config_node_gyp for
// lifecycle scripts. When no nodedir is configured, the headers next to the
// running node (<prefix>/include/node, as Debian, NodeSource, the official
// tarballs and nvm install them) are used.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

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

const gyp = findNodeGyp();
if (!gyp) {
  console.error('@a3s-lab/lane: node-gyp not found (it ships with npm); cannot build the addon');
  process.exit(1);
}
const args = [gyp, 'rebuild'];
if (!process.env.npm_config_nodedir) {
  const nodedir = localNodeDir();
  if (nodedir) args.push(`--nodedir=${nodedir}`);
}
const jobs = process.env.JOBS || 'max';
args.push(`--jobs=${jobs}`);
const result = spawnSync(process.execPath, args, {
  cwd: path.join(__dirname, '..'),
  stdio: 'inherit',
});
process.exit(result.status === null ? 1 : result.status);
