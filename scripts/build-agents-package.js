#!/usr/bin/env node
// The build's last step: the agents' package (lib/agents-package-<version>.tgz) from the compiled code, so that
// a synthesis reads it instead of making it. A synthesis still builds it itself when it is missing
// or older than a file it is made of.
const { join } = require('path');
const { prebuiltArchivePath, writeAgentsPackage } = require('../lib/cloud-init/agents-package');

const agents = writeAgentsPackage(join(__dirname, '..'));
console.log(`${prebuiltArchivePath(agents.version)}: ${agents.archive.length} bytes, sha256 ${agents.sha256}`);
