import { readFileSync } from 'fs';
import { join } from 'path';
import * as Mustache from 'mustache';

const cache = new Map<string, string>();

/**
 * Renders `templates/<name>.mustache`. Values are inserted verbatim: these are config files and
 * scripts, not HTML, and every value was validated before it got here.
 */
export function renderTemplate(name: string, view: object): string {
  let template = cache.get(name);
  if (template === undefined) {
    template = readFileSync(join(__dirname, 'templates', `${name}.mustache`), 'utf8');
    cache.set(name, template);
  }
  return Mustache.render(template, view, {}, { escape: (value: unknown) => String(value) });
}
