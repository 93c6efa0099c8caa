#!/usr/bin/env node
'use strict';
// The `nlearn` / `nested-learning` command (package.json "bin"): runs the compiled CLI, dist/cli/nl.js.
// Plain JavaScript so that it exists (and says what to do) before `npm run build` has made dist/.
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const compiled = path.join(root, 'dist', 'cli', 'nl.js');
if (!fs.existsSync(compiled)) {
  console.error(
    `nlearn: the compiled CLI is missing (${compiled}). Build it with 'npm run build' in ${root}, ` +
      `or run the TypeScript sources directly with 'npm run nl -- <command>'.`,
  );
  process.exit(1);
}
require(compiled).main(process.argv);
