import { appendFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'fs';
import { join } from 'path';
import { runBounded } from './bounded-command';
import { signalProcessGroup } from '../agent/process-group';

/**
 * These machines have terraform but no network to fetch the null provider. The built-in
 * `terraform_data` takes the same connection and provisioner blocks, so a copy of the stack with
 * `null_resource` mapped onto it (`triggers` → `triggers_replace`), and the null provider dropped,
 * validates, plans and applies offline.
 */
export function mapNullResourceToTerraformData(stackJson: Record<string, unknown>): Record<string, unknown> {
  const hasNullResources = (stackJson as TerraformJson).resource?.null_resource !== undefined;
  // A stack delivered by terraform_data already is left as it is (its moved blocks name null_resource on purpose).
  const text = JSON.stringify(stackJson);
  const copy = JSON.parse(hasNullResources ? text.replace(/(\$\{|")null_resource\./g, '$1terraform_data.') : text) as TerraformJson;
  const resources = copy.resource ?? {};
  if (resources.null_resource) {
    resources.terraform_data = Object.fromEntries(
      Object.entries(resources.null_resource).map(([name, r]) => {
        const { triggers, ...rest } = r;
        return [name, triggers === undefined ? rest : { ...rest, triggers_replace: triggers }];
      }),
    );
    delete resources.null_resource;
  }
  delete copy.provider?.null;
  if (copy.provider && Object.keys(copy.provider).length === 0) delete copy.provider;
  delete copy.terraform?.required_providers?.null;
  delete copy.terraform?.backend;
  return copy;
}

/** The parts of a synthesized stack the mapping touches. */
interface TerraformJson extends Record<string, unknown> {
  resource?: Record<string, Record<string, Record<string, unknown>>>;
  provider?: Record<string, unknown>;
  terraform?: { required_providers?: Record<string, unknown>; backend?: unknown };
}

/** One terraform command as run. */
export interface TerraformCommandResult {
  /** The command line, e.g. `terraform apply -auto-approve …`. */
  readonly command: string;
  /** terraform's exit status (null when killed; then `timedOut` says whether by the bound). */
  readonly exitCode: number | null;
  readonly timedOut: boolean;
  /** Standard output and error, interleaved. */
  readonly output: string;
  /** Standard output alone (e.g. for `-json`). */
  readonly stdout: string;
  readonly seconds: number;
}

export interface TerraformPlanResult extends TerraformCommandResult {
  /** `plan -detailed-exitcode`: true on exit 2 (changes), false on 0; an error (exit 1) is neither. */
  readonly changes: boolean;
}

export interface TerraformWorkspaceOptions {
  /** Where the stack's copy, the state and the log live. It is created when missing. */
  readonly dir: string;
  /**
   * Terraform variables, passed as `TF_VAR_<name>` in the environment (never on the command line):
   * e.g. `ssh_private_key`, `<ensemble id>_secret`.
   */
  readonly variables?: Record<string, string>;
  /** Every command's output is appended here as it arrives. @default `<dir>/terraform.log` */
  readonly logFile?: string;
  /** Bound of each terraform command. @default 30 minutes */
  readonly timeoutMs?: number;
  /**
   * Before each apply and plan, every SSH target in the stack is checked to be routed via this
   * network's bridge (`ip route get`); a stack that would reach anything else is refused.
   * @default no check
   */
  readonly network?: { assertRoute(address: string): Promise<void> };
}

/**
 * A synthesized cdktf stack (`cdktf.out/stacks/<name>`) applied with the real terraform, offline:
 * the copy maps `null_resource` onto `terraform_data`; the state stays in the directory, so a second
 * plan or apply works on what the first one made.
 */
export class TerraformWorkspace {
  /** Copies and maps the stack into `options.dir`, then runs `terraform init -backend=false`; throws when init fails. */
  public static async fromSynthesizedStack(stackDir: string, options: TerraformWorkspaceOptions): Promise<TerraformWorkspace> {
    const workspace = new TerraformWorkspace(options);
    workspace.updateStack(stackDir);
    const init = await workspace.run(['init', '-backend=false', '-input=false', '-no-color']);
    if (init.exitCode !== 0) throw new Error(`terraform init failed in ${options.dir}:\n${init.output}`);
    return workspace;
  }

  /** The directory terraform runs in. */
  public readonly dir: string;
  public readonly logFile: string;
  private readonly variables: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly network?: { assertRoute(address: string): Promise<void> };
  /** Process group ids of the terraform commands running now. */
  private readonly running = new Set<number>();

  private constructor(options: TerraformWorkspaceOptions) {
    this.dir = options.dir;
    this.logFile = options.logFile ?? join(options.dir, 'terraform.log');
    this.variables = { ...(options.variables ?? {}) };
    this.timeoutMs = options.timeoutMs ?? 30 * 60_000;
    this.network = options.network;
    for (const name of Object.keys(this.variables)) {
      if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) throw new Error(`TerraformWorkspace: variables has the name ${JSON.stringify(name)}, which is not a Terraform variable name`);
    }
    mkdirSync(this.dir, { recursive: true });
  }

  /**
   * Replaces the configuration with a (new) synthesis of the stack, keeping the state: the next plan
   * or apply compares it with what the last apply made. Each `*.tf.json` file is mapped.
   */
  public updateStack(stackDir: string): void {
    const files = readdirSync(stackDir).filter((f) => f.endsWith('.tf.json'));
    if (files.length === 0) throw new Error(`TerraformWorkspace: stackDir = ${JSON.stringify(stackDir)}: holds no *.tf.json (expected cdktf.out/stacks/<name>)`);
    for (const old of readdirSync(this.dir).filter((f) => f.endsWith('.tf.json'))) writeFileSync(join(this.dir, old), '{}\n');
    // Other files (assets) are copied as they are; terraform's own files are not.
    const skip = new Set(['.terraform', '.terraform.lock.hcl', 'terraform.tfstate', 'terraform.tfstate.backup']);
    for (const entry of readdirSync(stackDir)) {
      if (skip.has(entry) || entry.endsWith('.tfstate') || entry.endsWith('.tf.json')) continue;
      cpSync(join(stackDir, entry), join(this.dir, entry), { recursive: true });
    }
    for (const f of files) {
      const json = JSON.parse(readFileSync(join(stackDir, f), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(this.dir, f), `${JSON.stringify(mapNullResourceToTerraformData(json), null, 2)}\n`);
    }
  }

  /** `terraform apply -auto-approve`; the exit status is returned, not thrown. */
  public async apply(extraArgs: readonly string[] = []): Promise<TerraformCommandResult> {
    await this.checkTargets();
    return this.run(['apply', '-auto-approve', '-input=false', '-no-color', ...extraArgs]);
  }

  /** `terraform plan -detailed-exitcode`: `changes` is true when the plan would change anything. */
  public async plan(extraArgs: readonly string[] = []): Promise<TerraformPlanResult> {
    await this.checkTargets();
    const result = await this.run(['plan', '-detailed-exitcode', '-input=false', '-no-color', ...extraArgs]);
    return { ...result, changes: result.exitCode === 2 };
  }

  /** The stack's outputs (`terraform output -json`), values only. */
  public async outputs(): Promise<Record<string, unknown>> {
    const r = await this.run(['output', '-json']);
    if (r.exitCode !== 0) throw new Error(`terraform output failed in ${this.dir}:\n${r.output}`);
    const outputs = JSON.parse(r.stdout) as Record<string, { value: unknown }>;
    return Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, v.value]));
  }

  /** Any terraform command in the workspace, with the variables and without checkpoint calls. */
  public async run(args: readonly string[]): Promise<TerraformCommandResult> {
    const command = `terraform ${args.join(' ')}`;
    const env: NodeJS.ProcessEnv = { ...process.env, CHECKPOINT_DISABLE: '1', TF_IN_AUTOMATION: '1', TF_INPUT: '0' };
    // A CLI configuration named but missing only adds a warning to every command's output.
    if (env.TF_CLI_CONFIG_FILE && !existsSync(env.TF_CLI_CONFIG_FILE)) delete env.TF_CLI_CONFIG_FILE;
    for (const [name, value] of Object.entries(this.variables)) env[`TF_VAR_${name}`] = value;
    appendFileSync(this.logFile, `\n=== ${new Date().toISOString()} ${command}\n`);
    let pid: number | undefined;
    const r = await runBounded(['terraform', ...args], { cwd: this.dir, env, timeoutMs: this.timeoutMs, logFile: this.logFile, onStart: (p) => this.running.add((pid = p)) });
    if (pid !== undefined) this.running.delete(pid);
    appendFileSync(this.logFile, `=== exit ${r.status ?? r.signal}${r.timedOut ? ' (timed out)' : ''} after ${r.seconds.toFixed(1)} s\n`);
    return { command, exitCode: r.status, timedOut: r.timedOut, output: r.output, stdout: r.stdout, seconds: r.seconds };
  }

  /** The SSH targets of the configuration, each checked against the network (when one was given). */
  private async checkTargets(): Promise<void> {
    if (!this.network) return;
    for (const f of readdirSync(this.dir).filter((name) => name.endsWith('.tf.json'))) {
      for (const host of connectionHosts(JSON.parse(readFileSync(join(this.dir, f), 'utf8')))) {
        if (host.includes('${')) throw new Error(`TerraformWorkspace: ${f} connects to ${JSON.stringify(host)}, an expression whose route cannot be checked before the apply`);
        await this.network.assertRoute(host);
      }
    }
  }

  /** Kills the terraform commands still running (their process groups), e.g. when the hosts go away. */
  public kill(): void {
    for (const pid of this.running) signalProcessGroup(pid, 'SIGKILL');
  }

  /** True when the state holds resources (an apply has made something). */
  public get hasState(): boolean {
    return existsSync(join(this.dir, 'terraform.tfstate'));
  }
}

/**
 * Seconds each resource took, from an apply's output lines such as
 * `terraform_data.zk1_cloud-init_1A2B: Creation complete after 1m3s [id=…]`. Keyed by resource address.
 */
export function resourceSeconds(applyOutput: string): Record<string, number> {
  const seconds: Record<string, number> = {};
  const line = /^(\S+): (?:Creation|Modifications|Destruction) complete after (?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?/gm;
  for (const m of applyOutput.matchAll(line)) {
    seconds[m[1]] = Number(m[2] ?? 0) * 3600 + Number(m[3] ?? 0) * 60 + Number(m[4] ?? 0);
  }
  return seconds;
}

/** Every `connection.host` in a Terraform JSON configuration (resources' and provisioners' connections). */
export function connectionHosts(json: unknown): string[] {
  const hosts = new Set<string>();
  const walk = (value: unknown, key?: string): void => {
    if (Array.isArray(value)) value.forEach((v) => walk(v, key));
    else if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) {
        if (key === 'connection' && k === 'host' && typeof v === 'string') hosts.add(v);
        else walk(v, k === 'connection' ? 'connection' : k);
      }
    }
  };
  walk(json);
  return [...hosts];
}
