'use strict';
// The logic of the sgcache GitHub Action (action.yml at the repository root), in plain
// Node.js with no dependencies: the runner's GITHUB_ENV, GITHUB_OUTPUT, GITHUB_STATE,
// GITHUB_PATH and GITHUB_STEP_SUMMARY are plain files, and everything else (downloads,
// SHA-256, gzip) is in node's standard library. Every function takes the environment it
// reads as an argument, so the tests drive it against a fake runner (action/test/).
//
//   main (setup):  inputs → install sgcache (release binary checked against SHA256SUMS, else
//                  a cached `cargo install --locked` of the action's own source) → export
//                  GOCACHEPROG and SGCACHE_* → restore-mtimes → snapshot the counters →
//                  start the daemon → start warming.
//   post (end of job): stop the daemon (it drains its uploads) → counters again → job summary.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const zlib = require('node:zlib');
const { spawn } = require('node:child_process');

// ---------------------------------------------------------------------------------------------
// The runner's files and commands.

/** An input as the runner passes it (`INPUT_<NAME>`, spaces to `_`, upper case). */
function input(env, name, dflt = '') {
  const v = env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`];
  return v === undefined || v.trim() === '' ? dflt : v.trim();
}

/** A boolean input: true/false/1/0/yes/no/on/off; anything else is an error. */
function boolInput(env, name, dflt) {
  const v = input(env, name, '').toLowerCase();
  if (v === '') return dflt;
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  throw new Error(`input ${name}: ${JSON.stringify(v)} is not a boolean; write true or false`);
}

/** Appends `name=value` to a runner file in its multi-line-safe form. */
function appendKeyValue(file, name, value) {
  if (!file) return;
  const delim = `ghadelimiter_${crypto.randomUUID()}`;
  const v = String(value);
  if (name.includes(delim) || v.includes(delim)) throw new Error(`value of ${name} holds the delimiter`);
  fs.appendFileSync(file, `${name}<<${delim}${os.EOL}${v}${os.EOL}${delim}${os.EOL}`);
}

/** Parses a runner file written by appendKeyValue (or as `NAME=value` lines). */
function parseKeyValueFile(text) {
  const out = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    const m = /^([^=<]+)<<(.+)$/.exec(l);
    if (m) {
      const body = [];
      for (i++; i < lines.length && lines[i] !== m[2]; i++) body.push(lines[i]);
      out[m[1]] = body.join('\n');
    } else if (l.includes('=')) {
      out[l.slice(0, l.indexOf('='))] = l.slice(l.indexOf('=') + 1);
    }
  }
  return out;
}

function escapeData(s) {
  return String(s).replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

/** Workflow commands on stdout (the runner reads them from the log). */
const log = {
  info: (m) => process.stdout.write(`${m}\n`),
  notice: (m) => process.stdout.write(`::notice::${escapeData(m)}\n`),
  warning: (m) => process.stdout.write(`::warning::${escapeData(m)}\n`),
  error: (m) => process.stdout.write(`::error::${escapeData(m)}\n`),
  mask: (m) => process.stdout.write(`::add-mask::${escapeData(m)}\n`),
};

// ---------------------------------------------------------------------------------------------
// What the job is: namespaces, trust, platform.

/** The event payload (GITHUB_EVENT_PATH), or {}. */
function readEvent(env) {
  try {
    return env.GITHUB_EVENT_PATH ? JSON.parse(fs.readFileSync(env.GITHUB_EVENT_PATH, 'utf8')) : {};
  } catch {
    return {};
  }
}

/**
 * Whether the job builds code from another repository than this one: a pull request from a
 * fork (any pull_request* event), or a workflow_run triggered by one. Such jobs never write
 * the remote. A fork is told by the head repository, not by `head.repo.fork` (which is also
 * true for a pull request inside a repository that is itself a fork).
 */
function isForeign(event, env) {
  const pr = event.pull_request;
  if (pr) {
    const head = pr.head && pr.head.repo;
    const base = (pr.base && pr.base.repo) || event.repository;
    if (!head) return true; // the fork was deleted
    if (head.id !== undefined && base && base.id !== undefined) return head.id !== base.id;
    return head.full_name !== ((base && base.full_name) || env.GITHUB_REPOSITORY);
  }
  const run = event.workflow_run;
  if (run && run.head_repository && event.repository) {
    return run.head_repository.full_name !== event.repository.full_name;
  }
  return false;
}

/** The sgcache settings for this job, from the inputs and the event. */
function settings(env, event) {
  const remote = input(env, 'remote');
  const defaultBranch = (event.repository && event.repository.default_branch) || 'main';
  // The branch for a push, the tag for a tag, `<n>/merge` for a pull request (its own scope:
  // a fork's branch named `main` must not become the scope `main`).
  const namespace = input(env, 'namespace', env.GITHUB_REF_NAME || 'default');
  let readNamespaces = input(env, 'read-namespaces', namespace === defaultBranch ? '' : defaultBranch);
  const foreign = isForeign(event, env);
  const ro = input(env, 'read-only', 'auto').toLowerCase();
  let readOnly;
  if (ro === 'auto') readOnly = foreign;
  else readOnly = boolInput(env, 'read-only', false);
  readNamespaces = readNamespaces
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s && s !== namespace)
    .join(',');
  return {
    remote,
    namespace,
    readNamespaces,
    trustedKeys: input(env, 'trusted-keys'),
    signingKey: foreign ? '' : input(env, 'signing-key'),
    readOnly,
    foreign,
  };
}

/** The Rust target of the release asset for this runner, or null (none is published). */
function releaseTarget(env) {
  const osName = env.RUNNER_OS || { linux: 'Linux', darwin: 'macOS', win32: 'Windows' }[process.platform];
  const arch = env.RUNNER_ARCH || { x64: 'X64', arm64: 'ARM64' }[process.arch];
  const t = {
    'Linux/X64': 'x86_64-unknown-linux-musl',
    'Linux/ARM64': 'aarch64-unknown-linux-musl',
    'macOS/ARM64': 'aarch64-apple-darwin',
    'macOS/X64': 'x86_64-apple-darwin',
  }[`${osName}/${arch}`];
  return t || null;
}

function exeName() {
  return 'sgcache';
}

/** The release asset's file name for `target` (what release.yml publishes). */
function assetName(target) {
  return `sgcache-${target}.tar.gz`;
}

/**
 * The release tag to install: the `version` input, else the action's own ref when it is a
 * release tag (`uses: …@v0.2.0`); null means build from the action's source (a branch, a
 * commit, a local `uses: ./`, or `version: source`).
 */
function releaseTag(env) {
  const v = input(env, 'version');
  if (v === 'source') return null;
  if (v) return v.startsWith('v') ? v : `v${v}`;
  const ref = env.GITHUB_ACTION_REF || '';
  return /^v\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$/.test(ref) ? ref : null;
}

/** Where release assets are downloaded from: `<base>/<tag>/<asset>`. */
function releaseBase(env) {
  const u = input(env, 'release-url');
  if (u) return u.replace(/\/+$/, '');
  if (!env.GITHUB_ACTION_REPOSITORY) return null;
  const server = (env.GITHUB_SERVER_URL || 'https://github.com').replace(/\/+$/, '');
  return `${server}/${env.GITHUB_ACTION_REPOSITORY}/releases/download`;
}

/** Where installs are kept: the runner's tool cache (kept between jobs on self-hosted runners). */
function toolRoot(env) {
  return path.join(env.RUNNER_TOOL_CACHE || path.join(os.homedir(), '.cache'), 'sgcache');
}

// ---------------------------------------------------------------------------------------------
// Downloads and checksums.

class NotFound extends Error {}

/** GET `url` (https, http or file) → Buffer; 404 → NotFound; retried on network errors and 5xx. */
async function download(url) {
  if (url.startsWith('file://')) {
    const p = new URL(url);
    try {
      return fs.readFileSync(p);
    } catch (e) {
      if (e.code === 'ENOENT') throw new NotFound(`${url}: not found`);
      throw e;
    }
  }
  let last;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (attempt) await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
    try {
      const r = await fetch(url, { redirect: 'follow' });
      if (r.status === 404) throw new NotFound(`${url}: 404 Not Found`);
      if (!r.ok) {
        last = new Error(`${url}: HTTP ${r.status}`);
        if (r.status >= 500 || r.status === 429) continue;
        throw last;
      }
      return Buffer.from(await r.arrayBuffer());
    } catch (e) {
      if (e instanceof NotFound || (e.message && e.message.startsWith(url))) throw e;
      last = new Error(`${url}: ${e.cause ? e.cause.message || e.cause.code : e.message}`);
    }
  }
  throw last;
}

/** A remote URL fit for logs and summaries: no user info, no query (keys such as `account_key`). */
function displayRemote(url) {
  return url.replace(/\/\/[^/@]*@/, '//…@').replace(/\?.*$/, '?…');
}

/** The SHA-256 of each file in a `sha256sum` listing (`<hex>  <name>` or `<hex> *<name>`). */
function parseSums(text) {
  const out = new Map();
  for (const l of text.split(/\r?\n/)) {
    const m = /^([0-9a-fA-F]{64}) [ *](.+)$/.exec(l.trim());
    if (m) out.set(m[2].trim(), m[1].toLowerCase());
  }
  return out;
}

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    let err = '';
    if (p.stdout) p.stdout.on('data', (d) => (out += d));
    if (p.stderr) p.stderr.on('data', (d) => (err += d));
    p.on('error', (e) => reject(new Error(`running ${cmd}: ${e.message}`)));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

async function runOk(cmd, args, opts = {}) {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const line = (r.err.trim().split('\n').pop() || r.out.trim().split('\n').pop() || '').trim();
    throw new Error(`${path.basename(cmd)} ${args.join(' ')} failed (exit ${r.code}): ${line}`);
  }
  return r;
}

/**
 * Installs the release binary `tag` for `target` into the tool cache: downloads SHA256SUMS
 * and the asset, refuses the asset unless its SHA-256 is the published one, unpacks it.
 * Returns the binary's path, or null when the release has no asset for this target (the
 * caller then builds from source). A mismatch is an error: the binary is never run.
 */
async function installRelease(env, tag, target) {
  const base = releaseBase(env);
  if (!base) return null;
  const dir = path.join(toolRoot(env), tag, target);
  const bin = path.join(dir, 'bin', exeName());
  if (fs.existsSync(path.join(dir, '.complete')) && fs.existsSync(bin)) return { bin, how: 'tool cache' };
  const asset = assetName(target);
  let sums;
  try {
    sums = parseSums((await download(`${base}/${tag}/SHA256SUMS`)).toString('utf8'));
  } catch (e) {
    if (e instanceof NotFound) return null;
    throw e;
  }
  const want = sums.get(asset);
  if (!want) return null;
  const url = `${base}/${tag}/${asset}`;
  let body;
  try {
    body = await download(url);
  } catch (e) {
    if (e instanceof NotFound) return null;
    throw e;
  }
  const got = sha256(body);
  if (got !== want) {
    throw new Error(
      `${asset} from ${url}: SHA-256 ${got} is not the published ${want} (SHA256SUMS); refusing to install it`,
    );
  }
  const tmp = fs.mkdtempSync(path.join(env.RUNNER_TEMP || os.tmpdir(), 'sgcache-'));
  const archive = path.join(tmp, asset);
  fs.writeFileSync(archive, body);
  await runOk('tar', ['-xzf', archive, '-C', tmp]);
  const unpacked = path.join(tmp, `sgcache-${target}`, exeName());
  if (!fs.existsSync(unpacked)) throw new Error(`${asset}: no sgcache-${target}/${exeName()} inside`);
  fs.mkdirSync(path.dirname(bin), { recursive: true });
  fs.copyFileSync(unpacked, bin);
  fs.chmodSync(bin, 0o755);
  fs.writeFileSync(path.join(dir, '.complete'), `${got}  ${asset}\n`);
  fs.rmSync(tmp, { recursive: true, force: true });
  return { bin, how: `release ${tag}` };
}

// ---------------------------------------------------------------------------------------------
// Building from the action's own source, cached between runs.

/** The directory holding the action's source (its repository checkout at the action's ref). */
function actionDir() {
  return path.resolve(__dirname, '..');
}

/** A key for the source of sgcache at `dir`: Cargo.lock, manifests and every file under crates/. */
function sourceKey(dir, target, rustc) {
  const h = crypto.createHash('sha256');
  h.update(`sgcache-action-src-v1\0${target}\0${rustc}\0`);
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'target' && e.name !== 'tests' && !e.name.startsWith('.')) walk(p);
      } else if (e.isFile()) {
        h.update(`${path.relative(dir, p)}\0`);
        h.update(fs.readFileSync(p));
      }
    }
  };
  for (const f of ['Cargo.toml', 'Cargo.lock']) {
    h.update(`${f}\0`);
    h.update(fs.readFileSync(path.join(dir, f)));
  }
  walk(path.join(dir, 'crates'));
  return h.digest('hex');
}

/**
 * The GitHub Actions cache service (v2, twirp JSON), which JavaScript actions reach with the
 * ACTIONS_RESULTS_URL and ACTIONS_RUNTIME_TOKEN the runner gives them: enough to keep one
 * built binary between runs. Best effort: any failure is a miss (or an unsaved entry).
 */
const actionsCache = {
  available(env) {
    return Boolean(env.ACTIONS_RESULTS_URL && env.ACTIONS_RUNTIME_TOKEN);
  },
  async rpc(env, method, body) {
    const url = new URL(`/twirp/github.actions.results.api.v1.CacheService/${method}`, env.ACTIONS_RESULTS_URL);
    const r = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${env.ACTIONS_RUNTIME_TOKEN}` },
      body: JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`cache service ${method}: HTTP ${r.status} ${text.slice(0, 200)}`);
    return JSON.parse(text);
  },
  /** The cached bytes under `key`, or null. */
  async restore(env, key, version) {
    const r = await this.rpc(env, 'GetCacheEntryDownloadURL', { key, restore_keys: [], version });
    if (!r.ok || !r.signed_download_url) return null;
    const res = await fetch(r.signed_download_url);
    if (!res.ok) throw new Error(`cache download: HTTP ${res.status}`);
    return zlib.gunzipSync(Buffer.from(await res.arrayBuffer()));
  },
  async save(env, key, version, bytes) {
    const gz = zlib.gzipSync(bytes);
    const c = await this.rpc(env, 'CreateCacheEntry', { key, version });
    if (!c.ok || !c.signed_upload_url) return false; // another job is saving it, or it exists
    const put = await fetch(c.signed_upload_url, {
      method: 'PUT',
      headers: { 'x-ms-blob-type': 'BlockBlob', 'Content-Type': 'application/octet-stream' },
      body: gz,
    });
    if (!put.ok) throw new Error(`cache upload: HTTP ${put.status}`);
    const f = await this.rpc(env, 'FinalizeCacheEntryUpload', { key, version, size_bytes: String(gz.length) });
    return Boolean(f.ok);
  },
};

/**
 * Builds sgcache from the action's own source with `cargo install --locked` (the fallback when
 * no release binary fits), keeping the result in the tool cache and in the Actions cache, so
 * the next run of the same source restores it in seconds instead of compiling for minutes.
 */
async function installFromSource(env, target) {
  const src = actionDir();
  if (!fs.existsSync(path.join(src, 'Cargo.toml'))) {
    throw new Error(`no release binary to install and no sgcache source at ${src} to build`);
  }
  const rustc = await run('rustc', ['-V'], { env }).then(
    (r) => r.out.trim(),
    () => '',
  );
  if (!rustc) throw new Error(`no release binary to install, and no Rust toolchain (rustc) to build ${src} with`);
  const key = sourceKey(src, target || `${process.platform}-${process.arch}`, rustc);
  const dir = path.join(toolRoot(env), `src-${key.slice(0, 16)}`);
  const exe = exeName();
  const bin = path.join(dir, 'bin', exe);
  if (fs.existsSync(bin)) return { bin, how: 'tool cache (built from source)' };
  const cacheKey = `sgcache-bin-${key.slice(0, 32)}`;
  const version = key;
  if (actionsCache.available(env)) {
    try {
      const bytes = await actionsCache.restore(env, cacheKey, version);
      if (bytes) {
        fs.mkdirSync(path.dirname(bin), { recursive: true });
        fs.writeFileSync(bin, bytes, { mode: 0o755 });
        return { bin, how: 'Actions cache (built from source earlier)' };
      }
    } catch (e) {
      log.info(`sgcache: Actions cache not used: ${e.message}`);
    }
  }
  log.info(`sgcache: building from ${src} (cargo install --locked); the next run restores it from the cache`);
  const r = await run('cargo', ['install', '--locked', '--path', path.join(src, 'crates', 'sgcache'), '--root', dir], {
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.code !== 0 || !fs.existsSync(bin)) throw new Error(`cargo install --locked of ${src} failed (exit ${r.code})`);
  if (actionsCache.available(env)) {
    try {
      await actionsCache.save(env, cacheKey, version, fs.readFileSync(bin));
    } catch (e) {
      log.info(`sgcache: built binary not saved to the Actions cache: ${e.message}`);
    }
  }
  return { bin, how: 'cargo install --locked (built from source)' };
}

/** A release binary when one fits this runner and ref, else the action's source, built. */
async function install(env) {
  const osName = env.RUNNER_OS || (process.platform === 'win32' ? 'Windows' : '');
  if (osName === 'Windows') {
    // The daemon speaks over a Unix socket and stops on signals: sgcache builds on Unix only.
    throw new Error('sgcache runs on Linux and macOS runners only (not Windows)');
  }
  const target = releaseTarget(env);
  const tag = releaseTag(env);
  if (tag && target) {
    const r = await installRelease(env, tag, target);
    if (r) return r;
    log.info(`sgcache: release ${tag} has no asset for ${target}; building from source`);
  }
  return installFromSource(env, target);
}

// ---------------------------------------------------------------------------------------------
// Counters and the job summary.

/** Reads `sgcache stats --json` → its `counters` object. */
async function counters(bin, env) {
  const r = await runOk(bin, ['stats', '--json'], { env });
  return JSON.parse(r.out).counters || {};
}

/** `after - before`, field by field (counters only grow; a missing field is 0). */
function delta(before, after) {
  const out = {};
  for (const k of Object.keys(after)) {
    if (typeof after[k] === 'number') out[k] = Math.max(0, after[k] - (Number(before[k]) || 0));
  }
  return out;
}

function bytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${u[i]}`;
}

function pct(a, b) {
  return b ? `${((100 * a) / b).toFixed(1)}%` : '—';
}

/**
 * The one-line verdict. `explain` says whether this sgcache has an `explain` command (then the
 * line points at it for the rebuilt actions).
 */
function verdict(d, ctx = {}) {
  const n = (k) => d[k] || 0;
  if (!n('gets')) return 'no go command used the cache in this job (is GOCACHEPROG set in the steps that run go?)';
  let s = `${n('hits')} of ${n('gets')} actions from cache (${pct(n('hits'), n('gets'))}, ${n('hits_remote')} from the remote)`;
  s += n('misses') ? `; ${n('misses')} rebuilt` : '; nothing rebuilt';
  if (n('misses') && ctx.explain) s += ': run `sgcache explain` to see why';
  const undelivered = n('upload_dropped') + n('upload_failed') + n('upload_skipped_down') + n('upload_abandoned');
  const rejected = n('remote_rejected_entries') + n('remote_corrupt_objects') + n('remote_conflicting_entries');
  const warn = [];
  if (undelivered) warn.push(`${undelivered} uploads not delivered`);
  if (rejected) warn.push(`${rejected} remote entries rejected`);
  if (n('breaker_trips')) warn.push('the remote was switched off');
  if (warn.length) s += ` — ⚠ ${warn.join(', ')}`;
  return s;
}

/** The job summary (markdown) for counter delta `d`. */
function renderSummary(d, ctx = {}) {
  const n = (k) => d[k] || 0;
  const local = Math.max(0, n('hits') - n('hits_remote'));
  const rows = [
    ['Cache lookups (gets)', `${n('gets')}`],
    ['Hits', `${n('hits')} (${pct(n('hits'), n('gets'))}): ${local} local, ${n('hits_remote')} from the remote`],
    ['Misses (rebuilt)', `${n('misses')}`],
    ['Downloaded / uploaded', `${bytes(n('remote_bytes_down'))} / ${bytes(n('remote_bytes_up'))}`],
    ['Time go commands waited on the remote', `${(n('remote_wait_ms') / 1000).toFixed(1)} s (${n('remote_waits')} gets)`],
    [
      'Uploads',
      `${n('uploads')} delivered; ${n('upload_dropped')} dropped (queue full), ${n('upload_failed')} failed, ` +
        `${n('upload_skipped_down')} skipped (remote down), ${n('upload_abandoned')} abandoned at the deadline`,
    ],
    [
      'Remote entries rejected',
      `${n('remote_rejected_entries')} (unsigned, bad signature or malformed), ${n('remote_corrupt_objects')} corrupt objects, ` +
        `${n('remote_conflicting_entries')} conflicting`,
    ],
  ];
  if (n('remote_errors') || n('breaker_trips')) {
    rows.push(['Remote errors', `${n('remote_errors')} (breaker tripped ${n('breaker_trips')} times)`]);
  }
  const mode = ctx.remote
    ? `remote \`${displayRemote(ctx.remote)}\`, namespace \`${ctx.namespace}\`` +
      (ctx.readNamespaces ? `, reading \`${ctx.readNamespaces}\`` : '') +
      (ctx.readOnly ? ', **read-only**' + (ctx.foreign ? ' (code from a fork: nothing is uploaded)' : '') : '')
    : 'no remote (local cache only)';
  return [
    '### sgcache',
    '',
    `**${verdict(d, ctx)}**`,
    '',
    '| | |',
    '|---|---|',
    ...rows.map(([k, v]) => `| ${k} | ${v} |`),
    '',
    `<sub>${mode}; installed from ${ctx.how || '?'}; counters of \`sgcache stats --json\` over this job.</sub>`,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// The two steps.

/** Whether `sgcache <cmd>` exists in this binary (for commands added in later versions). */
async function hasCommand(bin, env, cmd) {
  const r = await run(bin, [cmd, '--help'], { env });
  return r.code === 0;
}

/**
 * Starts warming the local tier from the remote in the background. With a `prefetch` command
 * (`sgcache prefetch [DIR]…`: the daemon warms for the go commands that will run in DIR and
 * the command returns at once) it asks for the workspace; an sgcache without one relies on the
 * daemon, which prefetches a build context's last manifest when its first go command connects.
 */
async function startWarming(bin, env, dirs) {
  if (!(await hasCommand(bin, env, 'prefetch'))) {
    return 'the daemon prefetches at the first go command of each build context';
  }
  const r = await run(bin, ['prefetch', ...dirs], { env });
  if (r.code !== 0) {
    log.warning(`sgcache prefetch: ${r.err.trim().split('\n').pop()}`);
    return 'sgcache prefetch failed; the daemon prefetches at the first go command';
  }
  return `sgcache prefetch ${dirs.join(' ')} (in the daemon, in the background)`;
}

/** Starts `sgcache daemon` detached and waits until it answers `--status`. Returns its pid. */
async function startDaemon(bin, env, logFile, waitMs = 15000) {
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(bin, ['daemon'], { env, detached: true, stdio: ['ignore', fd, fd] });
  let exited = null;
  child.on('exit', (code) => (exited = code));
  child.unref();
  const t0 = Date.now();
  for (;;) {
    const st = await run(bin, ['daemon', '--status'], { env });
    if (st.code === 0) return child.pid;
    if (exited !== null && exited !== 0) {
      const why = fs.readFileSync(logFile, 'utf8').trim().split('\n').pop();
      throw new Error(`sgcache daemon exited (${exited}): ${why}`);
    }
    if (Date.now() - t0 > waitMs) throw new Error(`sgcache daemon did not answer within ${waitMs} ms (log: ${logFile})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main(env) {
  const t0 = Date.now();
  const event = readEvent(env);
  const s = settings(env, event);
  if (s.signingKey) log.mask(s.signingKey);
  // Secrets some remotes carry in their URL (azblob's account_key, sas_token; user info).
  for (const m of s.remote.matchAll(/[?&][^=&]*(?:key|token|secret|password|sig)[^=&]*=([^&]+)/gi)) log.mask(m[1]);
  const userinfo = /\/\/([^/@]+)@/.exec(s.remote);
  if (userinfo) log.mask(userinfo[1]);
  const inst = await install(env);
  const version = (await runOk(inst.bin, ['--version'], { env })).out.trim();
  log.info(`sgcache: ${version} from ${inst.how}`);

  // What every later step gets.
  const exports = { GOCACHEPROG: inst.bin };
  if (s.remote) {
    Object.assign(exports, {
      SGCACHE_REMOTE: s.remote,
      SGCACHE_NAMESPACE: s.namespace,
      SGCACHE_READ_NAMESPACES: s.readNamespaces,
      SGCACHE_READ_ONLY: s.readOnly ? '1' : '0',
      // One daemon for the job's go commands (shared prefetch, uploads in the background);
      // `auto` restarts it should it have exited.
      SGCACHE_DAEMON: 'auto',
    });
    if (!env.SGCACHE_DAEMON_IDLE) exports.SGCACHE_DAEMON_IDLE = '2h';
    if (s.trustedKeys) exports.SGCACHE_TRUSTED_KEYS = s.trustedKeys;
    if (s.signingKey) exports.SGCACHE_SIGNING_KEY = s.signingKey;
    if (s.remote.startsWith('gha:')) {
      // `run:` steps do not get the cache service's variables; JavaScript actions do.
      for (const k of ['ACTIONS_CACHE_URL', 'ACTIONS_RESULTS_URL', 'ACTIONS_RUNTIME_TOKEN', 'ACTIONS_CACHE_SERVICE_V2']) {
        if (env[k]) exports[k] = env[k];
      }
      if (env.ACTIONS_RUNTIME_TOKEN) log.mask(env.ACTIONS_RUNTIME_TOKEN);
    }
  }
  for (const [k, v] of Object.entries(exports)) appendKeyValue(env.GITHUB_ENV, k, v);
  if (env.GITHUB_PATH) fs.appendFileSync(env.GITHUB_PATH, `${path.dirname(inst.bin)}${os.EOL}`);
  const childEnv = { ...env, ...exports };
  for (const k of Object.keys(childEnv)) if (k.startsWith('INPUT_')) delete childEnv[k];

  // Stable test caching on this fresh checkout.
  const ws = env.GITHUB_WORKSPACE;
  if (boolInput(env, 'restore-mtimes', true) && ws && fs.existsSync(path.join(ws, '.git'))) {
    const r = await run(inst.bin, ['ci', 'restore-mtimes', ws], { env: childEnv });
    if (r.code === 0) log.info(`sgcache: ${r.out.trim()}`);
    else log.warning(`sgcache ci restore-mtimes: ${r.err.trim()}`);
  }

  const before = await counters(inst.bin, childEnv);
  const logFile = path.join(env.RUNNER_TEMP || os.tmpdir(), 'sgcache-daemon.log');
  let pid = 0;
  let warming = 'no remote: nothing to warm';
  if (s.remote) {
    pid = await startDaemon(inst.bin, childEnv, logFile);
    warming = await startWarming(inst.bin, childEnv, ws ? [ws] : []);
  }
  const state = {
    bin: inst.bin,
    how: inst.how,
    before,
    pid,
    exports,
    logFile,
    remote: s.remote,
    namespace: s.namespace,
    readNamespaces: s.readNamespaces,
    readOnly: s.readOnly,
    foreign: s.foreign,
  };
  appendKeyValue(env.GITHUB_STATE, 'sgcache', JSON.stringify(state));
  for (const [k, v] of Object.entries({
    path: inst.bin,
    version,
    installed: inst.how,
    namespace: s.namespace,
    'read-namespaces': s.readNamespaces,
    'read-only': String(s.readOnly),
  })) {
    appendKeyValue(env.GITHUB_OUTPUT, k, v);
  }
  const mode = s.remote
    ? `remote ${displayRemote(s.remote)}, namespace ${s.namespace}${s.readNamespaces ? ` (+ ${s.readNamespaces})` : ''}` +
      `${s.readOnly ? ', read-only' + (s.foreign ? ' (code from a fork)' : '') : ''}; daemon pid ${pid}; warming: ${warming}`
    : 'no remote: local cache only';
  log.info(`sgcache ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${mode}`);
  return state;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function post(env) {
  const raw = env.STATE_sgcache;
  if (!raw) {
    log.info('sgcache: the setup step did not finish; nothing to stop or report');
    return null;
  }
  const st = JSON.parse(raw);
  const childEnv = { ...env, ...st.exports };
  for (const k of Object.keys(childEnv)) if (k.startsWith('INPUT_') || k.startsWith('STATE_')) delete childEnv[k];
  if (st.remote) {
    // Drains the upload queue, then exits; `--stop` returns once it has.
    const r = await run(st.bin, ['daemon', '--stop'], { env: childEnv });
    if (r.code !== 0 && !/no daemon answers/.test(r.err)) log.warning(`sgcache daemon --stop: ${r.err.trim()}`);
    // The daemon setup started, if another configuration (later credentials) made it a
    // different one: SIGTERM drains it the same way.
    if (st.pid && alive(st.pid)) {
      try {
        process.kill(st.pid, 'SIGTERM');
      } catch {}
      const until = Date.now() + 70000;
      while (alive(st.pid) && Date.now() < until) await new Promise((res) => setTimeout(res, 100));
    }
  }
  const after = await counters(st.bin, childEnv);
  const d = delta(st.before || {}, after);
  const ctx = { ...st, explain: await hasCommand(st.bin, childEnv, 'explain') };
  const line = verdict(d, ctx);
  log.info(`sgcache: ${line}`);
  if (boolInput(env, 'summary', true) && env.GITHUB_STEP_SUMMARY) {
    fs.appendFileSync(env.GITHUB_STEP_SUMMARY, renderSummary(d, ctx));
  }
  return { delta: d, verdict: line };
}

module.exports = {
  input,
  boolInput,
  appendKeyValue,
  parseKeyValueFile,
  readEvent,
  isForeign,
  settings,
  releaseTarget,
  releaseTag,
  releaseBase,
  assetName,
  parseSums,
  displayRemote,
  sha256,
  installRelease,
  installFromSource,
  install,
  sourceKey,
  actionsCache,
  delta,
  verdict,
  renderSummary,
  startWarming,
  main,
  post,
  NotFound,
};
