'use strict';
// The action's setup step (action.yml `runs.main`): see lib.js.
const { main } = require('./lib');

main(process.env).catch((e) => {
  const msg = String(e && e.message ? e.message : e).replace(/%/g, '%25').replace(/\r?\n/g, '%0A');
  process.stdout.write(`::error::sgcache: ${msg}\n`);
  process.exitCode = 1;
});
