import { renameSync, writeFileSync } from 'fs';
import { ImportError, readEstate } from './import-estate';
import { renderProgram } from './import-program';
import { UsageError, ParsedCommand } from './command-line';

/** `smartstack import`: prints (or writes) the program; exit 2 with nothing written on refused input. */
export function runImport(args: ParsedCommand): number {
  if (args.positionals.length === 0) throw new UsageError('give the nerve and synapse files (or folders of them) to import', 'import');
  const addresses: Record<string, string> = {};
  const given = args.values.address;
  if (typeof given === 'string') {
    for (const pair of given.split(',')) {
      const m = /^([^=]+)=(.+)$/.exec(pair.trim());
      if (!m) throw new UsageError(`--address ${given}: expected NAME=IP[,NAME=IP...], found '${pair}'`, 'import');
      addresses[m[1]] = m[2];
    }
  }
  let program: string;
  try {
    const estate = readEstate([...args.positionals], addresses);
    program = renderProgram(estate, {
      addresses,
      library: typeof args.values.library === 'string' ? args.values.library : undefined,
      stackName: typeof args.values.stack === 'string' ? args.values.stack : undefined,
    });
  } catch (e) {
    if (e instanceof ImportError) {
      process.stderr.write(`smartstack import: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const out = args.values.out;
  if (typeof out === 'string') {
    // Whole or not at all.
    writeFileSync(`${out}.tmp`, program);
    renameSync(`${out}.tmp`, out);
  } else {
    process.stdout.write(program);
  }
  return 0;
}
