import { spawn, spawnSync } from 'child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { buildApp } from '../examples/main';
import { renderChangeReport, renderRehearsalStatus, rehearsePrerequisites } from '../lib/cli/rehearse';
import { TerraformCommandResult } from '../lib/fleet';
import { ChangeReport, Rehearsal, RehearsalStatus } from '../lib/fleet/rehearsal';
import { connectionHosts } from '../lib/fleet/terraform-apply';
import { describeWhenPresent } from './support/describe-when';
import { eventually } from './support/eventually';

/*
 * `smartstack rehearse` as a user runs it on the default example (stack oslo, 10.10.0.x): six real
 * Debian 12 hosts (systemd containers on a bridge of the run's own in 198.18.0.0/15), the stack
 * applied with terraform with every address mapped onto the fleet, then a second synthesis that
 * changes the health check's rise on every sidecar host applied under load through web1's local port.
 */
const describeFleet = describeWhenPresent('rehearse tests', rehearsePrerequisites());

const MINUTE = 60_000;
const figures: string[] = [];
const made: string[] = [];
afterAll(() => made.forEach((dir) => rmSync(dir, { recursive: true, force: true })));


/** The consumer's HAProxy serves both providers, UP. */
function bothProvidersUp(status: RehearsalStatus, rehearsal: Rehearsal): boolean {
  const web1 = status.consumers.find((c) => c.hostname === 'web1' && c.service === 'user-service');
  const expected = ['app1', 'app2'].map((h) => `${rehearsal.fleet.host(h).address}:8080`);
  return !!web1 && expected.every((p) => web1.servers.some((s) => s.up && `${s.address}:${s.port}` === p));
}

describeFleet('smartstack rehearse: the default example on real hosts, then a change under load', () => {
  let rehearsal: Rehearsal;
  let apply: TerraformCommandResult;
  let second: string;
  const started = Date.now();

  beforeAll(async () => {
    const first = mkdtempSync(join(tmpdir(), 'rehearse-first-'));
    made.push(first);
    buildApp(first).synth();
    second = mkdtempSync(join(tmpdir(), 'rehearse-second-'));
    made.push(second);
    buildApp(second, { healthCheckRise: 5 }).synth();
    rehearsal = new Rehearsal({ outdir: first, log: (line) => process.stderr.write(`rehearse: ${line}\n`) });
    apply = await rehearsal.start();
    figures.push(`boot and first apply: ${((Date.now() - started) / 1000).toFixed(0)} s (apply ${apply.seconds.toFixed(0)} s, exit ${apply.exitCode})`);
  }, 30 * MINUTE);

  afterAll(async () => {
    if (figures.length > 0) console.log(`rehearse figures:\n  ${figures.join('\n  ')}`);
    await rehearsal?.destroy();
  }, 5 * MINUTE);

  test('the apply succeeds: a leader and two followers, both providers registered and in service on web1', async () => {
    if (apply.exitCode !== 0) throw new Error(`terraform exited ${apply.exitCode}:\n${apply.output.slice(-6000)}\n${await rehearsal.diagnose(apply.output)}`);
    const status = await eventually('the mesh up', async () => {
      const s = await rehearsal.status();
      const modes = s.members.map((m) => m.mode).sort().join();
      return modes === 'follower,follower,leader' && bothProvidersUp(s, rehearsal) ? s : undefined;
    }, 3 * MINUTE, 1000);
    console.log(renderRehearsalStatus(status));
    const registered = status.registry?.services.find((s) => s.name === 'user-service')?.instances.map((i) => i.host).sort();
    expect(registered).toEqual(['app1', 'app2'].map((h) => rehearsal.fleet.host(h).address).sort());
    expect(status.hosts.find((h) => h.hostname === 'zk1')).toMatchObject({ privateAddress: '10.10.0.11', address: rehearsal.fleet.address(11), roles: ['zookeeper member'] });
  }, 5 * MINUTE);

  test('nothing applied targets a 10.x address: the applied files, the hosts and every route', async () => {
    const applied = readFileSync(join(rehearsal.appliedStackDir, 'cdk.tf.json'), 'utf8');
    expect(applied.match(/(?<![\d.])10\.\d{1,3}\.\d{1,3}\.\d{1,3}/g)).toBeNull();
    for (const host of connectionHosts(JSON.parse(applied))) {
      const route = spawnSync('ip', ['-o', 'route', 'get', host], { encoding: 'utf8' }).stdout;
      expect(route).toContain(`dev ${rehearsal.fleet.network.bridge}`);
    }
    for (const h of rehearsal.fleet.hosts) {
      const files = await h.exec("grep -rEoh '(^|[^0-9.])10\\.[0-9]+\\.[0-9]+\\.[0-9]+' /etc/smartstack /etc/zookeeper/smartstack /var/lib/smartstack 2>/dev/null");
      expect({ host: h.name, found: files.stdout.trim() }).toEqual({ host: h.name, found: '' });
      // The hosts have no route to the stack's own network: nothing could leave for it.
      expect((await h.exec('ip route get 10.10.0.11')).status).not.toBe(0);
    }
    const membership = await rehearsal.fleet.host('zk1').readFile('/etc/zookeeper/smartstack/zoo.cfg.dynamic');
    expect(membership).toContain(`server.1=${rehearsal.fleet.address(11)}:2888:3888:participant;${rehearsal.fleet.address(11)}:2181`);
  }, 5 * MINUTE);

  test('a second synthesis with another rise, applied under load: applied, no request failed, both providers back in service', async () => {
    const changeStarted = Date.now();
    const report: ChangeReport = await rehearsal.change({ outdir: second, loadSeconds: 600, loadRequests: 20000, settleSeconds: 180 });
    const text = renderChangeReport(report);
    console.log(text);
    figures.push(`change under load: ${((Date.now() - changeStarted) / 1000).toFixed(0)} s in all${text.trimEnd().split('\n').map((l) => `\n  ${l}`).join('')}`);
    if (report.applyExitCode !== 0) throw new Error(`the second apply exited ${report.applyExitCode}:\n${report.applyOutput.slice(-6000)}\n${await rehearsal.diagnose(report.applyOutput)}`);
    const [users] = report.services;
    expect(report.services.map((s) => [s.service, s.consumers])).toEqual([['user-service', ['web1']]]);
    expect(users.providers.sort()).toEqual(['app1', 'app2'].map((h) => `${rehearsal.fleet.host(h).address}:8080`).sort());
    // Every request is a success or a counted failure, and none failed: providers roll one at a time,
    // nerve takes the new check without deregistering, synapse keeps its servers through its restart.
    expect(users.requests).toBeGreaterThan(20);
    expect(Object.values(users.failuresByStatus).reduce((a, b) => a + b, 0)).toBe(users.failures);
    expect(users.failuresByStatus).toEqual({});
    expect(users.failures).toBe(0);
    if (users.backInServiceSeconds === null) {
      throw new Error(`not every provider back in service (and staying so for 20 s) within 180 s of the apply: ${users.notInService.join(', ')} is not served by the consumer's HAProxy`);
    }
    // The change reached every sidecar host, and both providers serve afterwards.
    for (const h of ['app1', 'app2']) expect(JSON.parse(await rehearsal.fleet.host(h).readFile('/etc/smartstack/nerve.conf.json')).services['user-service'].checks[0].rise).toBe(5);
    expect(await rehearsal.fleet.host('web1').readFile('/etc/smartstack/synapse.conf.json')).toContain('rise 5');
    const after = await eventually('both providers in service', async () => {
      const s = await rehearsal.status();
      return bothProvidersUp(s, rehearsal) ? s : undefined;
    }, 2 * MINUTE, 1000);
    console.log(renderRehearsalStatus(after));
  }, 20 * MINUTE);
});

describeFleet('smartstack rehearse, stopped with SIGTERM', () => {
  test('SIGTERM during the apply destroys the fleet: no host, no bridge, no record left, and terraform ends too', async () => {
    const outdir = mkdtempSync(join(tmpdir(), 'rehearse-sigterm-'));
    made.push(outdir);
    buildApp(outdir).synth();
    const child = spawn(process.execPath, [join(__dirname, '..', 'bin', 'smartstack'), 'rehearse', outdir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const applying = new Promise<void>((resolve) => child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (/applying /.test(stderr)) resolve();
    }));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await Promise.race([applying, exited]);
    const runId = /run ([0-9a-f]{8}): bridge/.exec(stderr)?.[1];
    expect(runId).toBeDefined();
    await new Promise((r) => setTimeout(r, 5000)); // terraform is at work on the hosts
    child.kill('SIGTERM');
    expect(await exited).toBe(130);
    expect(stderr).toContain('SIGTERM: destroying the fleet');
    expect(stderr).toContain(`run ${runId}: cleaned up`);
    expect(existsSync(`/var/lib/cdktf-smartstack/fleet/runs/${runId}.json`)).toBe(false);
    expect(spawnSync('ip', ['link', 'show', `ssfl${runId}`]).status).not.toBe(0);
    const workDir = /work dir (\S+)/.exec(stderr)![1];
    expect(existsSync(workDir)).toBe(false);
    // No process left working in the run's terraform directory.
    const inWorkspace = readdirSync('/proc').filter((pid) => /^\d+$/.test(pid)).filter((pid) => {
      try {
        return readlinkSync(`/proc/${pid}/cwd`).startsWith(`${workDir}/terraform`);
      } catch {
        return false;
      }
    });
    expect(inWorkspace).toEqual([]);
  }, 10 * MINUTE);
});
