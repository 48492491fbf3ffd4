'use strict';
// The action's end-of-job step (action.yml `runs.post`, run even when the job failed): stops
// the daemon after it has delivered its uploads and writes the job summary. A failure here is
// a warning: the build's result does not depend on the cache's report.
const { post } = require('./lib');

post(process.env).catch((e) => {
  const msg = String(e && e.message ? e.message : e).replace(/%/g, '%25').replace(/\r?\n/g, '%0A');
  process.stdout.write(`::warning::sgcache: ${msg}\n`);
});
