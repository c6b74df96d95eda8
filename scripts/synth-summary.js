#!/usr/bin/env node
// Prints what a synth wrote: each stack, its hosts, the size of each host's cloud-init document,
// and the variables to set at apply.
const { readdirSync } = require('fs');
const { join } = require('path');
const { readSynthesizedDocuments, readSynthesizedStack, synthesizedDocumentVariables } = require('../lib/cloud-init/synthesized-documents');

const outdir = process.argv[2] || 'cdktf.out';
for (const stack of readdirSync(join(outdir, 'stacks'))) {
  const json = readSynthesizedStack(outdir, stack);
  // Secrets are evaluated only at apply; stand-ins of the same length give the documents' sizes.
  const names = synthesizedDocumentVariables(json);
  const docs = readSynthesizedDocuments(json, Object.fromEntries(names.map((n) => [n, 'x'.repeat(64)])));
  console.log(`${join(outdir, 'stacks', stack, 'cdk.tf.json')}: ${docs.length} hosts`);
  for (const d of docs) console.log(`  ${d.hostname}: cloud-init document ${Buffer.byteLength(d.userData)} bytes`);
  const variables = Object.keys(json.variable || {}).sort();
  if (variables.length > 0) console.log(`  variables to set at apply: ${variables.join(', ')}`);
}
