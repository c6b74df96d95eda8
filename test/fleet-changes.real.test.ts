import { spawnSync } from 'child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { buildApp, OsloStackOptions } from '../examples/main';
import { renderChangeReport, renderLoadReport, rehearsePrerequisites } from '../lib/cli/rehearse';
import { ChangeReport, LoadReport, Rehearsal, ServiceChangeReport } from '../lib/fleet/rehearsal';
import { describeWhenPresent } from './support/describe-when';
import { eventually } from './support/eventually';

/*
 * The changes a mesh lives through, applied one after the other with terraform onto the default
 * example on real Debian 12 hosts while web1 sends a steady, bounded load through its local ports:
 * each must fail no request, end with every provider in service at its address and port in web1's
 * HAProxy (read from the admin socket) with the slot count unchanged, and never leave fewer ZooKeeper
 * members up than a quorum. Then a provider host and the ZooKeeper leader's host are killed under load.
 *
 * `npm run figures:changes` runs this file alone; it prints the README's table at the end.
 */
const describeFleet = describeWhenPresent('change figures', rehearsePrerequisites());

const MINUTE = 60_000;
const made: string[] = [];
afterAll(() => made.forEach((dir) => rmSync(dir, { recursive: true, force: true })));
const LOAD = { loadSeconds: 600, loadRequests: 40000, settleSeconds: 180 };
const PACKAGE_ROOT = join(__dirname, '..');

function synthesize(options: OsloStackOptions): string {
  const outdir = mkdtempSync(join(tmpdir(), 'change-figures-'));
  made.push(outdir);
  buildApp(outdir, options).synth();
  return outdir;
}

/**
 * The same example synthesized by the next version of this package, as a user who upgrades it would:
 * a copy of the package with another version, whose agents' archive is a new one.
 */
function synthesizeWithNextVersion(options: OsloStackOptions, version: string): string {
  const copy = mkdtempSync(join(tmpdir(), 'next-package-'));
  made.push(copy);
  for (const entry of ['bin', 'lib', 'examples', 'tsconfig.json', 'tsconfig.dev.json']) cpSync(join(PACKAGE_ROOT, entry), join(copy, entry), { recursive: true });
  const manifest = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(copy, 'package.json'), `${JSON.stringify({ ...manifest, version }, null, 2)}\n`);
  symlinkSync(join(PACKAGE_ROOT, 'node_modules'), join(copy, 'node_modules'));
  const outdir = join(copy, 'cdktf.out');
  const r = spawnSync(
    process.execPath,
    [join(PACKAGE_ROOT, 'node_modules/ts-node/dist/bin.js'), '-T', '-P', 'tsconfig.dev.json', '-e', `require('./examples/main').buildApp(${JSON.stringify(outdir)}, ${JSON.stringify(options)}).synth()`],
    { cwd: copy, encoding: 'utf8', timeout: 5 * MINUTE },
  );
  if (r.status !== 0) throw new Error(`synth with version ${version} exited ${r.status}: ${r.stderr}`);
  return outdir;
}

interface Row {
  readonly what: string;
  readonly report: LoadReport;
  /** Seconds of the apply, for a change. */
  readonly applySeconds?: number;
}

describeFleet('changes under load on real hosts, one after the other, with terraform', () => {
  let rehearsal: Rehearsal;
  const rows: Row[] = [];
  const address = (host: string, port = 8080) => `${rehearsal.fleet.host(host).address}:${port}`;

  beforeAll(async () => {
    rehearsal = new Rehearsal({ outdir: synthesize({}), log: (line) => process.stderr.write(`changes: ${line}\n`) });
    const apply = await rehearsal.start();
    if (apply.exitCode !== 0) throw new Error(`the first apply exited ${apply.exitCode}:\n${apply.output.slice(-6000)}\n${await rehearsal.diagnose(apply.output)}`);
    await eventually('both providers in service on web1', async () => {
      const s = await rehearsal.status();
      return s.consumers.some((c) => c.service === 'user-service' && c.servers.filter((x) => x.up).length === 2);
    }, 3 * MINUTE, 1000);
  }, 30 * MINUTE);

  afterAll(async () => {
    if (rows.length > 0) {
      console.log(`change figures:\n${figuresTable(rows)}`);
    }
    await rehearsal?.destroy();
  }, 5 * MINUTE);

  /** Applies a synthesis under load and checks what every change must keep. */
  async function change(what: string, outdir: string, expected: () => Record<string, string[]>, quorum: number): Promise<ChangeReport> {
    const report = await rehearsal.change({ outdir, ...LOAD });
    console.log(`${what}${renderChangeReport(report)}`);
    if (report.applyExitCode !== 0) throw new Error(`${what}: the apply exited ${report.applyExitCode}:\n${report.applyOutput.slice(-6000)}\n${await rehearsal.diagnose(report.applyOutput)}`);
    rows.push({ what, report, applySeconds: report.applySeconds });
    expectKept(what, report, expected());
    expect({ what, fewestMembersUp: (report.fewestMembersUp ?? 0) >= quorum }).toEqual({ what, fewestMembersUp: true });
    return report;
  }

  /** No failed request; the expected providers, and only they, in service at their address and port; slots unchanged. */
  function expectKept(what: string, report: LoadReport, expected: Record<string, string[]>): void {
    for (const s of report.services) {
      expect({ what, service: s.service, failures: s.failures, failuresByStatus: s.failuresByStatus }).toEqual({ what, service: s.service, failures: 0, failuresByStatus: {} });
      expect({ what, service: s.service, requests: s.requests > 20 }).toEqual({ what, service: s.service, requests: true });
      expect({ what, service: s.service, back: s.backInServiceSeconds !== null, notInService: s.notInService }).toEqual({ what, service: s.service, back: true, notInService: [] });
      expect({ what, service: s.service, slots: s.slotsAfter }).toEqual({ what, service: s.service, slots: s.slotsBefore });
    }
    expect(Object.fromEntries(report.services.map((s) => [s.service, [...s.providers].sort()]))).toEqual(
      Object.fromEntries(Object.entries(expected).filter(([service]) => report.services.some((s) => s.service === service)).map(([service, p]) => [service, [...p].sort()])),
    );
  }

  /** What web1's HAProxy holds now (admin socket): the servers with an address, per service. */
  async function servedOnWeb1(): Promise<Record<string, string[]>> {
    const s = await rehearsal.status();
    return Object.fromEntries(s.consumers.filter((c) => c.hostname === 'web1').map((c) => [c.service, c.servers.map((x) => `${x.address}:${x.port}${x.up ? '' : ' DOWN'}`).sort()]));
  }

  const base: OsloStackOptions = { healthCheckRise: 5 };
  const users = () => ['app1', 'app2'].map((h) => address(h));

  test('a health-check change on every sidecar host', async () => {
    await change('health check rise 3 → 5 (every sidecar host)', synthesize(base), () => ({ 'user-service': users() }), 2);
    expect(JSON.parse(await rehearsal.fleet.host('app2').readFile('/etc/smartstack/nerve.conf.json')).services['user-service'].checks[0].rise).toBe(5);
  }, 20 * MINUTE);

  test('a new provider host', async () => {
    const report = await change('new provider host (app3)', synthesize({ ...base, thirdProvider: true }), () => ({ 'user-service': [...users(), address('app3')] }), 2);
    expect(report.addedHosts).toEqual(['app3']);
    expect((await servedOnWeb1())['user-service']).toEqual([...users(), address('app3')].sort());
  }, 20 * MINUTE);

  test('a provider host removed (out of the stack, then powered off)', async () => {
    const report = await change('provider host removed (app3)', synthesize(base), () => ({ 'user-service': users() }), 2);
    expect(report.retiredHosts).toEqual(['app3']);
    expect(rehearsal.fleet.host('app3').running).toBe(false);
    // Out of web1's HAProxy once its registration is gone: at once when nerve deletes it at the
    // power-off, at the latest when its ZooKeeper session expires (nerve's 32 s).
    let last: string[] | undefined;
    await eventually('app3 out of web1\'s HAProxy', async () => {
      last = (await servedOnWeb1())['user-service'];
      return JSON.stringify(last) === JSON.stringify(users().sort()) || undefined;
    }, 60_000, 1000).catch((e: Error) => {
      throw new Error(`${e.message}: web1 serves ${JSON.stringify(last)}`);
    });
  }, 20 * MINUTE);

  test('a new service consumed', async () => {
    await change('new service consumed (order-service on app1, app2 → web1)', synthesize({ ...base, orderService: true }), () => ({ 'user-service': users() }), 2);
    const served = await eventually('order-service served on web1', async () => {
      const s = await servedOnWeb1();
      return s['order-service']?.length === 2 ? s : undefined;
    }, 2 * MINUTE, 1000);
    expect(served['order-service']).toEqual(['app1', 'app2'].map((h) => address(h, 8081)).sort());
    const answer = await rehearsal.fleet.host('web1').exec('curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1:3211/health');
    expect(answer.stdout).toBe('200');
  }, 20 * MINUTE);

  const withOrders: OsloStackOptions = { ...base, orderService: true };
  const both = () => ({ 'user-service': users(), 'order-service': ['app1', 'app2'].map((h) => address(h, 8081)) });

  test('a zoo.cfg change that rolls the ensemble one member at a time', async () => {
    await change('zoo.cfg change (snapCount), rolls the ensemble', synthesize({ ...withOrders, snapCount: 50000 }), both, 2);
    for (const h of ['zk1', 'zk2', 'zk3']) expect(await rehearsal.fleet.host(h).readFile('/etc/zookeeper/smartstack/zoo.cfg')).toMatch(/^snapCount=50000$/m);
  }, 20 * MINUTE);

  const next = `${(JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version}-next.1`;

  test('a new version of the agents\' package, which every sidecar host takes', async () => {
    await change(`agents' package ${next} (rolls every sidecar host)`, synthesizeWithNextVersion({ ...withOrders, snapCount: 50000 }, next), both, 2);
    for (const h of ['app1', 'app2', 'web1']) {
      const installed = await rehearsal.fleet.host(h).execChecked('cat "$(dirname "$(readlink -f /usr/local/bin/smartstack)")/../package.json"');
      expect({ host: h, version: (JSON.parse(installed) as { version: string }).version }).toEqual({ host: h, version: next });
    }
  }, 20 * MINUTE);

  test('the ensemble grown from 3 to 5 members', async () => {
    const report = await change('ensemble grown 3 → 5 members', synthesizeWithNextVersion({ ...withOrders, snapCount: 50000, members: 5 }, next), both, 2);
    expect(report.addedHosts.sort()).toEqual(['zk4', 'zk5']);
    const status = await eventually('five members serving', async () => {
      const s = await rehearsal.status();
      return s.members.filter((m) => m.mode === 'leader' || m.mode === 'follower').length === 5 ? s : undefined;
    }, 3 * MINUTE, 1000);
    expect(status.members.map((m) => m.mode).sort()).toEqual(['follower', 'follower', 'follower', 'follower', 'leader']);
  }, 25 * MINUTE);

  test('the ZooKeeper leader\'s host killed under load', async () => {
    const leader = (await rehearsal.status()).members.find((m) => m.mode === 'leader')!.hostname;
    const report = await rehearsal.disrupt({ description: `${leader} (the leader) killed`, action: () => rehearsal.fleet.host(leader).kill(), ...LOAD, settleSeconds: 120 });
    console.log(renderLoadReport(`${leader} (the leader) killed under load`, report));
    rows.push({ what: `ZooKeeper leader's host killed (${leader})`, report });
    expectKept('leader killed', report, both());
    const status = await eventually('a new leader and three followers', async () => {
      const s = await rehearsal.status();
      const modes = s.members.map((m) => m.mode).filter((m) => m !== '').sort().join();
      return modes === 'follower,follower,follower,leader' ? s : undefined;
    }, 2 * MINUTE, 1000);
    expect(status.members.find((m) => m.hostname === leader)?.mode ?? '').toBe('');
  }, 20 * MINUTE);

  test('a provider host killed under load: out of HAProxy within detection plus session expiry', async () => {
    const report = await rehearsal.disrupt({ description: 'app2 killed', action: () => rehearsal.fleet.host('app2').kill(), ...LOAD, settleSeconds: 120 });
    console.log(renderLoadReport('app2 killed under load', report));
    rows.push({ what: 'provider host killed (app2)', report });
    expectKept('provider killed', report, { 'user-service': [address('app1')], 'order-service': [address('app1', 8081)] });
    const nerve = JSON.parse(await rehearsal.fleet.host('app1').readFile('/etc/smartstack/nerve.conf.json')) as { services: Record<string, { checks: Array<{ rise: number; fall: number; timeout?: number }>; check_interval?: number }>; zk_session_timeout?: number };
    // nerve's session outlives its host by the session timeout; then synapse takes the server out.
    const sessionSeconds = nerve.zk_session_timeout ?? 32;
    for (const s of report.services) {
      const [gone] = s.gone;
      expect({ service: s.service, provider: gone?.provider }).toEqual({ service: s.service, provider: address('app2', s.service === 'user-service' ? 8080 : 8081) });
      expect(gone.downAfterSeconds).not.toBeNull();
      expect(gone.removedAfterSeconds).not.toBeNull();
      expect(gone.removedAfterSeconds!).toBeLessThanOrEqual(sessionSeconds + 60);
    }
    expect((await servedOnWeb1())['user-service']).toEqual([address('app1')]);
  }, 20 * MINUTE);
});

/** The README's table: one row per change, the requests and failures summed over the services. */
function figuresTable(rows: readonly Row[]): string {
  const sum = (services: readonly ServiceChangeReport[], pick: (s: ServiceChangeReport) => number) => services.reduce((n, s) => n + pick(s), 0);
  const seconds = (n: number | null | undefined) => (n === null || n === undefined ? '—' : `${n.toFixed(0)} s`);
  const lines = [
    '| change, under load through web1 | apply | requests | failed | a provider out of rotation | all in service after | dead provider not UP / out of HAProxy after | slots | ZooKeeper members up, fewest |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |',
    ...rows.map((r) => {
      const services = r.report.services;
      const back = services.some((s) => s.backInServiceSeconds === null) ? 'not back' : seconds(Math.max(0, ...services.map((s) => s.backInServiceSeconds!)));
      const gone = services.flatMap((s) => s.gone.map((g) => `${seconds(g.downAfterSeconds)} / ${seconds(g.removedAfterSeconds)}`));
      return [
        r.what,
        seconds(r.applySeconds),
        sum(services, (s) => s.requests),
        sum(services, (s) => s.failures),
        seconds(Math.max(0, ...services.map((s) => s.outOfServiceSeconds))),
        back,
        [...new Set(gone)].join(', ') || '—',
        [...new Set(services.map((s) => s.slotsAfter))].join(', '),
        `${r.report.fewestMembersUp} of ${r.report.members}`,
      ].join(' | ').replace(/^/, '| ').concat(' |');
    }),
  ];
  return `${lines.join('\n')}\n`;
}
