import { parseArgs } from 'util';

/**
 * The `smartstack` command line: each subcommand declares its options once, and the same
 * declaration parses (Node's own `util.parseArgs`), refuses what it does not know with the closest
 * name, and writes the help text.
 */

export interface OptionSpec {
  /** Long name, without `--`. */
  readonly name: string;
  /** One-letter alias, without `-`. */
  readonly short?: string;
  /** Placeholder of the value (`FILE`, `MS`); a flag without one takes no value. */
  readonly value?: string;
  /** Help text; lines after the first are indented under it. */
  readonly description: string;
  /** What applies when the option is not given, as the help text shows it. */
  readonly defaultText?: string;
  /** Environment variable read when the option is not given. */
  readonly env?: string;
}

export interface PositionalSpec {
  readonly name: string;
  readonly description: string;
  readonly defaultText?: string;
  /** The last positional may take any number of words (at least one, unless it has a default). */
  readonly variadic?: boolean;
}

export interface CommandSpec {
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** Paragraph under the usage line. */
  readonly description: string;
  readonly positionals: readonly PositionalSpec[];
  readonly options: readonly OptionSpec[];
  /** Text after the options: placeholders, working folders, examples. */
  readonly notes?: string;
}

export interface ParsedCommand {
  /** Option values by long name: a string, `true` for a flag, absent when not given. */
  readonly values: { readonly [name: string]: string | true | undefined };
  readonly positionals: readonly string[];
  readonly help: boolean;
}

/** Bad usage: exit 2, with the message and a pointer to the help. */
export class UsageError extends Error {
  public constructor(message: string, public readonly command?: string) {
    super(message);
  }
}

const HELP: OptionSpec = { name: 'help', short: 'h', description: 'show this help and exit' };

/** Parses one subcommand's arguments (after its name). */
export function parseCommandLine(spec: CommandSpec, argv: readonly string[], env: NodeJS.ProcessEnv = {}): ParsedCommand {
  const all = [...spec.options, HELP];
  const options: NonNullable<Parameters<typeof parseArgs>[0]>['options'] = {};
  for (const o of all) options[o.name] = { type: o.value ? 'string' : 'boolean', ...(o.short ? { short: o.short } : {}) };
  // strict: false so that an unknown option reaches us as a token, to be refused with a suggestion.
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const values: { [name: string]: string | true | undefined } = {};
  const positionals: string[] = [];
  const spelled = (o: OptionSpec) => `--${o.name}`;
  const optionWords = new Set(all.flatMap((o) => [spelled(o), ...(o.short ? [`-${o.short}`] : [])]));
  let help = false;
  for (const token of tokens ?? []) {
    if (token.kind === 'positional') {
      positionals.push(token.value);
      continue;
    }
    if (token.kind === 'option-terminator') continue;
    const option = all.find((o) => o.name === token.name);
    if (!option) {
      const suggestion = closestName(token.rawName.replace(/^-+/, ''), all.map((o) => o.name));
      throw new UsageError(`unknown option '${token.rawName}'${suggestion ? `; did you mean '--${suggestion}'?` : ''}`, spec.name);
    }
    if (option === HELP) {
      help = true;
      continue;
    }
    if (option.value) {
      if (token.value === undefined || (!token.inlineValue && optionWords.has(token.value))) {
        throw new UsageError(`${spelled(option)} needs a value (${option.value})`, spec.name);
      }
      if (token.value === '') throw new UsageError(`${spelled(option)} ${option.value}: must not be empty`, spec.name);
    } else if (token.inlineValue) {
      throw new UsageError(`${spelled(option)} takes no value (given '${token.value}')`, spec.name);
    }
    if (values[option.name] !== undefined) throw new UsageError(`${spelled(option)} is given twice`, spec.name);
    values[option.name] = option.value ? token.value! : true;
  }
  if (help) return { values, positionals, help };
  const variadic = spec.positionals[spec.positionals.length - 1]?.variadic === true;
  if (positionals.length > spec.positionals.length && !variadic) {
    const extra = positionals[spec.positionals.length];
    throw new UsageError(
      spec.positionals.length === 0
        ? `smartstack ${spec.name} takes no arguments (given '${extra}')`
        : `unexpected argument '${extra}': smartstack ${spec.name} takes at most ${spec.positionals.map((p) => p.name).join(' ')}`,
      spec.name,
    );
  }
  for (const o of all) {
    const fromEnv = o.env === undefined ? undefined : env[o.env];
    if (values[o.name] === undefined && fromEnv !== undefined && fromEnv !== '') values[o.name] = fromEnv;
  }
  return { values, positionals, help };
}

/** The name among `names` a mistyped `word` most likely meant, if any is close enough. */
export function closestName(word: string, names: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const name of names) {
    const distance = editDistance(word.toLowerCase(), name.toLowerCase());
    if (!best || distance < best.distance) best = { name, distance };
  }
  if (!best) return undefined;
  const prefix = names.filter((n) => word.length >= 2 && n.startsWith(word));
  if (best.distance <= Math.max(1, Math.floor(best.name.length / 3))) return best.name;
  return prefix.length === 1 ? prefix[0] : undefined;
}

/** Edits (insert, delete, replace, swap two neighbours) that turn `a` into `b`: typos are mostly these. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The help text of one subcommand. */
export function renderCommandHelp(spec: CommandSpec): string {
  const required = spec.positionals.map((p) => (p.variadic ? `${p.name}...` : `[${p.name}]`));
  const lines = [`usage: smartstack ${spec.name} ${[...required, '[options]'].join(' ')}`, '', ...wrap(spec.description, 2)];
  if (spec.positionals.length > 0) {
    lines.push('', 'arguments:');
    lines.push(...columns(spec.positionals.map((p) => [p.name, withDefault(p.description, p.defaultText)])));
  }
  lines.push('', 'options:');
  lines.push(
    ...columns(
      [...spec.options, HELP].map((o) => {
        const names = `${o.short ? `-${o.short}, ` : '    '}--${o.name}${o.value ? ` ${o.value}` : ''}`;
        const env = o.env ? `\n(when not given: $${o.env})` : '';
        return [names, withDefault(o.description, o.defaultText) + env];
      }),
    ),
  );
  if (spec.notes) lines.push('', ...spec.notes.split('\n'));
  return lines.join('\n') + '\n';
}

/** The help text of the command as a whole. */
export function renderMainHelp(commands: readonly CommandSpec[]): string {
  return [
    'usage: smartstack COMMAND [options]',
    '',
    'commands:',
    ...columns([...commands.map((c) => [c.name, c.summary]), ['help [COMMAND]', 'show the help of a command']]),
    '',
    "`smartstack COMMAND --help` (or -h) shows a command's options. Exit codes: 0 done, 1 failed while running,",
    '2 bad usage or an invalid configuration.',
    '',
  ].join('\n');
}

function withDefault(description: string, defaultText: string | undefined): string {
  return defaultText === undefined ? description : `${description}\n(default: ${defaultText})`;
}

function columns(rows: string[][]): string[] {
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.flatMap(([left, right]) => {
    const [first, ...rest] = right.split('\n');
    return [`  ${left.padEnd(width)}${first}`, ...rest.map((l) => `  ${' '.repeat(width)}${l}`)];
  });
}

function wrap(text: string, indent: number): string[] {
  return text.split('\n').map((l) => `${' '.repeat(indent)}${l}`.trimEnd());
}
