'use strict';
// lib/prebuild.js and lib/binding.js: which addon is loaded, which prebuild
// matches this machine (the same file node-gyp-build would pick, on a range of
// prebuilds/ layouts), what the install script decides, and what the loader
// says when there is nothing to load.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const prebuild = require('../lib/prebuild');

const PACKAGE_DIR = path.join(__dirname, '..');
const HOST = prebuild.hostTarget();
const TUPLE = `${HOST.platform}-${HOST.arch}`;
const OTHER_LIBC = HOST.libc === 'musl' ? 'glibc' : 'musl';
const DEV_BUILD = path.join(PACKAGE_DIR, 'build', 'Release', prebuild.ADDON);

function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'a3s-lane-prebuild-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Lays out `dir`/prebuilds/<folder>/<file> for { folder: [files] }; files hold `content`. */
function layout(dir, folders, content = 'not an addon') {
  for (const [folder, files] of Object.entries(folders)) {
    fs.mkdirSync(path.join(dir, 'prebuilds', folder), { recursive: true });
    for (const file of files) {
      const target = path.join(dir, 'prebuilds', folder, file);
      if (typeof content === 'string') fs.writeFileSync(target, content);
      else fs.copyFileSync(content.copy, target);
    }
  }
  return dir;
}

/** A copy of the package's JS (no build/, no prebuilds/) to load lib/binding.js from. */
function packageCopy(t) {
  const dir = path.join(tempDir(t), 'lane');
  fs.mkdirSync(dir);
  fs.cpSync(path.join(PACKAGE_DIR, 'lib'), path.join(dir, 'lib'), { recursive: true });
  fs.copyFileSync(path.join(PACKAGE_DIR, 'package.json'), path.join(dir, 'package.json'));
  return dir;
}

/** Requires `dir`/lib/binding.js in a child: { addon } or { code, message }. */
function loadIn(dir, env = {}) {
  const script = `try { console.log(JSON.stringify({ addon: require(${JSON.stringify(path.join(dir, 'lib', 'binding.js'))}).addon })) }
    catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`;
  const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, ...env } });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout);
}

test('the N-API version in package.json is the one binding.gyp builds for', () => {
  const gyp = fs.readFileSync(path.join(PACKAGE_DIR, 'binding.gyp'), 'utf8');
  assert.match(gyp, new RegExp(`"NAPI_VERSION=${prebuild.NAPI_VERSION}"`));
  assert.ok(Number(process.versions.napi) >= prebuild.NAPI_VERSION, 'this Node.js can load the addon');
});

test('in the checkout the addon is the local build', () => {
  const { addon } = require('../lib/binding');
  assert.equal(addon.from, 'build');
  assert.equal(addon.path, DEV_BUILD);
});

test('tags and tuples are read as node-gyp-build reads them', () => {
  const nodeGypBuild = require('node-gyp-build');
  for (const file of ['@a3s-lab+lane.glibc.node', '@a3s-lab+lane.node', 'node.napi.musl.node', 'node.abi115.node',
    'electron.napi.node', 'node.napi.uv1.armv7.glibc.node', 'readme.txt', 'a.b.c']) {
    const ours = prebuild.parseTags(file);
    const theirs = nodeGypBuild.parseTags(file);
    assert.deepEqual(ours && { ...ours }, theirs && { ...theirs }, file);
  }
  for (const name of ['linux-x64', 'darwin-x64+arm64', 'linux', 'linux-', 'linux-x64+', 'a-b-c']) {
    assert.deepEqual(prebuild.parseTuple(name), nodeGypBuild.parseTuple(name), name);
  }
});

test('the prebuild found for this machine is the one node-gyp-build picks, on every layout', (t) => {
  const nodeGypBuild = require('node-gyp-build');
  const abi = process.versions.modules;
  const layouts = [
    { [TUPLE]: [`@a3s-lab+lane.${HOST.libc}.node`, `@a3s-lab+lane.${OTHER_LIBC}.node`] },
    { [TUPLE]: [`@a3s-lab+lane.${OTHER_LIBC}.node`] },
    { [TUPLE]: ['@a3s-lab+lane.node', `@a3s-lab+lane.${HOST.libc}.node`] },
    { [TUPLE]: ['node.napi.glibc.node', 'node.napi.musl.node'] },
    { [TUPLE]: ['node.napi.node', `node.abi${abi}.node`] },
    { [TUPLE]: ['node.abi1.node'] },
    { [TUPLE]: ['electron.napi.node'] },
    { [TUPLE]: ['README.md', '@a3s-lab+lane.node'] },
    { [`${TUPLE}+other`]: ['multi.node'], [TUPLE]: ['single.node'] },
    { [`${HOST.platform}-other+${HOST.arch}`]: ['multi.node'] },
    { [`${HOST.platform}-other`]: ['x.node'], [`other-${HOST.arch}`]: ['y.node'] },
    {},
  ];
  for (const folders of layouts) {
    const dir = layout(tempDir(t), folders);
    let theirs = null;
    try {
      theirs = nodeGypBuild.path(dir);
    } catch (error) {
      assert.match(error.message, /No native build was found/);
    }
    assert.equal(prebuild.findPrebuild(dir).file, theirs, JSON.stringify(folders));
  }
});

test('a Node.js below the N-API version the prebuilds need gets none, and is told why', (t) => {
  const dir = layout(tempDir(t), { [TUPLE]: [`@a3s-lab+lane.${HOST.libc}.node`] });
  const found = prebuild.findPrebuild(dir, { ...HOST, napi: prebuild.NAPI_VERSION - 1 });
  assert.equal(found.file, null);
  assert.deepEqual(found.rejected, [
    `@a3s-lab+lane.${HOST.libc}.node (built for N-API ${prebuild.NAPI_VERSION} (this Node.js has ${prebuild.NAPI_VERSION - 1}))`,
  ]);
});

test('the install script: forced, repository checkout, no prebuild, a broken one, a good one', (t) => {
  const decide = (options) => prebuild.installDecision(options);
  const pkg = path.join(tempDir(t), 'lane');
  fs.mkdirSync(pkg);

  assert.deepEqual(decide({ dir: pkg, argv: ['--from-source'], env: {} }), { build: true, reason: '--from-source' });
  assert.equal(decide({ dir: pkg, env: { A3S_LANE_BUILD_FROM_SOURCE: '1' } }).reason, 'A3S_LANE_BUILD_FROM_SOURCE is set');
  assert.equal(decide({ dir: pkg, env: { npm_config_build_from_source: 'true' } }).reason, 'npm --build-from-source');
  assert.match(decide({ dir: PACKAGE_DIR, env: {} }).reason, /repository checkout/);

  let decision = decide({ dir: pkg, env: { A3S_LANE_BUILD_FROM_SOURCE: '0' } });
  assert.equal(decision.build, true);
  assert.equal(decision.reason, `no prebuild for ${prebuild.describe(HOST)} in prebuilds/${TUPLE}/`);

  layout(pkg, { [TUPLE]: [`@a3s-lab+lane.${OTHER_LIBC}.node`] });
  assert.match(decide({ dir: pkg, env: {} }).reason, new RegExp(`found only @a3s-lab\\+lane\\.${OTHER_LIBC}\\.node \\(built for ${OTHER_LIBC}\\)$`));

  const name = `@a3s-lab+lane.${HOST.libc}.node`;
  layout(pkg, { [TUPLE]: [name] });
  decision = decide({ dir: pkg, env: {} });
  assert.equal(decision.build, true);
  assert.match(decision.reason, new RegExp(`^the prebuild prebuilds/${TUPLE}/@a3s-lab\\+lane\\.${HOST.libc}\\.node does not load here: .*Error`));

  if (!fs.existsSync(DEV_BUILD)) return t.skip('no local build to stand in for a prebuild');
  layout(pkg, { [TUPLE]: [name] }, { copy: DEV_BUILD });
  decision = decide({ dir: pkg, env: {} });
  assert.equal(decision.build, false, decision.reason);
  assert.equal(decision.prebuild.file, path.join(pkg, 'prebuilds', TUPLE, name));
  assert.match(decision.reason, new RegExp(`matches ${prebuild.describe(HOST)}, needs N-API ≥ ${prebuild.NAPI_VERSION}, and loads`));
});

test('the loader takes the prebuild when there is no local build', { skip: !fs.existsSync(DEV_BUILD) && 'no local build' }, (t) => {
  const dir = packageCopy(t);
  const file = path.join(dir, 'prebuilds', TUPLE, `@a3s-lab+lane.${HOST.libc}.node`);
  layout(dir, { [TUPLE]: [path.basename(file)] }, { copy: DEV_BUILD });
  assert.deepEqual(loadIn(dir), { addon: { path: file, from: 'prebuild' } });

  // A local build comes first.
  fs.mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
  fs.copyFileSync(DEV_BUILD, path.join(dir, 'build', 'Release', prebuild.ADDON));
  assert.deepEqual(loadIn(dir), { addon: { path: path.join(dir, 'build', 'Release', prebuild.ADDON), from: 'build' } });
});

test('with nothing to load, the error names everything that was looked for', (t) => {
  const dir = packageCopy(t);
  let result = loadIn(dir);
  assert.equal(result.code, 'ERR_LANE_NOT_BUILT');
  assert.equal(result.message,
    `@a3s-lab/lane: no native addon for ${prebuild.describe(HOST)} in ${dir}: looked for a local build ` +
    `(build/Release/a3s_lane.node, build/Debug/a3s_lane.node: missing) and a prebuild in prebuilds/${TUPLE}/ ` +
    '(none there). Build it from source: `A3S_LANE_BUILD_FROM_SOURCE=1 npm rebuild @a3s-lab/lane` in your project, or ' +
    '`npm run build` in the package (needs a C/C++ compiler, make and Python 3 for node-gyp)');

  layout(dir, { [TUPLE]: [`@a3s-lab+lane.${OTHER_LIBC}.node`] });
  result = loadIn(dir);
  assert.equal(result.code, 'ERR_LANE_NOT_BUILT');
  assert.match(result.message, new RegExp(`prebuilds/${TUPLE}/ \\(found only @a3s-lab\\+lane\\.${OTHER_LIBC}\\.node \\(built for ${OTHER_LIBC}\\)\\)`));

  // LIBC (node-gyp-build's override) makes that file the match: it is no addon.
  result = loadIn(dir, { LIBC: OTHER_LIBC });
  assert.equal(result.code, 'ERR_LANE_PREBUILD_FAILED');
  assert.match(result.message, new RegExp(`the prebuilt addon prebuilds/${TUPLE}/@a3s-lab\\+lane\\.${OTHER_LIBC}\\.node does not load`));
  assert.match(result.message, /A3S_LANE_BUILD_FROM_SOURCE=1 npm rebuild @a3s-lab\/lane/);
});
