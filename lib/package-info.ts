import { readFileSync } from 'fs';
import { join } from 'path';

/** This package's name and version, as the agents' package and the manifest name them. */
export const PACKAGE: { readonly name: string; readonly version: string } = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8'));
