import { createHash } from 'crypto';

/**
 * Evaluates a Terraform JSON string template the way `terraform apply` would, for the subset synth
 * writes: escaped `$${` and `%%{`, and interpolations of string literals, `var.NAME`, `join`,
 * `sha256` and `base64sha256`. `smartstack local` uses it to see the files a host would receive.
 */
export function evaluateTerraformTemplate(text: string, variables: Record<string, string>): string {
  const parser = new Parser(text, variables);
  return parser.template(undefined);
}

/** The variables (`var.NAME`) a template refers to. */
export function templateVariables(text: string): string[] {
  return [...new Set([...text.matchAll(/(?<![\w.])var\.([A-Za-z_][A-Za-z0-9_-]*)/g)].map((m) => m[1]))].sort();
}

type Value = string | Value[];

const FUNCTIONS: Record<string, (args: Value[]) => Value> = {
  sha256: ([s]) => createHash('sha256').update(asString(s), 'utf8').digest('hex'),
  base64sha256: ([s]) => createHash('sha256').update(asString(s), 'utf8').digest('base64'),
  join: ([separator, list]) => {
    if (!Array.isArray(list)) throw new Error('join: expected a list');
    return list.map(asString).join(asString(separator));
  },
};

function asString(value: Value | undefined): string {
  if (typeof value !== 'string') throw new Error('expected a string value');
  return value;
}

class Parser {
  private pos = 0;
  public constructor(private readonly text: string, private readonly variables: Record<string, string>) {}

  /** Reads template text up to `end` (a closing quote inside an expression) or the end of input. */
  public template(end: '"' | undefined): string {
    let out = '';
    while (this.pos < this.text.length) {
      const c = this.text[this.pos];
      if (end !== undefined && c === end) return out;
      if ((c === '$' || c === '%') && this.text.startsWith(`${c}${c}{`, this.pos)) {
        out += `${c}{`;
        this.pos += 3;
      } else if (c === '$' && this.text[this.pos + 1] === '{') {
        this.pos += 2;
        out += asString(this.expression());
        this.skipSpace();
        this.expect('}');
      } else if (c === '%' && this.text[this.pos + 1] === '{') {
        throw this.error('template directives (%{) are not supported');
      } else if (end !== undefined && c === '\\') {
        const next = this.text[this.pos + 1];
        const escapes: Record<string, string> = { 'n': '\n', 't': '\t', 'r': '\r', '"': '"', '\\': '\\' };
        if (!(next in escapes)) throw this.error(`unsupported escape \\${next}`);
        out += escapes[next];
        this.pos += 2;
      } else {
        out += c;
        this.pos += 1;
      }
    }
    if (end !== undefined) throw this.error('unterminated string');
    return out;
  }

  private expression(): Value {
    this.skipSpace();
    const c = this.text[this.pos];
    if (c === '"') {
      this.pos += 1;
      const value = this.template('"');
      this.expect('"');
      return value;
    }
    if (c === '[') {
      this.pos += 1;
      return this.list(']');
    }
    const name = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(this.text.slice(this.pos))?.[0];
    if (!name) throw this.error('expected an expression');
    this.pos += name.length;
    if (name === 'var' && this.text[this.pos] === '.') {
      this.pos += 1;
      const variable = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(this.text.slice(this.pos))?.[0];
      if (!variable) throw this.error('expected a variable name');
      this.pos += variable.length;
      const value = this.variables[variable];
      if (value === undefined) throw new Error(`the template needs a value for variable ${variable}`);
      return value;
    }
    const fn = FUNCTIONS[name];
    this.skipSpace();
    if (!fn || this.text[this.pos] !== '(') throw this.error(`unsupported expression ${name}`);
    this.pos += 1;
    return fn(this.list(')'));
  }

  private list(close: string): Value[] {
    const items: Value[] = [];
    this.skipSpace();
    while (this.text[this.pos] !== close) {
      items.push(this.expression());
      this.skipSpace();
      if (this.text[this.pos] === ',') this.pos += 1;
      else if (this.text[this.pos] !== close) throw this.error(`expected , or ${close}`);
      this.skipSpace();
    }
    this.pos += 1;
    return items;
  }

  private skipSpace(): void {
    while (/\s/.test(this.text[this.pos] ?? '')) this.pos += 1;
  }

  private expect(c: string): void {
    if (this.text[this.pos] !== c) throw this.error(`expected ${c}`);
    this.pos += 1;
  }

  private error(reason: string): Error {
    return new Error(`Terraform template at offset ${this.pos}: ${reason}`);
  }
}
