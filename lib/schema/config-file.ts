import { readdirSync, readFileSync } from 'fs';
import { extname, join } from 'path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from './config-error';

/**
 * Reads an agent config file as upstream does: JSON, or YAML (of which JSON is a subset) for any
 * other extension. Throws {@link ConfigError} naming the file.
 */
export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, '(file)', path, `cannot be read: ${(e as Error).message}`);
  }
  if (extname(path) === '.json') {
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new ConfigError(path, '(file)', path, `is not valid JSON: ${(e as Error).message}`);
    }
  }
  try {
    return parseYaml(text, { maxAliasCount: 100 });
  } catch (e) {
    throw new ConfigError(path, '(file)', path, `is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
}

/**
 * The services of a `service_conf_dir`: every `*.json`, `*.yaml` and `*.yml` file, one service
 * each, named after the file (upstream reads `*.json` and `*.yaml`).
 */
export function readServiceConfDir(source: string, dir: string): { [name: string]: unknown } {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => /\.(json|ya?ml)$/.test(f)).sort();
  } catch (e) {
    throw new ConfigError(source, 'service_conf_dir', dir, `cannot be read: ${(e as Error).message}`);
  }
  const services: { [name: string]: unknown } = {};
  for (const file of files) services[file.replace(/\.(json|ya?ml)$/, '')] = readConfigFile(join(dir, file));
  return services;
}
