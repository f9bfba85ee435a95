'use strict';
// `npm pack` gives a tarball that carries a prebuilt addon for this machine
// (prebuildify's layout) plus the sources and node-addon-api for a source
// build. Installed into an empty project, offline, with a fresh npm cache:
//   - with no compiler reachable (PATH holds only `node` and `sh`, CC and CXX
//     are `false`), the install uses the prebuild and the README's examples
//     (the seed's and the Quick start) run; also with install scripts off;
//     forcing a source build there fails, which shows the toolchain is gone;
//   - from the same tarball without its prebuild, with the compiler, the
//     install builds from the shipped sources and the examples run;
//   - the tarball ships the Redis lane rules (lua/lanes.lua, a copy of
//     ../pylane/redis/lanes.lua made at pack time) and, with the redis
//     package beside it, runs the seed's example with only { redis, queue }
//     added, against a fresh redis-server.
// The tarball is packed from a copy of node/ and ../c_core in a temp folder,
// so the checkout is not touched (prepack writes c_core/ and prebuilds/ into
// the folder it packs) and packs running at the same time cannot collide.

const { before, after, test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { quickStart, seedExample } = require('./readme');
const { RedisServer, skipReason } = require('./redis-server');
const prebuild = require('../lib/prebuild');

const PACKAGE_DIR = path.join(__dirname, '..');
const HOST = prebuild.hostTarget();
const TUPLE = `${HOST.platform}-${HOST.arch}`;
const PREBUILD = `prebuilds/${TUPLE}/@a3s-lab+lane${HOST.platform === 'linux' ? `.${HOST.libc}` : ''}.node`;
const LUA = path.join(PACKAGE_DIR, '..', 'pylane', 'redis', 'lanes.lua');
const TOOLCHAIN = ['cc', 'gcc', 'g++', 'c++', 'clang', 'clang++', 'make', 'ld'];

/** npm's own CLI script, to run it with this node and any PATH. */
function npmCli() {
  const candidates = [
    process.env.npm_execpath,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
    path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'bin', 'npm-cli.js'),
  ];
  const found = candidates.find((file) => file && /npm-cli\.js$/.test(file) && fs.existsSync(file));
  assert.ok(found, `npm-cli.js not found (looked at ${candidates.filter(Boolean).join(', ')})`);
  return found;
}

/** The environment of this process without the settings of the npm running the tests. */
function cleanEnv(extra = {}) {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (/^npm_/i.test(key)) delete env[key];
  }
  return { ...env, ...extra };
}

function run(args, { cwd, env, timeout = 240_000 }) {
  const started = Date.now();
  const result = spawnSync(args[0], args.slice(1), { cwd, env, encoding: 'utf8', timeout });
  const output = `${result.stdout}${result.stderr}`;
  return { status: result.status, stdout: result.stdout, output, error: result.error, ms: Date.now() - started };
}

function ok(result, what) {
  assert.equal(result.error, undefined, `${what}: ${result.error}`);
  assert.equal(result.status, 0, `${what} failed:\n${result.output}`);
  return result;
}

let tmp;
let tarball;
let packed;
let noCompiler; // { bin, env }
let packMs;

/** A fresh project directory with its own empty npm cache. */
function project(name) {
  const dir = path.join(tmp, name);
  fs.mkdirSync(path.join(dir, '.npm-cache'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }));
  return dir;
}

function npmInstall(dir, file, env, flags = []) {
  return run([process.execPath, npmCli(), 'install', file, '--offline', `--cache=${path.join(dir, '.npm-cache')}`,
    '--no-audit', '--no-fund', '--no-update-notifier', '--foreground-scripts', ...flags], { cwd: dir, env });
}

/** Runs the seed's example and the Quick start in `dir`; returns the addon the package loaded. */
function runExamples(dir, env) {
  for (const { code, expected } of [seedExample(), quickStart()]) {
    fs.writeFileSync(path.join(dir, 'example.js'), code);
    const result = ok(run([process.execPath, 'example.js'], { cwd: dir, env, timeout: 60_000 }), 'the example');
    assert.deepEqual(result.stdout.trim().split('\n'), expected);
  }
  const probe = "console.log(JSON.stringify(require('./node_modules/@a3s-lab/lane/lib/binding.js').addon))";
  return JSON.parse(ok(run([process.execPath, '-e', probe], { cwd: dir, env }), 'the probe').stdout);
}

/** <tmp>/repo/node and <tmp>/repo/c_core: the package's own files, the engine, node-addon-api. */
function checkoutCopy() {
  const repo = path.join(tmp, 'repo');
  const skip = new Set(['node_modules', 'build', 'prebuilds', 'c_core']);
  fs.cpSync(PACKAGE_DIR, path.join(repo, 'node'), {
    recursive: true,
    filter: (src) => {
      const top = path.relative(PACKAGE_DIR, src).split(path.sep)[0];
      return !skip.has(top) && !top.endsWith('.tgz');
    },
  });
  fs.cpSync(path.join(PACKAGE_DIR, '..', 'c_core'), path.join(repo, 'c_core'), { recursive: true });
  fs.mkdirSync(path.join(repo, 'pylane', 'redis'), { recursive: true });
  fs.copyFileSync(LUA, path.join(repo, 'pylane', 'redis', 'lanes.lua'));
  // node-addon-api is bundled into the tarball: a real copy. The pack-time
  // tools (prebuildify) resolve from the checkout through NODE_PATH.
  fs.cpSync(path.dirname(require.resolve('node-addon-api/package.json')),
    path.join(repo, 'node', 'node_modules', 'node-addon-api'), { recursive: true });
  return path.join(repo, 'node');
}

let copy;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'a3s-lane-pack-'));
  copy = checkoutCopy();
  const packEnv = cleanEnv({ TMPDIR: tmp, NODE_PATH: path.join(PACKAGE_DIR, 'node_modules') });
  const result = ok(run([process.execPath, npmCli(), 'pack', '--json', '--pack-destination', tmp],
    { cwd: copy, env: packEnv }), 'npm pack');
  packed = JSON.parse(result.stdout)[0];
  tarball = path.join(tmp, packed.filename);
  packMs = result.ms;

  // No compiler reachable: PATH is a folder holding only `node` and `sh`.
  const bin = path.join(tmp, 'bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync('/bin/sh', path.join(bin, 'sh'));
  const env = { HOME: path.join(tmp, 'home'), PATH: bin, CC: 'false', CXX: 'false', TMPDIR: tmp };
  fs.mkdirSync(env.HOME);
  noCompiler = { bin, env };
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('the tarball carries the prebuild, the sources for a source build and node-addon-api', (t) => {
  t.diagnostic(`npm pack (prebuildify included): ${packMs} ms, ${packed.size} bytes packed`);
  const files = packed.files.map((f) => f.path).sort();
  for (const file of ['binding.gyp', 'index.js', 'index.d.ts', 'README.md', 'package.json', 'src/addon.cc',
    'lib/binding.js', 'lib/prebuild.js', 'scripts/build.js', 'scripts/gyp-sources.js',
    'c_core/lane_core.h', 'c_core/lane_core.c', 'node_modules/node-addon-api/napi.h', PREBUILD,
    'lua/lanes.lua', 'lib/redis/connection.js', 'lib/redis/bridge-thread.js']) {
    assert.ok(files.includes(file), `the tarball has ${file}`);
  }
  assert.deepEqual(files.filter((f) => f.startsWith('prebuilds/')), [PREBUILD], 'one prebuild: this machine\'s');
  assert.ok(!files.some((f) => /^(test|build)\//.test(f) || f === 'scripts/prebuild.js'));
  assert.deepEqual(packed.bundled, ['node-addon-api']);
  assert.ok(!fs.existsSync(path.join(copy, 'c_core')), 'postpack removed the vendored engine');
  assert.ok(!fs.existsSync(path.join(copy, 'prebuilds')), 'postpack removed prebuilds/');
  assert.ok(!fs.existsSync(path.join(copy, 'lua')), 'postpack removed the copy of lanes.lua');
  assert.ok(!packed.files.some((f) => f.path.startsWith('node_modules/redis')), 'the redis client is not bundled');
  assert.ok(!fs.existsSync(path.join(copy, 'build')), 'the development build folder was not used');
  assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.startsWith('a3s-lane-prebuild-')), [], 'the staging folder is gone');
});

test('with no compiler reachable the tarball installs offline and runs the README examples on the prebuild',
  { timeout: 300_000 }, (t) => {
    for (const tool of TOOLCHAIN) {
      const probe = spawnSync(tool, ['--version'], { env: noCompiler.env });
      assert.equal(probe.error && probe.error.code, 'ENOENT', `${tool} must not be reachable`);
    }
    const app = project('no-compiler');
    const install = ok(npmInstall(app, tarball, noCompiler.env), 'npm install without a compiler');
    t.diagnostic(`npm install (prebuild, no compiler): ${install.ms} ms`);
    assert.match(install.output, new RegExp(`@a3s-lab/lane: using the prebuilt addon ${PREBUILD.replace(/[+.]/g, '\\$&')} `));
    const installed = path.join(app, 'node_modules', '@a3s-lab', 'lane');
    assert.ok(!fs.existsSync(path.join(installed, 'build')), 'nothing was compiled');

    const addon = runExamples(app, noCompiler.env);
    assert.deepEqual(addon, { path: path.join(installed, PREBUILD), from: 'prebuild' });
    // node-gyp-build (the loader of prebuildify's convention) picks the same file.
    const nodeGypBuild = require('node-gyp-build');
    assert.equal(nodeGypBuild.path(installed), addon.path);
  });

test('with install scripts off the prebuild still loads (nothing to run at install)', { timeout: 300_000 }, (t) => {
  const app = project('ignore-scripts');
  const install = ok(npmInstall(app, tarball, noCompiler.env, ['--ignore-scripts']), 'npm install --ignore-scripts');
  t.diagnostic(`npm install --ignore-scripts: ${install.ms} ms`);
  assert.doesNotMatch(install.output, /@a3s-lab\/lane: /);
  assert.equal(runExamples(app, noCompiler.env).from, 'prebuild');
});

test('forcing a source build with no compiler reachable fails (the toolchain really is gone)',
  { timeout: 300_000 }, (t) => {
    const app = project('forced-no-compiler');
    // Python is handed over when there is one, so node-gyp gets as far as the compiler.
    const python = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
    const env = { ...noCompiler.env, A3S_LANE_BUILD_FROM_SOURCE: '1' };
    if (python.status === 0 && python.stdout.trim()) env.PYTHON = python.stdout.trim();
    const install = npmInstall(app, tarball, env);
    t.diagnostic(`npm install (forced source build, no compiler): ${install.ms} ms, exit ${install.status}`);
    assert.notEqual(install.status, 0, 'the install must fail');
    if (env.PYTHON) assert.doesNotMatch(install.output, /gyp ERR! find Python/, 'it fails at the compiler, not at Python');
    assert.match(install.output, /@a3s-lab\/lane: building the addon from source with node-gyp \(A3S_LANE_BUILD_FROM_SOURCE is set\)/);
    assert.ok(!fs.existsSync(path.join(app, 'node_modules', '@a3s-lab', 'lane', 'build', 'Release', prebuild.ADDON)));
  });

test('where no prebuild matches, the install builds from the shipped sources and runs the examples',
  { timeout: 300_000 }, (t) => {
    // The same tarball without prebuilds/.
    const unpacked = path.join(tmp, 'unpacked');
    fs.mkdirSync(unpacked);
    ok(run(['tar', '-xzf', tarball, '-C', unpacked], { cwd: tmp }), 'tar -x');
    fs.rmSync(path.join(unpacked, 'package', 'prebuilds'), { recursive: true });
    const stripped = path.join(tmp, 'no-prebuild.tgz');
    ok(run(['tar', '-czf', stripped, '-C', unpacked, 'package'], { cwd: tmp }), 'tar -c');

    const app = project('source-build');
    const env = cleanEnv({ HOME: path.join(tmp, 'home') });
    const install = ok(npmInstall(app, stripped, env), 'npm install (source build)');
    t.diagnostic(`npm install (source build): ${install.ms} ms`);
    assert.match(install.output,
      new RegExp(`@a3s-lab/lane: building the addon from source with node-gyp \\(no prebuild for ${TUPLE}`));
    const installed = path.join(app, 'node_modules', '@a3s-lab', 'lane');
    const addon = runExamples(app, env);
    assert.deepEqual(addon, { path: path.join(installed, 'build', 'Release', prebuild.ADDON), from: 'build' });
  });

test('the tarball ships the one lanes.lua and runs the seed with only { redis, queue } added, on a fresh redis-server',
  { skip: skipReason(), timeout: 300_000 }, async (t) => {
    const unpacked = path.join(tmp, 'lua-check');
    fs.mkdirSync(unpacked);
    ok(run(['tar', '-xzf', tarball, '-C', unpacked, 'package/lua/lanes.lua'], { cwd: tmp }), 'tar -x lanes.lua');
    assert.equal(fs.readFileSync(path.join(unpacked, 'package', 'lua', 'lanes.lua'), 'utf8'), fs.readFileSync(LUA, 'utf8'),
      'the shipped lanes.lua is the repository\'s own');

    const app = project('redis-seed');
    ok(npmInstall(app, tarball, noCompiler.env), 'npm install without a compiler');
    const installed = path.join(app, 'node_modules', '@a3s-lab', 'lane');
    // The application brings the optional peer dependency (npm install redis):
    // the copy this checkout tests with.
    for (const name of ['redis', '@redis']) {
      fs.cpSync(path.join(PACKAGE_DIR, 'node_modules', name), path.join(app, 'node_modules', name), { recursive: true });
    }
    const server = await new RedisServer().start();
    try {
      const { code, expected } = seedExample();
      const option = `{ redis: ${JSON.stringify(server.url)}, queue: 'seed' }`;
      const redisCode = code
        .replace('const lane = new Lane();', `const lane = new Lane(${option});`)
        .replace(/\n\]\);\nlane\.start\(\);/, `\n], ${option});\nlane.start();`);
      assert.equal(redisCode.split(option).length, 3, 'the option went into both constructors');
      assert.deepEqual(redisCode.replaceAll(`${option}`, '').replace('new Lane()', 'new Lane()').replace('], );', ']);'),
        code, 'nothing else changed');
      fs.writeFileSync(path.join(app, 'redis-example.js'), redisCode);
      const result = ok(run([process.execPath, 'redis-example.js'], { cwd: app, env: noCompiler.env, timeout: 60_000 }),
        'the seed example in Redis mode');
      t.diagnostic(`the seed in Redis mode ran in ${result.ms} ms and exited by itself`);
      assert.deepEqual(result.stdout.trim().split('\n'), expected);
      const probe = `console.log(require('./node_modules/@a3s-lab/lane/lib/redis/connection.js').luaFile())`;
      assert.equal(ok(run([process.execPath, '-e', probe], { cwd: app, env: noCompiler.env }), 'the probe').stdout.trim(),
        path.join(installed, 'lua', 'lanes.lua'));
      // The queue it made holds the seed's lanes, and its command ran.
      const redis = require('redis');
      const admin = redis.createClient({ url: server.url, RESP: 2 });
      await admin.connect();
      const stats = JSON.parse(await admin.sendCommand(['FCALL_RO', 'a3s_stats', '1', 'a3s:{seed}', '']));
      admin.destroy();
      assert.deepEqual(stats.lanes.map((l) => l.lane_id), ['system', 'control', 'query', 'session', 'skill', 'prompt', 'high', 'low']);
      assert.equal(stats.lanes.find((l) => l.lane_id === 'high').completed, 1);
    } finally {
      await server.stop();
    }
  });
