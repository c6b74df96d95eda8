#!/usr/bin/env node
// Prints what a synth wrote: each stack, its hosts and the size of each host's cloud-init document.
const { readdirSync } = require('fs');
const { join } = require('path');
const { readSynthesizedDocuments, readSynthesizedStack } = require('../lib/cloud-init/synthesized-documents');

const outdir = process.argv[2] || 'cdktf.out';
for (const stack of readdirSync(join(outdir, 'stacks'))) {
  const docs = readSynthesizedDocuments(readSynthesizedStack(outdir, stack));
  console.log(`${join(outdir, 'stacks', stack, 'cdk.tf.json')}: ${docs.length} hosts`);
  for (const d of docs) console.log(`  ${d.hostname}: cloud-init document ${Buffer.byteLength(d.userData)} bytes`);
}
