'use strict';
// `npm pack` makes a tarball that installs into an empty project (compiling
// the addon from the C sources it carries) and runs the README's example.

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const PACKAGE_DIR = path.join(__dirname, '..');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

// The first js block of the README that requires the package, and the
// output its `// -> ` comments promise.
function readmeExample() {
  const readme = fs.readFileSync(path.join(PACKAGE_DIR, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  const code = blocks.find((b) => b.includes("require('@a3s-lab/lane')"));
  assert.ok(code, 'the README has a Node example');
  const expected = [...code.matchAll(/^\s*\/\/ -> (.*)$/gm)].map((m) => m[1]);
  assert.ok(expected.length > 0, 'the example says what it prints');
  return { code, expected };
}

function run(command, args, cwd) {
  const env = { ...process.env };
  // Settings of the npm that runs this test must not leak into the inner ones.
  for (const key of Object.keys(env)) {
    if (/^npm_(lifecycle|package)_/i.test(key)) delete env[key];
  }
  return execFileSync(command, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 });
}

test('npm pack gives a tarball that installs into an empty project and runs the README example', { timeout: 300_000 }, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'a3s-lane-pack-'));
  try {
    const packed = JSON.parse(run(NPM, ['pack', '--json', '--pack-destination', tmp], PACKAGE_DIR));
    const tarball = path.join(tmp, packed[0].filename);
    const files = packed[0].files.map((f) => f.path).sort();
    for (const file of ['binding.gyp', 'index.js', 'index.d.ts', 'README.md', 'src/addon.cc',
      'scripts/build.js', 'scripts/gyp-sources.js', 'c_core/lane_core.h', 'c_core/lane_core.c', 'package.json']) {
      assert.ok(files.includes(file), `the tarball has ${file}`);
    }
    assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('build/') || f.startsWith('node_modules/')));
    assert.ok(!fs.existsSync(path.join(PACKAGE_DIR, 'c_core')), 'postpack removed the vendored copy');

    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    run(NPM, ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], app);
    assert.ok(fs.existsSync(path.join(app, 'node_modules', '@a3s-lab', 'lane', 'build', 'Release', 'a3s_lane.node')));

    const { code, expected } = readmeExample();
    fs.writeFileSync(path.join(app, 'example.js'), code);
    const output = run(process.execPath, ['example.js'], app);
    assert.deepEqual(output.trim().split('\n'), expected);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
