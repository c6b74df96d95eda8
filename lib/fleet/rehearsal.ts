import { cpSync, mkdirSync, readdirSync, writeFileSync } from 'fs';
import { join } from 'path';
import { isInService, parseServersState } from '../agent/haproxy-runtime';
import { MemberStatus, RegistryStatus } from '../agent/registry-status';
import { CREDENTIALS_DIR } from '../cloud-init/host-paths';
import { REHEARSAL_LOAD_DEFAULTS } from '../model/rehearsal-load';
import { readSynthesizedDocuments, SynthesizedHostDocument } from '../cloud-init/synthesized-documents';
import { SynapseConfig } from '../schema/synapse-config';
import { diagnoseApply } from './apply-diagnosis';
import { consumerLoadScript, LoadResult, parseLoadOutput } from './consumer-load';
import { allInService, ConsumerServiceStatus, convergence, lastSince } from './rehearsal-measures';
import { loadTargets, LoadTarget, memberDocuments, providerHosts, ReadStack, readStack, roles, sidecarFile, stackVariables } from './stack-documents';
import { Fleet, FleetOptions } from './fleet';
import { serviceBackends, serviceBackendScript } from './service-backend';
import { FleetPlacement, fleetHostNumbers, mapStackOntoFleet, StackHost, stackHosts } from './stack-address-map';
import { resourceSeconds, TerraformCommandResult, TerraformWorkspace } from './terraform-apply';

export interface RehearsalOptions {
  /** The cdktf output directory (`cdktf.out`). */
  readonly outdir: string;
  /** The stack to rehearse. @default the only one in `outdir` */
  readonly stack?: string;
  /**
   * Values of the stack's variables (such as `TF_VAR_<name>` given in the environment). Sensitive
   * ones not given (`<ensemble>_secret`) get a random value; `ssh_private_key` is always the fleet's.
   */
  readonly variables?: Record<string, string>;
  /** How the fleet is made (work directory, image, subnet). */
  readonly fleet?: FleetOptions;
  /** Size of each disk a host's document formats. @default 512 */
  readonly diskSizeMiB?: number;
  /** Progress lines. @default none */
  readonly log?: (line: string) => void;
}

export interface RehearsalHostStatus {
  readonly hostname: string;
  /** The fleet address that stands in for the private one. */
  readonly address: string;
  readonly privateAddress: string;
  /** `zookeeper member`, `provides S`, `consumes S`. */
  readonly roles: string[];
}

export interface RehearsalStatus {
  readonly hosts: RehearsalHostStatus[];
  readonly members: MemberStatus[];
  readonly consumers: ConsumerServiceStatus[];
  readonly registry?: RegistryStatus;
  readonly registryError?: string;
}

/** The bounded load sent through every consumer's local ports while something changes. */
export interface LoadOptions {
  /** Bound of the load, in requests per consumer and service. @default REHEARSAL_LOAD_DEFAULTS.loadRequests */
  readonly loadRequests?: number;
  /** Bound of the load in time, in seconds. @default REHEARSAL_LOAD_DEFAULTS.loadSeconds */
  readonly loadSeconds?: number;
  /** Seconds after the change the providers may take to be back in service. @default REHEARSAL_LOAD_DEFAULTS.settleSeconds */
  readonly settleSeconds?: number;
  /** Seconds every provider must stay in service to count as back (a flapping server does not). @default REHEARSAL_LOAD_DEFAULTS.stableSeconds */
  readonly stableSeconds?: number;
  /** Called with each sample of the consumers' HAProxy view (about once a second). */
  readonly onSample?: (elapsedSeconds: number, consumers: ConsumerServiceStatus[]) => void;
}

export interface ChangeOptions extends LoadOptions {
  /** The second synthesis' cdktf output directory. */
  readonly outdir: string;
  /** @default the only stack in `outdir` */
  readonly stack?: string;
}

export interface DisruptionOptions extends LoadOptions {
  /** What is done, for the log: e.g. `app2 killed`. */
  readonly description: string;
  readonly action: () => Promise<void>;
}

export interface ServiceChangeReport {
  readonly service: string;
  /** Consumer hosts the load went through. */
  readonly consumers: string[];
  /** `address:port` of the providers expected in service: those the synthesis declares, on running hosts. */
  readonly providers: string[];
  readonly requests: number;
  readonly failures: number;
  readonly failuresByStatus: Record<string, number>;
  /**
   * Seconds from the start of the apply until every provider was in service on every consumer for
   * good (0: never out of service); null when they were not back within the settle time.
   */
  readonly backInServiceSeconds: number | null;
  /** Seconds during which not every provider was in service on every consumer (sampled). */
  readonly outOfServiceSeconds: number;
  /** At the end: each provider not in service on a consumer, as `address:port on host`. */
  readonly notInService: string[];
  /** Server slots of the service's backend (the most on any consumer) in the first and the last sample. */
  readonly slotsBefore: number;
  readonly slotsAfter: number;
  /**
   * Each declared provider whose host no longer runs: seconds from the start of the change until no
   * consumer's HAProxy had it UP for good, and until none had it at all (null: not within the run).
   */
  readonly gone: Array<{ readonly provider: string; readonly downAfterSeconds: number | null; readonly removedAfterSeconds: number | null }>;
}

/** What the load saw while something changed. */
export interface LoadReport {
  readonly loadSeconds: number;
  readonly services: ServiceChangeReport[];
  /** ZooKeeper members sampled (those of both syntheses). */
  readonly members: number;
  /** The fewest members serving (leader or follower) in any sample; null without members. */
  readonly fewestServingMembers: number | null;
  /** The fewest members up (answering, serving or electing a leader) in any sample; null without members. */
  readonly fewestMembersUp: number | null;
}

export interface ChangeReport extends LoadReport {
  readonly applyExitCode: number | null;
  readonly applySeconds: number;
  /** Seconds per resource the apply changed. */
  readonly resourceSeconds: Record<string, number>;
  /** Hosts the second synthesis added to the fleet. */
  readonly addedHosts: string[];
  /** Hosts the second synthesis no longer has, powered off after the apply. */
  readonly retiredHosts: string[];
  /** The apply's output, for a failed apply. */
  readonly applyOutput: string;
}

interface MappedStack {
  readonly hosts: StackHost[];
  readonly documents: SynthesizedHostDocument[];
  readonly dir: string;
}

/**
 * `smartstack rehearse`: a user's synthesized stack on a fleet of real Debian 12 hosts on this
 * machine — one per VdsNode, with its hostname and disks, its private address mapped onto the
 * fleet's 198.18.x /24 — applied with terraform; then, optionally, a second synthesis applied onto
 * the running fleet under a bounded load through every consumer's local ports.
 */
export class Rehearsal {
  /** The values the stack's variables are applied with (without `ssh_private_key`). */
  public readonly variables: Record<string, string>;
  /** Names of the variables given a random value. */
  public readonly generated: string[];
  private readonly log: (line: string) => void;
  private readonly firstStack: ReadStack & { hosts: StackHost[] };
  private numbers: Map<string, number>;
  private creating?: Promise<Fleet>;
  private fleetInstance?: Fleet;
  private workspace?: TerraformWorkspace;
  private current?: MappedStack;
  private stackCount = 0;
  private stopped = false;
  private destroying?: Promise<void>;
  /** `host unit command` of each backend started, so a second synthesis restarts none it keeps. */
  private readonly backends = new Set<string>();

  /** Reads and checks the stack (its mapping onto a fleet included); boots nothing. */
  public constructor(private readonly options: RehearsalOptions) {
    this.log = options.log ?? (() => undefined);
    const first = readStack(options.outdir, options.stack);
    const hosts = stackHosts(first);
    this.firstStack = { ...first, hosts };
    this.numbers = fleetHostNumbers(hosts);
    const { values, generated } = stackVariables(first.terraform, options.variables ?? {});
    this.variables = values;
    this.generated = generated;
    // The same mapping with stand-in keys: an address it cannot map fails before anything is booted.
    mapStackOntoFleet(first, hosts, this.placements(hosts, '198.18.0', () => 'ssh-ed25519 AAAA'), '198.18.0.0/24');
  }

  /** The fleet, once booted. */
  public get fleet(): Fleet {
    if (!this.fleetInstance) throw new Error('rehearsal: the fleet is not booted yet');
    return this.fleetInstance;
  }

  /** The stack's hosts, with the fleet host number that stands in for each. */
  public get hostNumbers(): ReadonlyMap<string, number> {
    return this.numbers;
  }

  /** The folder of the mapped stack last given to terraform. */
  public get appliedStackDir(): string {
    if (!this.current) throw new Error('rehearsal: nothing applied yet');
    return this.current.dir;
  }

  /**
   * Boots a host per VdsNode, writes the mapped stack, starts a stand-in for each provided service
   * and applies the stack with terraform. The apply's result is returned, not thrown.
   */
  public async start(): Promise<TerraformCommandResult> {
    this.creating = Fleet.create({ log: this.log, ...this.options.fleet });
    const fleet = (this.fleetInstance = await this.creating);
    this.checkRunning();
    await this.bootHosts(this.firstStack.hosts);
    this.current = this.mapStack(this.firstStack);
    this.workspace = await TerraformWorkspace.fromSynthesizedStack(this.current.dir, {
      dir: join(fleet.workDir, 'terraform'),
      variables: { ...this.variables, ssh_private_key: fleet.sshPrivateKey },
      network: fleet.network,
    });
    this.checkRunning();
    await this.startBackends(this.current.documents);
    this.log(`applying ${this.firstStack.dir} (mapped: ${this.current.dir})`);
    return this.workspace.apply();
  }

  /**
   * Why an apply failed, read from the running hosts: the failed steps, and for each host concerned
   * its failed units and the end of its journal and of cloud-init's output.
   */
  public diagnose(applyOutput: string): Promise<string> {
    return diagnoseApply(applyOutput, this.fleet.hosts);
  }

  /** Hosts and roles, the members' modes, what is registered, and what each consumer's HAProxy serves. */
  public async status(): Promise<RehearsalStatus> {
    const current = this.requireApplied();
    const hosts = current.documents.map((d) => ({
      hostname: d.hostname,
      address: this.fleet.host(d.hostname).address,
      privateAddress: current.hosts.find((h) => h.hostname === d.hostname)!.privateAddress,
      roles: roles(d),
    }));
    const members = await Promise.all(memberDocuments(current.documents).map(async (m) => ({
      hostname: m.doc.hostname,
      address: m.address,
      // A member that answers but does not serve (electing) has no mode.
      mode: this.fleet.host(m.doc.hostname).running ? (await this.memberState(m.doc.hostname, m.address, m.port).catch(() => '')).replace(/^up$/, '') : '',
    })));
    const consumers = await this.consumerStatus(current.documents);
    try {
      return { hosts, members, consumers, registry: await this.registry(current.documents) };
    } catch (e) {
      return { hosts, members, consumers, registryError: (e as Error).message };
    }
  }

  /**
   * Applies a second synthesis of the stack onto the running fleet while a bounded load goes through
   * every consumer's local port of every service it consumed before, and reports per service the
   * requests, the failures and when every provider was back in service.
   */
  public async change(options: ChangeOptions): Promise<ChangeReport> {
    const workspace = this.workspace;
    const before = this.requireApplied();
    if (!workspace) throw new Error('rehearsal: nothing applied yet');
    const next = readStack(options.outdir, options.stack);
    const hosts = stackHosts(next);
    for (const h of hosts) {
      const old = before.hosts.find((o) => o.hostname === h.hostname);
      if (old && old.privateAddress !== h.privateAddress) {
        throw new Error(`host ${h.hostname}: privateAddress changes from ${old.privateAddress} to ${h.privateAddress}; the rehearsal keeps a host's address (give the new host a new name)`);
      }
    }
    const missing = Object.keys(stackVariables(next.terraform, this.variables).values).filter((v) => this.variables[v] === undefined);
    if (missing.length > 0) throw new Error(`the second synthesis has variable(s) the first did not have: ${missing.join(', ')}; rehearse it on its own`);
    const added = hosts.filter((h) => !this.numbers.has(h.hostname));
    // Hosts the new synthesis no longer has are powered off after the apply, as deleting their VMs would.
    const retired = before.hosts.filter((h) => !hosts.some((n) => n.hostname === h.hostname)).map((h) => this.fleet.host(h.hostname));
    this.numbers = fleetHostNumbers(hosts, this.numbers);
    await this.bootHosts(added);
    const mapped = this.mapStack({ ...next, hosts });
    await this.startBackends(mapped.documents);

    let apply: TerraformCommandResult | undefined;
    const measured = await this.underLoad(before.documents, mapped.documents, options, async () => {
      workspace.updateStack(mapped.dir);
      this.current = mapped;
      this.log(`applying ${next.dir} onto the running fleet (mapped: ${mapped.dir})`);
      apply = await workspace.apply();
      if (apply.exitCode !== 0) return false;
      for (const host of retired.filter((h) => h.running)) {
        this.log(`${host.name}: no longer in the stack; powered off`);
        await host.stop();
      }
      return true;
    });
    return {
      applyExitCode: apply?.exitCode ?? null,
      applySeconds: apply?.seconds ?? 0,
      resourceSeconds: resourceSeconds(apply?.output ?? ''),
      addedHosts: added.map((h) => h.hostname),
      retiredHosts: retired.map((h) => h.name),
      ...measured,
      applyOutput: apply?.output ?? '',
    };
  }

  /**
   * Something done to the running fleet — a host killed, a member stopped — measured under load as a
   * change is: the requests and failures, and the time until every provider on a running host was in
   * service again; providers whose host no longer runs are expected out of the consumers' HAProxy.
   */
  public async disrupt(options: DisruptionOptions): Promise<LoadReport> {
    const current = this.requireApplied();
    return this.underLoad(current.documents, current.documents, options, async () => {
      this.log(`under load: ${options.description}`);
      await options.action();
      return true;
    });
  }

  /**
   * Sends the bounded load through every consumer's local port of each service consumed before and
   * after, runs `act`, and samples what the consumers' HAProxy serve and which members serve until
   * every expected provider has been in service for `stableSeconds` (or `settleSeconds` ran out).
   */
  private async underLoad(
    before: readonly SynthesizedHostDocument[],
    after: readonly SynthesizedHostDocument[],
    options: LoadOptions,
    act: () => Promise<boolean>,
  ): Promise<LoadReport> {
    const loadRequests = options.loadRequests ?? REHEARSAL_LOAD_DEFAULTS.loadRequests;
    const loadSeconds = options.loadSeconds ?? REHEARSAL_LOAD_DEFAULTS.loadSeconds;
    const settleMs = (options.settleSeconds ?? REHEARSAL_LOAD_DEFAULTS.settleSeconds) * 1000;
    const stableMs = (options.stableSeconds ?? REHEARSAL_LOAD_DEFAULTS.stableSeconds) * 1000;
    const targets = loadTargets(before, after);
    if (targets.length === 0) this.log('no consumer consumes a service in both syntheses: it runs without load');
    const stopFile = (t: LoadTarget) => `/run/smartstack-rehearsal-load-${t.service}.stop`;
    const loadStarted = Date.now();
    const loads = targets.map(async (t) => {
      const script = consumerLoadScript({ url: t.url, count: loadRequests, seconds: loadSeconds, stopFile: stopFile(t) });
      const r = await this.fleet.host(t.hostname).exec(script, { timeoutMs: (loadSeconds + 60) * 1000 });
      return { target: t, result: parseLoadOutput(r.stdout) };
    });

    const running = (hostname: string) => this.fleetInstance?.hosts.some((h) => h.name === hostname && h.running) ?? false;
    const declared = providerHosts(after);
    // The providers expected in service: those whose host runs.
    const expected = (service: string) => (declared.get(service) ?? []).filter((p) => running(p.hostname)).map((p) => p.provider);
    const members = [...new Map([...memberDocuments(before), ...memberDocuments(after)].map((m) => [m.doc.hostname, m])).values()];
    const samples: Array<{ at: number; inService: Map<string, boolean>; view: ConsumerServiceStatus[]; serving: number; up: number; goneOut: boolean }> = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const at = Date.now();
        const [consumers, modes] = await Promise.all([
          this.consumerStatus(after).catch(() => [] as ConsumerServiceStatus[]),
          Promise.all(members.filter((m) => running(m.doc.hostname)).map((m) => this.memberState(m.doc.hostname, m.address, m.port).catch(() => ''))),
        ]);
        const serving = modes.filter((m) => m === 'leader' || m === 'follower').length;
        const up = modes.filter((m) => m !== '').length;
        // Providers whose host no longer runs must be out of every consumer's HAProxy before the change counts as settled.
        const goneOut = targets.every((t) => (declared.get(t.service) ?? []).filter((p) => !running(p.hostname)).every((p) => !consumers.some((v) => v.service === t.service && v.servers.some((x) => `${x.address}:${x.port}` === p.provider))));
        samples.push({ at, view: consumers, serving, up, goneOut, inService: new Map(targets.map((t) => [t.service, allInService(t.service, expected(t.service), consumers)])) });
        options.onSample?.((at - loadStarted) / 1000, consumers);
        await sleep(Math.max(0, 1000 - (Date.now() - at)));
      }
    })();

    let actStarted = Date.now();
    try {
      await sleep(3000); // the load flows before anything changes
      this.checkRunning();
      actStarted = Date.now();
      const ok = await act();
      const acted = Date.now();
      while (ok && Date.now() - acted < settleMs + stableMs && this.checkRunning()) {
        // In service since the action ended, in every sample of the last stableMs.
        const recent = samples.filter((x) => x.at > acted);
        const since = recent.length > 0 ? recent[recent.length - 1].at - stableMs : Infinity;
        const stable = recent.length > 0 && recent[0].at <= since && recent.filter((x) => x.at >= since).every((x) => x.goneOut && targets.every((t) => x.inService.get(t.service)));
        if (stable) break;
        await sleep(500);
      }
    } finally {
      await Promise.all(targets.map((t) => this.fleet.host(t.hostname).exec(`touch ${stopFile(t)}`).catch(() => undefined)));
    }
    const results = await Promise.all(loads);
    sampling = false;
    await sampler;

    const lastView = samples.length > 0 ? samples[samples.length - 1].view : [];
    const services = [...new Set(targets.map((t) => t.service))].map((service): ServiceChangeReport => {
      const mine = results.filter((r) => r.target.service === service);
      const sum = (pick: (r: LoadResult) => number) => mine.reduce((n, r) => n + pick(r.result), 0);
      const failuresByStatus: Record<string, number> = {};
      for (const r of mine) for (const [code, n] of Object.entries(r.result.failuresByStatus)) failuresByStatus[code] = (failuresByStatus[code] ?? 0) + n;
      const providers = expected(service);
      const slots = (view: ConsumerServiceStatus[]) => Math.max(0, ...view.filter((v) => v.service === service).map((v) => v.slots));
      const gone = (declared.get(service) ?? []).filter((p) => !running(p.hostname)).map((p) => ({
        provider: p.provider,
        downAfterSeconds: lastSince(samples, actStarted, (x) => !x.view.some((v) => v.service === service && v.servers.some((sv) => sv.up && `${sv.address}:${sv.port}` === p.provider))),
        removedAfterSeconds: lastSince(samples, actStarted, (x) => !x.view.some((v) => v.service === service && v.servers.some((sv) => `${sv.address}:${sv.port}` === p.provider))),
      }));
      return {
        service,
        consumers: mine.map((r) => r.target.hostname),
        providers,
        requests: sum((r) => r.requests),
        failures: sum((r) => r.failures),
        failuresByStatus,
        ...convergence(samples.map((x) => ({ at: x.at, ok: x.inService.get(service) ?? false })), actStarted),
        notInService: lastView
          .filter((v) => v.service === service)
          .flatMap((v) => providers.filter((p) => !v.servers.some((x) => x.up && `${x.address}:${x.port}` === p)).map((p) => `${p} on ${v.hostname}`)),
        slotsBefore: slots(samples[0]?.view ?? []),
        slotsAfter: slots(lastView),
        gone,
      };
    });
    return {
      loadSeconds: (Date.now() - loadStarted) / 1000,
      services,
      members: members.length,
      fewestServingMembers: members.length === 0 || samples.length === 0 ? null : Math.min(...samples.map((x) => x.serving)),
      fewestMembersUp: members.length === 0 || samples.length === 0 ? null : Math.min(...samples.map((x) => x.up)),
    };
  }

  /** Destroys the fleet (every host, disk, mount and the bridge); safe to call at any time, twice too. */
  public destroy(): Promise<void> {
    // One cleanup, however often asked: each caller waits until it is done.
    this.destroying ??= (async () => {
      this.stopped = true;
      this.workspace?.kill();
      const fleet = this.fleetInstance ?? (await this.creating?.catch(() => undefined));
      await fleet?.destroy();
    })();
    return this.destroying;
  }

  private checkRunning(): true {
    if (this.stopped) throw new Error('rehearsal: stopped');
    return true;
  }

  private requireApplied(): MappedStack {
    if (!this.current || !this.fleetInstance) throw new Error('rehearsal: nothing applied yet');
    return this.current;
  }

  private async bootHosts(hosts: readonly StackHost[]): Promise<void> {
    if (hosts.length === 0) return;
    const sizeMiB = this.options.diskSizeMiB ?? 512;
    this.log(`booting ${hosts.map((h) => `${h.hostname} (${h.privateAddress} → ${this.fleet.address(this.numbers.get(h.hostname)!)})`).join(', ')}`);
    await this.fleet.addHosts(hosts.map((h) => ({ name: h.hostname, address: this.numbers.get(h.hostname)!, disks: h.diskIds.map((id) => ({ id, sizeMiB })) })));
    this.checkRunning();
  }

  /** The stack rewritten onto the fleet hosts, in a folder of its own with the stack's assets. */
  private mapStack(stack: ReadStack & { hosts: StackHost[] }): MappedStack {
    const fleet = this.fleet;
    const placements = this.placements(stack.hosts, fleet.network.prefix, (hostname) => fleet.host(hostname).sshHostKey);
    const mapped = mapStackOntoFleet(stack, stack.hosts, placements, fleet.network.cidr);
    const dir = join(fleet.workDir, 'stacks', `${++this.stackCount}`);
    mkdirSync(dir, { recursive: true });
    for (const entry of readdirSync(stack.dir)) {
      if (!entry.endsWith('.tf.json') && !entry.endsWith('.tfstate') && entry !== '.terraform') cpSync(join(stack.dir, entry), join(dir, entry), { recursive: true });
    }
    writeFileSync(join(dir, 'cdk.tf.json'), `${JSON.stringify(mapped, null, 2)}\n`);
    return { hosts: stack.hosts, documents: readSynthesizedDocuments({ manifest: stack.manifest, terraform: mapped }, this.variables), dir };
  }

  private placements(hosts: readonly StackHost[], prefix: string, key: (hostname: string) => string): Map<string, FleetPlacement> {
    return new Map(hosts.map((h) => [h.hostname, { address: `${prefix}.${this.numbers.get(h.hostname)}`, sshHostKey: key(h.hostname) }]));
  }

  /** A stand-in per provided service, started before the apply so nerve finds it healthy. */
  private async startBackends(documents: readonly SynthesizedHostDocument[]): Promise<void> {
    await Promise.all(documents.map(async (doc) => {
      const nerve = sidecarFile(doc, 'nerveConfig');
      if (nerve === undefined) return;
      const fresh = serviceBackends(doc.hostname, nerve).filter((b) => !this.backends.has(`${doc.hostname} ${JSON.stringify(b)}`));
      if (fresh.length === 0) return;
      await this.fleet.host(doc.hostname).execChecked(serviceBackendScript(fresh), { timeoutMs: 60_000 });
      fresh.forEach((b) => this.backends.add(`${doc.hostname} ${JSON.stringify(b)}`));
      this.log(`${doc.hostname}: stand-in for ${fresh.map((b) => `${b.service} on ${b.address}:${b.ports.join(',')}`).join(', ')}`);
    }));
  }

  /** leader, follower, `up` for a member that answers but does not serve (electing), '' when it does not answer. */
  private async memberState(hostname: string, address: string, port: number): Promise<string> {
    const ask = (word: string) => `timeout 3 bash -c 'exec 3<>/dev/tcp/${address}/${port} && printf ${word} >&3 && cat <&3' 2>/dev/null`;
    const r = await this.fleet.host(hostname).exec(`mode=$(${ask('srvr')} | sed -n 's/^Mode: //p'); [ -n "$mode" ] && echo "$mode" || { [ "$(${ask('ruok')})" = imok ] && echo up; }; true`, { timeoutMs: 10_000 });
    return r.stdout.trim();
  }

  /** `smartstack status` run on a sidecar host, as the reader identity where the ensemble has ACLs. */
  private async registry(documents: readonly SynthesizedHostDocument[]): Promise<RegistryStatus> {
    const members = memberDocuments(documents);
    // The reader's credentials are on consumers (synapse); any sidecar host can ask without ACLs.
    const withReader = documents.map((d) => {
      const reader = d.host.sidecar?.credentials.find((name) => name.endsWith('-reader.json'));
      return { d, reader: reader === undefined ? undefined : `${CREDENTIALS_DIR}/${reader}` };
    });
    const on = withReader.find((x) => x.reader) ?? withReader.find((x) => x.d.host.sidecar !== undefined);
    if (!on || members.length === 0) throw new Error('no sidecar host or no ZooKeeper member in the stack');
    const zk = members.map((m) => `${m.address}:${m.port}`).join(',');
    const r = await this.fleet.host(on.d.hostname).exec(`smartstack status --zk ${zk}${on.reader ? ` --auth-file ${on.reader}` : ''} --json`, { timeoutMs: 20_000 });
    if (!r.stdout.trim().startsWith('{')) throw new Error(`smartstack status on ${on.d.hostname}: ${(r.stderr || r.stdout).trim().split('\n').pop() ?? `exit ${r.status}`}`);
    return JSON.parse(r.stdout) as RegistryStatus;
  }

  private async consumerStatus(documents: readonly SynthesizedHostDocument[]): Promise<ConsumerServiceStatus[]> {
    const perHost = await Promise.all(documents.map(async (doc) => {
      const text = sidecarFile(doc, 'synapseConfig');
      if (text === undefined) return [];
      const config = JSON.parse(text) as SynapseConfig;
      const socket = doc.host.sidecar?.haproxyAdminSocket;
      const services = Object.entries(config.services).map(([service, s]) => ({ service, backend: s.haproxy.backend_name ?? service }));
      const r = socket
        ? await this.fleet.host(doc.hostname).exec(`echo 'show servers state' | socat -t 2 - UNIX-CONNECT:${socket}`, { timeoutMs: 10_000 }).catch((e: Error) => ({ status: 1, stdout: '', output: e.message }))
        : { status: 1, stdout: '', output: "the manifest names no HAProxy admin socket for this host" };
      let states: ReturnType<typeof parseServersState> | undefined;
      let error: string | undefined;
      try {
        if (r.status !== 0) throw new Error(r.output.trim() || `exit ${r.status}`);
        states = parseServersState(r.stdout);
      } catch (e) {
        error = (e as Error).message;
      }
      return services.map(({ service, backend }) => ({
        hostname: doc.hostname,
        service,
        servers: (states ?? [])
          .filter((s) => s.backend === backend && s.port > 0 && s.address !== '0.0.0.0' && isInService(s))
          .map((s) => ({ address: s.address, port: s.port, up: s.operationalState === 2 && s.weight > 0 })),
        slots: (states ?? []).filter((s) => s.backend === backend).length,
        ...(error !== undefined ? { error } : {}),
      }));
    }));
    return perHost.flat();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export { allInService, convergence, readStack, stackVariables };
export type { ConsumerServiceStatus };
