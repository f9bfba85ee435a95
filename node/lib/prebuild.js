'use strict';
// Where the native addon comes from: a local build (build/Release or
// build/Debug, made by node-gyp) or a prebuilt binary shipped in the package.
//
// Prebuilds follow the layout prebuildify writes and node-gyp-build reads,
// without depending on either at run time:
//
//   prebuilds/<platform>-<arch>[+<arch>…]/<name>.<tag>….node
//
// e.g. prebuilds/linux-x64/@a3s-lab+lane.glibc.node. The name is the package
// name with `/` written as `+` (prebuildify ≥ 6); it is not a tag. The tags:
// `node`/`electron`/`node-webkit` (runtime), `napi` (older prebuildify's mark
// of a Node-API build), `abi<N>` (a build for one Node ABI, i.e. not Node-API),
// `uv<N>`, `armv<N>`, and `glibc`/`musl` (libc). prebuildify ≥ 6 marks a
// Node-API build by having no `abi` tag. Matching and precedence are
// node-gyp-build's: every tag a file has must match this machine, untagged
// means any; a runtime-specific file beats an agnostic one, an ABI build beats
// a Node-API one, then the file with more tags wins; among tuples, a
// single-arch folder beats a multi-arch one.
//
// The addon is a Node-API build: the N-API version it needs is
// package.json's `binary.napi_versions` (the field node-pre-gyp and
// prebuild-install read), the same number as NAPI_VERSION in binding.gyp.

const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const PACKAGE_DIR = path.join(__dirname, '..');
const PACKAGE = require('../package.json');
const ADDON = 'a3s_lane.node';
const NAPI_VERSION = Math.min(...PACKAGE.binary.napi_versions);
const BUILDS = ['Release', 'Debug'].map((mode) => path.join('build', mode, ADDON));

/**
 * `glibc` or `musl` ($LIBC overrides, as for node-gyp-build). Like
 * node-gyp-build, any other platform counts as `glibc`, so a `.glibc` tag
 * there matches; prebuilds for those carry no libc tag (scripts/prebuild.js).
 */
function detectLibc(platform = process.platform) {
  if (process.env.LIBC) return process.env.LIBC;
  if (platform !== 'linux') return 'glibc';
  if (fs.existsSync('/etc/alpine-release')) return 'musl';
  try {
    // glibc reports its version here; musl has none (detect-libc's first test).
    const report = process.report;
    const exclude = report.excludeNetwork;
    report.excludeNetwork = true;
    const header = report.getReport().header;
    report.excludeNetwork = exclude;
    return header.glibcVersionRuntime ? 'glibc' : 'musl';
  } catch {
    return 'glibc';
  }
}

/** This machine and runtime, in the terms of the tags. */
function hostTarget() {
  const vars = (process.config && process.config.variables) || {};
  const arch = process.arch;
  return {
    platform: process.platform,
    arch,
    libc: detectLibc(),
    runtime: process.versions.electron ? 'electron' : 'node',
    abi: process.versions.modules,
    napi: Number(process.versions.napi) || 0,
    uv: (process.versions.uv || '').split('.')[0],
    armv: process.env.ARM_VERSION || (arch === 'arm64' ? '8' : String(vars.arm_version || '')),
  };
}

/** `linux-x64 glibc, Node.js ABI 115, N-API 9` (the libc on Linux only) */
function describe(target) {
  const libc = target.platform === 'linux' && target.libc ? ` ${target.libc}` : '';
  return `${target.platform}-${target.arch}${libc}, ` +
    `Node.js ABI ${target.abi}, N-API ${target.napi}`;
}

function readdir(dir) {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** `darwin-x64+arm64` → { name, platform, architectures }, or undefined. */
function parseTuple(name) {
  const parts = name.split('-');
  if (parts.length !== 2 || !parts[0]) return undefined;
  const architectures = parts[1].split('+');
  if (!architectures.every(Boolean)) return undefined;
  return { name, platform: parts[0], architectures };
}

/** `@a3s-lab+lane.glibc.node` → { file, libc: 'glibc', specificity: 1 }, or undefined. */
function parseTags(file) {
  const parts = file.split('.');
  if (parts.pop() !== 'node') return undefined;
  const tags = { file, specificity: 0 };
  for (const tag of parts) {
    if (tag === 'node' || tag === 'electron' || tag === 'node-webkit') tags.runtime = tag;
    else if (tag === 'napi') tags.napi = true;
    else if (tag.startsWith('abi')) tags.abi = tag.slice(3);
    else if (tag.startsWith('uv')) tags.uv = tag.slice(2);
    else if (tag.startsWith('armv')) tags.armv = tag.slice(4);
    else if (tag === 'glibc' || tag === 'musl') tags.libc = tag;
    else continue; // the package name, or a tag nobody knows
    tags.specificity++;
  }
  return tags;
}

/** Why `tags` cannot load on `target`, or '' when it can. */
function mismatch(tags, target) {
  const agnostic = tags.runtime === 'node' && tags.napi;
  if (tags.runtime && tags.runtime !== target.runtime && !agnostic) return `runtime ${tags.runtime}`;
  if (tags.abi && tags.abi !== target.abi && !tags.napi) return `Node.js ABI ${tags.abi}`;
  if (tags.uv && tags.uv !== target.uv) return `libuv ${tags.uv}`;
  if (tags.armv && tags.armv !== target.armv) return `armv${tags.armv}`;
  if (tags.libc && tags.libc !== target.libc) return tags.libc;
  if (!tags.abi && target.napi < NAPI_VERSION) return `N-API ${NAPI_VERSION} (this Node.js has ${target.napi})`;
  return '';
}

function compareTags(runtime) {
  return (a, b) => {
    if (a.runtime !== b.runtime) return a.runtime === runtime ? -1 : 1;
    if (a.abi !== b.abi) return a.abi ? -1 : 1;
    return b.specificity - a.specificity;
  };
}

/**
 * The prebuild for `target` in `dir`/prebuilds: { file, relative, folder,
 * rejected } — `file` is null when none matches; `folder` is where it was
 * looked for; `rejected` lists the .node files there that do not match, and why.
 */
function findPrebuild(dir = PACKAGE_DIR, target = hostTarget()) {
  const root = path.join(dir, 'prebuilds');
  const tuple = readdir(root)
    .map(parseTuple)
    .filter((t) => t && t.platform === target.platform && t.architectures.includes(target.arch))
    .sort((a, b) => a.architectures.length - b.architectures.length)[0];
  const folder = path.join('prebuilds', tuple ? tuple.name : `${target.platform}-${target.arch}`);
  const result = { file: null, relative: null, folder, rejected: [] };
  if (!tuple) return result;
  const candidates = [];
  for (const tags of readdir(path.join(dir, folder)).map(parseTags)) {
    if (!tags) continue;
    const why = mismatch(tags, target);
    if (why) result.rejected.push(`${tags.file} (built for ${why})`);
    else candidates.push(tags);
  }
  const winner = candidates.sort(compareTags(target.runtime))[0];
  if (winner) {
    result.relative = path.join(folder, winner.file);
    result.file = path.join(dir, result.relative);
  }
  return result;
}

/** The local node-gyp builds, most wanted first: [{ file, relative }]. */
function localBuilds(dir = PACKAGE_DIR) {
  return BUILDS.map((relative) => ({ relative, file: path.join(dir, relative) }));
}

/** What the loader looked for, for an error message. */
function explainMissing(dir = PACKAGE_DIR, target = hostTarget()) {
  const prebuild = findPrebuild(dir, target);
  const found = prebuild.rejected.length ? `found only ${prebuild.rejected.join(', ')}` : 'none there';
  return `no native addon for ${describe(target)} in ${dir}: looked for a local build ` +
    `(${BUILDS.join(', ')}: missing) and a prebuild in ${prebuild.folder}/ (${found})`;
}

function truthy(value) {
  return value !== undefined && /^(1|true|yes|on)$/i.test(String(value).trim());
}

/**
 * What the install script should do: { build: true, reason } to compile from
 * source, or { build: false, prebuild, reason } to use the shipped prebuild.
 * A source build is forced by `--from-source`, A3S_LANE_BUILD_FROM_SOURCE=1 or
 * npm's `--build-from-source` (npm_config_build_from_source, the flag
 * prebuild-install and node-gyp-build honour too), and happens in the
 * repository checkout (../c_core beside node/), where the engine is edited.
 * Otherwise the matching prebuild is used if it loads in a child process.
 */
function installDecision({ dir = PACKAGE_DIR, env = process.env, argv = [], target = hostTarget() } = {}) {
  if (argv.includes('--from-source')) return { build: true, reason: '--from-source' };
  if (truthy(env.A3S_LANE_BUILD_FROM_SOURCE)) return { build: true, reason: 'A3S_LANE_BUILD_FROM_SOURCE is set' };
  if (truthy(env.npm_config_build_from_source)) return { build: true, reason: 'npm --build-from-source' };
  if (fs.existsSync(path.join(dir, '..', 'c_core', 'lane_core.h'))) {
    return { build: true, reason: 'the repository checkout (../c_core) always compiles' };
  }
  const prebuild = findPrebuild(dir, target);
  if (!prebuild.file) {
    const found = prebuild.rejected.length ? `; found only ${prebuild.rejected.join(', ')}` : '';
    return { build: true, reason: `no prebuild for ${describe(target)} in ${prebuild.folder}/${found}` };
  }
  const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(prebuild.file)})`], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (probe.status !== 0) {
    const error = (probe.stderr || '').split('\n').find((line) => /Error/.test(line)) || `exit ${probe.status}`;
    return { build: true, reason: `the prebuild ${prebuild.relative} does not load here: ${error.trim()}` };
  }
  return {
    build: false,
    prebuild,
    reason: `it matches ${describe(target)}, needs N-API ≥ ${NAPI_VERSION}, and loads`,
  };
}

module.exports = {
  ADDON,
  NAPI_VERSION,
  PACKAGE_DIR,
  hostTarget,
  describe,
  detectLibc,
  parseTuple,
  parseTags,
  findPrebuild,
  localBuilds,
  explainMissing,
  installDecision,
};
