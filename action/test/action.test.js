'use strict';
// Tests of the GitHub Action's logic against a fake runner (node's built-in test runner):
//   node --test action/test/*.test.js
// scripts/test.sh runs them; with SGCACHE_BIN (the real binary) and the go command, the last
// test also runs the whole job for real: release install, daemon, a go build, the summary.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const lib = require('../lib');
const fr = require('./fake-runner');

const pushEvent = (branch = 'main') => ({
  ref: `refs/heads/${branch}`,
  repository: { id: 1, full_name: 'acme/app', default_branch: 'main' },
});
const prEvent = (headRepo) => ({
  pull_request: {
    number: 7,
    head: { ref: 'main', repo: headRepo },
    base: { ref: 'main', repo: { id: 1, full_name: 'acme/app', fork: false } },
  },
  repository: { id: 1, full_name: 'acme/app', default_branch: 'main' },
});

function read(r, name) {
  return lib.parseKeyValueFile(fs.readFileSync(r.f(name), 'utf8'));
}

function calls(r) {
  return fs.existsSync(r.f('fake/calls')) ? fs.readFileSync(r.f('fake/calls'), 'utf8').trim().split('\n') : [];
}

function stopLeftovers(r) {
  const pidFile = r.f('fake/daemon.pid');
  if (fs.existsSync(pidFile)) {
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    if (fr.alive(pid)) process.kill(pid, 'SIGKILL');
  }
}

test('settings: namespaces default to the branch and the default branch; forks are read-only', () => {
  const env = { GITHUB_REF_NAME: 'feature/x', GITHUB_REPOSITORY: 'acme/app', INPUT_REMOTE: 's3://b' };
  let s = lib.settings(env, pushEvent('feature/x'));
  assert.equal(s.namespace, 'feature/x');
  assert.equal(s.readNamespaces, 'main');
  assert.equal(s.readOnly, false);

  s = lib.settings({ ...env, GITHUB_REF_NAME: 'main' }, pushEvent('main'));
  assert.equal(s.namespace, 'main');
  assert.equal(s.readNamespaces, '', 'main reads no further namespace');

  // A pull request from a fork: read-only, and never holds the signing key.
  const fork = prEvent({ id: 2, full_name: 'mallory/app', fork: true });
  s = lib.settings({ ...env, GITHUB_REF_NAME: '7/merge', 'INPUT_SIGNING-KEY': 'sgsk1_x' }, fork);
  assert.deepEqual([s.readOnly, s.foreign, s.signingKey, s.namespace, s.readNamespaces], [true, true, '', '7/merge', 'main']);
  // A fork PR whose head was deleted is foreign too.
  assert.equal(lib.settings(env, prEvent(null)).readOnly, true);
  // A pull request inside the repository (even one that is itself a fork) is not.
  const same = prEvent({ id: 1, full_name: 'acme/app', fork: true });
  assert.equal(lib.settings(env, same).readOnly, false);
  // A workflow_run triggered from a fork.
  const wr = { workflow_run: { head_repository: { full_name: 'mallory/app' } }, repository: { full_name: 'acme/app' } };
  assert.equal(lib.settings(env, wr).readOnly, true);
  // Explicit inputs win.
  assert.equal(lib.settings({ ...env, 'INPUT_READ-ONLY': 'true' }, pushEvent()).readOnly, true);
  s = lib.settings({ ...env, INPUT_NAMESPACE: 'ci', 'INPUT_READ-NAMESPACES': 'main, release,ci' }, pushEvent());
  assert.equal(s.readNamespaces, 'main,release');
  assert.throws(() => lib.settings({ ...env, 'INPUT_READ-ONLY': 'maybe' }, pushEvent()), /read-only.*boolean/);
});

test('release: target, tag and asset names match the release workflow', () => {
  assert.equal(lib.releaseTarget({ RUNNER_OS: 'Linux', RUNNER_ARCH: 'ARM64' }), 'aarch64-unknown-linux-musl');
  assert.equal(lib.releaseTarget({ RUNNER_OS: 'macOS', RUNNER_ARCH: 'X64' }), 'x86_64-apple-darwin');
  assert.equal(lib.releaseTarget({ RUNNER_OS: 'Windows', RUNNER_ARCH: 'X64' }), null, 'sgcache is Unix-only');
  assert.equal(lib.assetName('x86_64-apple-darwin'), 'sgcache-x86_64-apple-darwin.tar.gz');
  assert.equal(lib.releaseTag({ GITHUB_ACTION_REF: 'v1.2.3' }), 'v1.2.3');
  assert.equal(lib.releaseTag({ GITHUB_ACTION_REF: 'main' }), null);
  assert.equal(lib.releaseTag({ GITHUB_ACTION_REF: 'v1' }), null, 'a moving major tag names no release');
  assert.equal(lib.releaseTag({ GITHUB_ACTION_REF: 'v1.2.3', INPUT_VERSION: 'source' }), null);
  assert.equal(lib.releaseTag({ GITHUB_ACTION_REF: 'main', INPUT_VERSION: '0.3.0' }), 'v0.3.0');
  // The names the release workflow gives its assets.
  const wf = fs.readFileSync(path.join(fr.ACTION, '..', '.github', 'workflows', 'release.yml'), 'utf8');
  for (const t of ['x86_64-unknown-linux-musl', 'aarch64-unknown-linux-musl', 'aarch64-apple-darwin', 'x86_64-apple-darwin']) {
    assert.ok(wf.includes(t), `release.yml builds ${t}`);
  }
  assert.ok(wf.includes('sgcache-${{ matrix.target }}'), 'release.yml names assets sgcache-<target>');
  assert.ok(wf.includes('SHA256SUMS'), 'release.yml publishes SHA256SUMS');
  const sums = lib.parseSums(`${'a'.repeat(64)}  x.tar.gz\n${'B'.repeat(64)} *y.zip\nnoise\n`);
  assert.deepEqual([...sums], [['x.tar.gz', 'a'.repeat(64)], ['y.zip', 'b'.repeat(64)]]);
});

test('summary: every figure from the counter delta, and a one-line verdict', () => {
  const before = { gets: 100, hits: 90, misses: 10, uploads: 5 };
  const after = {
    gets: 520, hits: 502, hits_remote: 100, misses: 18, remote_bytes_down: 3 * 1048576,
    remote_bytes_up: 2048, remote_wait_ms: 1234, remote_waits: 100, uploads: 13,
    upload_dropped: 1, upload_failed: 2, upload_skipped_down: 0, upload_abandoned: 0,
    remote_rejected_entries: 3, remote_corrupt_objects: 1, remote_conflicting_entries: 0, version: 'x',
  };
  const d = lib.delta(before, after);
  assert.equal(d.gets, 420);
  assert.equal(d.hits, 412);
  assert.equal(d.uploads, 8);
  assert.equal(d.version, undefined, 'only numbers');
  const v = lib.verdict(d, {});
  assert.equal(
    v,
    '412 of 420 actions from cache (98.1%, 100 from the remote); 8 rebuilt — ⚠ 3 uploads not delivered, 4 remote entries rejected',
  );
  assert.match(lib.verdict(d, { explain: true }), /8 rebuilt: run `sgcache explain` to see why/);
  const md = lib.renderSummary(d, { remote: 's3://user:pw@b/x', namespace: 'main', readOnly: true, foreign: true, how: 'release v1' });
  for (const want of [
    '| Cache lookups (gets) | 420 |',
    '| Hits | 412 (98.1%): 312 local, 100 from the remote |',
    '| Misses (rebuilt) | 8 |',
    '| Downloaded / uploaded | 3.0 MiB / 2.0 KiB |',
    '| Time go commands waited on the remote | 1.2 s (100 gets) |',
    '| Uploads | 8 delivered; 1 dropped (queue full), 2 failed, 0 skipped (remote down), 0 abandoned at the deadline |',
    '| Remote entries rejected | 3 (unsigned, bad signature or malformed), 1 corrupt objects, 0 conflicting |',
    '**read-only** (code from a fork: nothing is uploaded)',
  ]) {
    assert.ok(md.includes(want), `summary lacks ${want}:\n${md}`);
  }
  assert.ok(!md.includes('pw'), 'credentials in a URL are not shown');
  assert.equal(lib.displayRemote('azblob://c/p?account_name=a&account_key=SECRET'), 'azblob://c/p?…');
  assert.equal(lib.displayRemote('s3://b/ci'), 's3://b/ci');
  assert.match(lib.verdict({}, {}), /no go command used the cache/);
  assert.equal(lib.verdict({ gets: 5, hits: 5, hits_remote: 5 }), '5 of 5 actions from cache (100.0%, 5 from the remote); nothing rebuilt');
});

test('job: release binary verified, env and outputs written, daemon started; the end stops it and writes the summary', async () => {
  const releases = fr.tmpdir('releases');
  fr.makeRelease(releases, 'v9.9.9', fr.writeFakeSgcache(fr.tmpdir('bin')));
  const host = await fr.fileServer(releases);
  const r = fr.runner({
    event: pushEvent('feature/x'),
    env: {
      GITHUB_REF_NAME: 'feature/x',
      INPUT_REMOTE: 'file:///tmp/sgcache-remote',
      'INPUT_TRUSTED-KEYS': 'sgpk1_public',
      'INPUT_SIGNING-KEY': 'sgsk1_secret',
      'INPUT_RELEASE-URL': host.url,
    },
  });
  try {
    fs.writeFileSync(r.f('fake/counters'), JSON.stringify({ gets: 10, hits: 10 }));
    const m = await fr.step('main', r.env);
    assert.equal(m.code, 0, m.out + m.err);
    assert.equal(host.hits['/v9.9.9/SHA256SUMS'], 1);
    assert.equal(host.hits[`/v9.9.9/sgcache-${fr.TARGET}.tar.gz`], 1);
    const bin = path.join(r.f('toolcache'), 'sgcache', 'v9.9.9', fr.TARGET, 'bin', 'sgcache');
    assert.ok(fs.existsSync(bin), 'installed in the tool cache');

    const env = read(r, 'env');
    assert.deepEqual(env, {
      GOCACHEPROG: bin,
      SGCACHE_REMOTE: 'file:///tmp/sgcache-remote',
      SGCACHE_NAMESPACE: 'feature/x',
      SGCACHE_READ_NAMESPACES: 'main',
      SGCACHE_READ_ONLY: '0',
      SGCACHE_DAEMON: 'auto',
      SGCACHE_DAEMON_IDLE: '2h',
      SGCACHE_TRUSTED_KEYS: 'sgpk1_public',
      SGCACHE_SIGNING_KEY: 'sgsk1_secret',
    });
    assert.ok(m.out.includes('::add-mask::sgsk1_secret'), 'the signing key is masked in logs');
    assert.equal(fs.readFileSync(r.f('path'), 'utf8').trim(), path.dirname(bin));
    const out = read(r, 'output');
    assert.equal(out.version, 'sgcache 9.9.9');
    assert.equal(out.installed, 'release v9.9.9');
    assert.equal(out['read-only'], 'false');
    assert.match(m.out, /sgcache ready in [\d.]+ s: remote file:\/\/\/tmp\/sgcache-remote, namespace feature\/x \(\+ main\)/);
    assert.match(m.out, /warming: the daemon prefetches at the first go command/);

    const c = calls(r);
    assert.ok(c.includes(`ci restore-mtimes ${r.f('workspace')}`), c.join('\n'));
    assert.ok(c.includes('stats --json') && c.includes('daemon'), c.join('\n'));
    // The daemon runs with exactly the configuration later steps get.
    const denv = fs.readFileSync(r.f('fake/daemon.env'), 'utf8');
    for (const k of ['SGCACHE_REMOTE', 'SGCACHE_NAMESPACE', 'SGCACHE_READ_NAMESPACES', 'SGCACHE_SIGNING_KEY']) {
      assert.ok(denv.includes(`${k}=${env[k]}\n`), `daemon env lacks ${k}: ${denv}`);
    }
    const pid = Number(fs.readFileSync(r.f('fake/daemon.pid'), 'utf8'));
    assert.ok(fr.alive(pid), 'the daemon outlives the setup step');

    // The job's go commands run; then the end of the job.
    fs.writeFileSync(
      r.f('fake/counters'),
      JSON.stringify({ gets: 430, hits: 422, hits_remote: 100, misses: 8, uploads: 8, remote_bytes_up: 4096 }),
    );
    const p = await fr.step('post', fr.postEnv(r, lib));
    assert.equal(p.code, 0, p.out + p.err);
    assert.ok(!p.out.includes('::warning::'), p.out);
    assert.ok(calls(r).includes('daemon --stop'));
    for (let i = 0; i < 100 && fr.alive(pid); i++) await new Promise((res) => setTimeout(res, 20));
    assert.ok(!fr.alive(pid), 'the daemon has exited');
    assert.match(p.out, /sgcache: 412 of 420 actions from cache \(98\.1%, 100 from the remote\); 8 rebuilt/);
    const md = fs.readFileSync(r.f('summary'), 'utf8');
    assert.ok(md.startsWith('### sgcache'), md);
    assert.ok(md.includes('| Uploads | 8 delivered;'), md);
    assert.ok(md.includes('namespace `feature/x`, reading `main`'), md);

    // A second job on this runner (self-hosted: the tool cache is kept) downloads nothing.
    for (const n of ['env', 'state', 'output']) fs.writeFileSync(r.f(n), '');
    fs.rmSync(r.f('fake/stopped'));
    const again = await fr.step('main', r.env);
    assert.equal(again.code, 0, again.out);
    assert.equal(host.hits['/v9.9.9/SHA256SUMS'], 1, 'no second download');
    assert.equal(read(r, 'output').installed, 'tool cache');
    await fr.step('post', fr.postEnv(r, lib));
  } finally {
    stopLeftovers(r);
    host.close();
  }
});

test('job: a pull request from a fork runs read-only and never gets the signing key', async () => {
  const releases = fr.tmpdir('releases');
  fr.makeRelease(releases, 'v9.9.9', fr.writeFakeSgcache(fr.tmpdir('bin')));
  const host = await fr.fileServer(releases);
  const r = fr.runner({
    event: prEvent({ id: 666, full_name: 'mallory/app', fork: true }),
    env: {
      GITHUB_REF_NAME: '7/merge',
      GITHUB_HEAD_REF: 'main',
      INPUT_REMOTE: 's3://bucket/ci',
      'INPUT_SIGNING-KEY': 'sgsk1_secret',
      'INPUT_RELEASE-URL': host.url,
    },
  });
  try {
    fs.writeFileSync(r.f('fake/has-prefetch'), ''); // an sgcache with `prefetch`
    const m = await fr.step('main', r.env);
    assert.equal(m.code, 0, m.out + m.err);
    assert.ok(calls(r).includes(`prefetch ${r.f('workspace')}`), calls(r).join('\n'));
    assert.match(m.out, /warming: sgcache prefetch .* \(in the daemon, in the background\)/);
    const env = read(r, 'env');
    assert.equal(env.SGCACHE_READ_ONLY, '1');
    assert.equal(env.SGCACHE_NAMESPACE, '7/merge', 'not the fork branch name `main`');
    assert.equal(env.SGCACHE_READ_NAMESPACES, 'main');
    assert.equal(env.SGCACHE_SIGNING_KEY, undefined);
    assert.ok(!fs.readFileSync(r.f('env'), 'utf8').includes('sgsk1_secret'));
    assert.equal(read(r, 'output')['read-only'], 'true');
    await fr.step('post', fr.postEnv(r, lib));
    assert.match(fs.readFileSync(r.f('summary'), 'utf8'), /\*\*read-only\*\* \(code from a fork/);
  } finally {
    stopLeftovers(r);
    host.close();
  }
});

test('install: a bad checksum is rejected and nothing is installed or exported', async () => {
  const releases = fr.tmpdir('releases');
  fr.makeRelease(releases, 'v9.9.9', fr.writeFakeSgcache(fr.tmpdir('bin')), { corrupt: true });
  const host = await fr.fileServer(releases);
  const r = fr.runner({ event: pushEvent(), env: { INPUT_REMOTE: 's3://b', 'INPUT_RELEASE-URL': host.url } });
  try {
    const m = await fr.step('main', r.env);
    assert.equal(m.code, 1, m.out);
    const errLine = m.out.split('\n').find((l) => l.startsWith('::error::'));
    assert.match(errLine, /^::error::sgcache: sgcache-x86_64-unknown-linux-musl\.tar\.gz from http:\/\/127\.0\.0\.1:\d+\/v9\.9\.9\/sgcache-x86_64-unknown-linux-musl\.tar\.gz: SHA-256 [0-9a-f]{64} is not the published [0-9a-f]{64} \(SHA256SUMS\); refusing to install it$/);
    assert.ok(!fs.existsSync(path.join(r.f('toolcache'), 'sgcache', 'v9.9.9', fr.TARGET, 'bin')), 'nothing installed');
    assert.equal(fs.readFileSync(r.f('env'), 'utf8'), '', 'nothing exported');
    assert.deepEqual(calls(r), [], 'the binary never ran');
    // The end of a job whose setup failed says so and does nothing else.
    const p = await fr.step('post', fr.postEnv(r, lib));
    assert.equal(p.code, 0);
    assert.match(p.out, /setup step did not finish/);
  } finally {
    host.close();
  }
});

test('install: the file:// release host works the same (a mirror on a shared disk)', async () => {
  const releases = fr.tmpdir('releases');
  fr.makeRelease(releases, 'v9.9.9', fr.writeFakeSgcache(fr.tmpdir('bin')));
  const r = fr.runner({ env: { 'INPUT_RELEASE-URL': `file://${releases}` } });
  const got = await lib.installRelease(r.env, 'v9.9.9', fr.TARGET);
  assert.equal(got.how, 'release v9.9.9');
  assert.equal(execFileSync(got.bin, ['--version'], { env: { ...r.env } }).toString().trim(), 'sgcache 9.9.9');
  // No such release: null, so the caller builds from source.
  assert.equal(await lib.installRelease(r.env, 'v0.0.0', fr.TARGET), null);
});

test('install: without a release, cargo install of the action source, cached between runs', async () => {
  const releases = fr.tmpdir('releases'); // empty: v0.0.1 has no assets (404)
  const host = await fr.fileServer(releases);
  const token = 'runtime-token';
  const cache = await fr.cacheServer(token);
  // Fake cargo and rustc: cargo "builds" the fake sgcache into --root and records its arguments.
  const tools = fr.tmpdir('tools');
  const fake = fr.writeFakeSgcache(fr.tmpdir('src-bin'));
  fs.writeFileSync(
    path.join(tools, 'cargo'),
    `#!/usr/bin/env bash\necho "$*" >> "${tools}/cargo.calls"\nroot="\${@: -1}"\nmkdir -p "$root/bin"\ncp "${fake}" "$root/bin/sgcache"\n`,
    { mode: 0o755 },
  );
  fs.writeFileSync(path.join(tools, 'rustc'), '#!/bin/sh\necho "rustc 1.95.0 (fake)"\n', { mode: 0o755 });
  const job = () =>
    fr.runner({
      event: pushEvent(),
      env: {
        PATH: `${tools}:${process.env.PATH}`,
        GITHUB_ACTION_REF: 'v0.0.1',
        'INPUT_RELEASE-URL': host.url,
        ACTIONS_RESULTS_URL: cache.url,
        ACTIONS_RUNTIME_TOKEN: token,
      },
    });
  try {
    const r1 = job();
    const m1 = await fr.step('main', r1.env);
    assert.equal(m1.code, 0, m1.out + m1.err);
    assert.equal(host.hits['/v0.0.1/SHA256SUMS'], 1, 'the release was looked for first');
    const cargoCalls = fs.readFileSync(path.join(tools, 'cargo.calls'), 'utf8').trim().split('\n');
    assert.equal(cargoCalls.length, 1);
    assert.match(cargoCalls[0], new RegExp(`^install --locked --path ${path.join(fr.ACTION, '..', 'crates', 'sgcache')} --root `));
    assert.equal(read(r1, 'output').installed, 'cargo install --locked (built from source)');
    assert.equal(cache.entries.size, 1, 'the built binary was saved to the Actions cache');
    assert.deepEqual(cache.calls, ['GetCacheEntryDownloadURL', 'CreateCacheEntry', 'FinalizeCacheEntryUpload']);
    // No remote: no daemon, GOCACHEPROG only.
    assert.deepEqual(Object.keys(read(r1, 'env')), ['GOCACHEPROG']);

    // The next run: a fresh runner (empty tool cache) restores it; cargo does not run.
    const r2 = job();
    const m2 = await fr.step('main', r2.env);
    assert.equal(m2.code, 0, m2.out + m2.err);
    assert.equal(fs.readFileSync(path.join(tools, 'cargo.calls'), 'utf8').trim().split('\n').length, 1);
    assert.equal(read(r2, 'output').installed, 'Actions cache (built from source earlier)');
    assert.equal(read(r2, 'output').version, 'sgcache 9.9.9');
  } finally {
    host.close();
    cache.close();
  }
});

// The whole job with the real sgcache: the release path (a local HTTP server as the release
// host), a real daemon, a real go build through it, and the summary from its real counters.
test('job with the real sgcache and go: ready, build, summary', async (t) => {
  const real = process.env.SGCACHE_BIN;
  if (!real || !fs.existsSync(real)) {
    t.skip('SGCACHE_BIN is not set to a built sgcache (scripts/test.sh sets it)');
    return;
  }
  try {
    execFileSync('go', ['version']);
  } catch {
    t.skip('the go command is not on PATH');
    return;
  }
  const releases = fr.tmpdir('releases');
  fr.makeRelease(releases, 'v9.9.9', real);
  const host = await fr.fileServer(releases);
  const r = fr.runner({
    event: pushEvent('main'),
    env: {
      INPUT_REMOTE: `file://${fr.tmpdir('remote')}`,
      'INPUT_RELEASE-URL': host.url,
      XDG_RUNTIME_DIR: fr.tmpdir('xdg'),
      GOCACHE: fr.tmpdir('gocache'),
      GOFLAGS: '-mod=mod',
      GOTOOLCHAIN: 'local',
      GOTELEMETRY: 'off',
      GOENV: 'off',
    },
  });
  const ws = r.f('workspace');
  fs.rmSync(path.join(ws, '.git'), { recursive: true });
  fs.writeFileSync(path.join(ws, 'go.mod'), 'module example.com/w\n\ngo 1.21\n');
  fs.mkdirSync(path.join(ws, 'a'));
  fs.writeFileSync(path.join(ws, 'a', 'a.go'), 'package a\n\n// V is a value.\nfunc V() int { return 42 }\n');
  try {
    const t0 = Date.now();
    const m = await fr.step('main', r.env);
    assert.equal(m.code, 0, m.out + m.err);
    const ready = (Date.now() - t0) / 1000;
    const env = { ...r.env, ...read(r, 'env') };
    for (const k of Object.keys(env)) if (k.startsWith('INPUT_')) delete env[k];
    const st = execFileSync(env.GOCACHEPROG, ['daemon', '--status'], { env });
    assert.ok(JSON.parse(st).pid > 0, 'the daemon answers');
    execFileSync('go', ['build', './...'], { cwd: ws, env, stdio: 'pipe' });
    const p = await fr.step('post', fr.postEnv(r, lib));
    assert.equal(p.code, 0, p.out);
    assert.ok(!p.out.includes('::warning::'), p.out);
    const md = fs.readFileSync(r.f('summary'), 'utf8');
    const gets = Number(/\| Cache lookups \(gets\) \| (\d+) \|/.exec(md)[1]);
    const uploads = Number(/\| Uploads \| (\d+) delivered/.exec(md)[1]);
    assert.ok(gets > 0 && uploads > 0, md);
    assert.throws(() => execFileSync(env.GOCACHEPROG, ['daemon', '--status'], { env, stdio: 'pipe' }), 'the daemon was stopped');
    process.stderr.write(`real job: setup ready in ${ready.toFixed(2)} s (release path); ${p.out.trim().split('\n').pop()}\n`);
  } finally {
    host.close();
  }
});
