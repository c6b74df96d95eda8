#!/usr/bin/env node
// Fails when API.md differs from what jsii-docgen generates from the current build.
const { execFileSync } = require('child_process');
const { mkdtempSync, readFileSync, existsSync } = require('fs');
const { tmpdir } = require('os');
const { join } = require('path');

const fresh = join(mkdtempSync(join(tmpdir(), 'smartstack-api-')), 'API.md');
execFileSync(join(__dirname, '..', 'node_modules', '.bin', 'jsii-docgen'), ['-o', fresh], { stdio: 'inherit' });
const current = existsSync('API.md') ? readFileSync('API.md', 'utf8') : '';
if (readFileSync(fresh, 'utf8') !== current) {
  console.error('API.md is stale: it does not match the public API. Run `npm run docgen` and commit API.md.');
  process.exit(1);
}
console.log('API.md matches the public API');
