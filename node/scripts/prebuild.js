#!/usr/bin/env node
// Makes the prebuilt addon for this machine with prebuildify (a
// devDependency; nothing of it is needed at install or run time):
//
//   prebuilds/<platform>-<arch>/@a3s-lab+lane.<libc>.node
//
// a Node-API build (prebuildify --napi: no `abi` tag, loads on every Node.js
// with N-API ≥ package.json's binary.napi_versions), tagged with its libc on
// Linux only (--tag-libc: glibc, or musl on Alpine), symbols stripped
// (--strip, on Linux and macOS).
// Run by `npm pack`/`npm publish` (prepack) and by `npm run prebuildify` (a
// CI job per platform, see README "Releasing"); other platforms' folders
// already in prebuilds/ are left as they are.
//
// It compiles exactly what the tarball ships (binding.gyp, src/, the engine's
// c_core/ sources, scripts/gyp-sources.js, node-addon-api) in a temporary
// staging folder, so build/ (the development build, which `npm run build`
// may be wiping at the same time) is left alone, against the running
// Node.js's own headers (no download), with npm's node-gyp.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const prebuildify = require('prebuildify');
const { findNodeGyp, localNodeDir } = require('./build.js');

const ROOT = path.join(__dirname, '..');
const PACKAGE = require('../package.json');
// <tmp>/a3s-lane-prebuild-XXXXXX/package: its parent has no c_core/ for
// gyp-sources.js to mistake for the repository's.
const TEMP = fs.mkdtempSync(path.join(os.tmpdir(), 'a3s-lane-prebuild-'));
const STAGE = path.join(TEMP, 'package');

function stage() {
  fs.mkdirSync(path.join(STAGE, 'scripts'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'binding.gyp'), path.join(STAGE, 'binding.gyp'));
  fs.copyFileSync(path.join(ROOT, 'scripts', 'gyp-sources.js'), path.join(STAGE, 'scripts', 'gyp-sources.js'));
  fs.cpSync(path.join(ROOT, 'src'), path.join(STAGE, 'src'), { recursive: true });
  // The engine: ../c_core in the repository, c_core/ in an unpacked tarball.
  const repo = path.join(ROOT, '..', 'c_core');
  const engine = fs.existsSync(path.join(repo, 'lane_core.h')) ? repo : path.join(ROOT, 'c_core');
  fs.mkdirSync(path.join(STAGE, 'c_core'));
  for (const name of fs.readdirSync(engine)) {
    if (/\.[ch]$/.test(name)) fs.copyFileSync(path.join(engine, name), path.join(STAGE, 'c_core', name));
  }
  const addonApi = path.dirname(require.resolve('node-addon-api/package.json'));
  fs.cpSync(addonApi, path.join(STAGE, 'node_modules', 'node-addon-api'), { recursive: true });
}

function main() {
  stage();
  if (!process.env.npm_config_nodedir) {
    const nodedir = localNodeDir();
    if (nodedir) process.env.npm_config_nodedir = nodedir; // node-gyp reads it: no header download
  }
  if (!process.env.JOBS) process.env.JOBS = 'max';
  const options = {
    cwd: STAGE,
    out: ROOT,
    name: PACKAGE.name,
    napi: true,
    targets: [{ runtime: 'node', target: process.versions.node }],
    tagLibc: process.platform === 'linux', // elsewhere prebuildify would say glibc
    strip: process.platform === 'linux' || process.platform === 'darwin',
  };
  // prebuildify spawns node-gyp without a shell on POSIX: give it npm's copy.
  // On Windows its default (node-gyp.cmd, on PATH inside npm scripts) is kept.
  if (process.platform !== 'win32') options.nodeGyp = findNodeGyp();
  prebuildify(options, (error) => {
    fs.rmSync(TEMP, { recursive: true, force: true });
    if (error) {
      console.error(`@a3s-lab/lane: prebuildify failed: ${error.message}`);
      process.exit(1);
    }
    const folder = path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`);
    for (const file of fs.readdirSync(folder)) {
      console.error(`@a3s-lab/lane: prebuilt ${path.relative(ROOT, path.join(folder, file))}`);
    }
  });
}

main();
