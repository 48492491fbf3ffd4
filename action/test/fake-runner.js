'use strict';
// A fake GitHub Actions runner for the action's tests: the runner's files in a temporary
// directory, an event payload, a release host (a local HTTP server), the Actions cache service
// (a local twirp server), a fake `sgcache` (a shell script that records its calls) and fake
// `cargo`/`rustc`. Nothing here talks to the network beyond loopback.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const crypto = require('node:crypto');
const { spawn, execFileSync } = require('node:child_process');

const ACTION = path.resolve(__dirname, '..');
const TARGET = 'x86_64-unknown-linux-musl';

/** A `sgcache` stand-in: answers what the action asks and appends each call to $FAKE/calls. */
const FAKE_SGCACHE = `#!/usr/bin/env bash
set -u
f=\${FAKE:?}
echo "$*" >> "$f/calls"
case "$*" in
  --version) echo "sgcache 9.9.9" ;;
  "stats --json") printf '{"dir":"x","counters":%s}\\n' "$(cat "$f/counters" 2>/dev/null || echo '{}')" ;;
  "ci restore-mtimes "*) echo "restore-mtimes: set 3 files and 2 directories in \\\`$3\\\` from their content" ;;
  "daemon --status") [ -e "$f/daemon.pid" ] && [ ! -e "$f/stopped" ] && echo '{}' && exit 0
                     echo "sgcache: error: no daemon answers on \\\`x\\\`: refused" >&2; exit 1 ;;
  "daemon --stop") [ -e "$f/daemon.pid" ] || { echo "sgcache: error: no daemon answers on \\\`x\\\`" >&2; exit 1; }
                   touch "$f/stopped"; echo stopping; echo stopped ;;
  daemon) echo $$ > "$f/daemon.pid"; env | grep '^SGCACHE_' | sort > "$f/daemon.env"
          trap 'touch "$f/stopped"; exit 0' TERM
          n=0; while [ -d "$f" ] && [ ! -e "$f/stopped" ] && [ $n -lt 2400 ]; do sleep 0.05; n=$((n+1)); done ;;
  "prefetch --help") [ -e "$f/has-prefetch" ] || { echo "error: unrecognized subcommand 'prefetch'" >&2; exit 2; } ;;
  "prefetch "*) [ -e "$f/has-prefetch" ] || exit 2; echo "prefetching" ;;
  *) echo "error: unrecognized subcommand '$1'" >&2; exit 2 ;;
esac
`;

function tmpdir(name) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sgcache-action-${name}-`));
}

/** Writes the fake sgcache into `dir` (as `sgcache`) and returns its path. */
function writeFakeSgcache(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const p = path.join(dir, 'sgcache');
  fs.writeFileSync(p, FAKE_SGCACHE, { mode: 0o755 });
  return p;
}

/** A release directory `<root>/<tag>/` holding the asset for TARGET (with `bin`) and SHA256SUMS. */
function makeRelease(root, tag, bin, { corrupt = false } = {}) {
  const stage = tmpdir('stage');
  const inner = path.join(stage, `sgcache-${TARGET}`);
  fs.mkdirSync(inner);
  fs.copyFileSync(bin, path.join(inner, 'sgcache'));
  fs.chmodSync(path.join(inner, 'sgcache'), 0o755);
  const dir = path.join(root, tag);
  fs.mkdirSync(dir, { recursive: true });
  const asset = `sgcache-${TARGET}.tar.gz`;
  execFileSync('tar', ['-czf', path.join(dir, asset), '-C', stage, `sgcache-${TARGET}`]);
  let sum = crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, asset))).digest('hex');
  if (corrupt) sum = sum.replace(/^./, (c) => (c === '0' ? '1' : '0'));
  fs.writeFileSync(path.join(dir, 'SHA256SUMS'), `${sum}  ${asset}\n${'0'.repeat(64)}  sgcache-other.tar.gz\n`);
  return dir;
}

/** Serves `root` over HTTP on loopback; counts requests by path. */
async function fileServer(root) {
  const hits = {};
  const server = http.createServer((req, res) => {
    const p = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    hits[p] = (hits[p] || 0) + 1;
    const f = path.join(root, p);
    if (!f.startsWith(root) || !fs.existsSync(f) || !fs.statSync(f).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
    fs.createReadStream(f).pipe(res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, hits, close: () => server.close() };
}

/**
 * The Actions cache service as the action uses it (twirp JSON: GetCacheEntryDownloadURL,
 * CreateCacheEntry, FinalizeCacheEntryUpload) with signed URLs pointing back at itself.
 */
async function cacheServer(token) {
  const entries = new Map(); // key\0version → Buffer
  const pending = new Map();
  const calls = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const u = new URL(req.url, 'http://x');
      const body = Buffer.concat(chunks);
      const json = (o, status = 200) => res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(o));
      const m = /^\/twirp\/github\.actions\.results\.api\.v1\.CacheService\/(\w+)$/.exec(u.pathname);
      if (m) {
        if (req.headers.authorization !== `Bearer ${token}`) return json({ msg: 'unauthenticated' }, 401);
        const b = JSON.parse(body.toString());
        calls.push(m[1]);
        const id = `${b.key}\0${b.version}`;
        if (m[1] === 'GetCacheEntryDownloadURL') {
          if (!entries.has(id)) return json({ ok: false });
          return json({ ok: true, signed_download_url: `${base}/blob/get?id=${encodeURIComponent(id)}`, matched_key: b.key });
        }
        if (m[1] === 'CreateCacheEntry') {
          if (entries.has(id)) return json({ ok: false });
          pending.set(id, null);
          return json({ ok: true, signed_upload_url: `${base}/blob/put?id=${encodeURIComponent(id)}` });
        }
        if (m[1] === 'FinalizeCacheEntryUpload') {
          const data = pending.get(id);
          if (!data || String(data.length) !== b.size_bytes) return json({ ok: false });
          entries.set(id, data);
          return json({ ok: true, entry_id: String(entries.size) });
        }
        return json({ msg: 'no such method' }, 404);
      }
      if (u.pathname === '/blob/put' && req.method === 'PUT') {
        if (req.headers['x-ms-blob-type'] !== 'BlockBlob') return res.writeHead(400).end();
        pending.set(u.searchParams.get('id'), body);
        return res.writeHead(201).end();
      }
      if (u.pathname === '/blob/get') {
        const d = entries.get(u.searchParams.get('id'));
        return d ? res.writeHead(200).end(d) : res.writeHead(404).end();
      }
      res.writeHead(404).end();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  return { url: `${base}/`, entries, calls, close: () => server.close() };
}

/** The runner's files and environment for one job. */
function runner({ event = {}, env = {} } = {}) {
  const root = tmpdir('runner');
  const f = (n) => path.join(root, n);
  for (const n of ['env', 'output', 'state', 'path', 'summary']) fs.writeFileSync(f(n), '');
  fs.writeFileSync(f('event.json'), JSON.stringify(event));
  fs.mkdirSync(f('workspace/.git'), { recursive: true });
  fs.mkdirSync(f('temp'));
  fs.mkdirSync(f('fake'));
  const base = {
    PATH: process.env.PATH,
    HOME: f('home'),
    FAKE: f('fake'),
    RUNNER_OS: 'Linux',
    RUNNER_ARCH: 'X64',
    RUNNER_TEMP: f('temp'),
    RUNNER_TOOL_CACHE: f('toolcache'),
    GITHUB_ENV: f('env'),
    GITHUB_OUTPUT: f('output'),
    GITHUB_STATE: f('state'),
    GITHUB_PATH: f('path'),
    GITHUB_STEP_SUMMARY: f('summary'),
    GITHUB_EVENT_PATH: f('event.json'),
    GITHUB_WORKSPACE: f('workspace'),
    GITHUB_REPOSITORY: 'acme/app',
    GITHUB_REF_NAME: 'main',
    GITHUB_SERVER_URL: 'https://github.invalid',
    GITHUB_ACTION_REPOSITORY: 'acme/sgcache',
    GITHUB_ACTION_REF: 'v9.9.9',
  };
  return { root, f, env: { ...base, ...env } };
}

/** Runs action/<step>.js as the runner does (a node process with that environment). */
function step(name, env) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [path.join(ACTION, `${name}.js`)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

/** The environment the runner gives the post step: the job's env, GITHUB_ENV's exports, STATE_*. */
function postEnv(r, lib) {
  const exported = lib.parseKeyValueFile(fs.readFileSync(r.f('env'), 'utf8'));
  const state = lib.parseKeyValueFile(fs.readFileSync(r.f('state'), 'utf8'));
  const env = { ...r.env, ...exported };
  for (const [k, v] of Object.entries(state)) env[`STATE_${k}`] = v;
  return env;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

module.exports = {
  ACTION,
  TARGET,
  tmpdir,
  writeFakeSgcache,
  makeRelease,
  fileServer,
  cacheServer,
  runner,
  step,
  postEnv,
  alive,
};
