import { spawnSync } from 'child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { CloudConfig } from '../lib';
import { fileContent } from './support/cloud-config-files';

/**
 * The disk step of a host's apply, run for real on loop devices: a blank disk is formatted and
 * mounted, and a disk that holds anything is never formatted. Each run is in a private mount
 * namespace over an overlay of /etc, so this machine's mounts and fstab are not touched.
 */
const canRun = process.getuid?.() === 0 && ['losetup', 'unshare', 'blkid', 'mkfs.ext4', 'mkfs.xfs', 'sfdisk'].every((p) => spawnSync('sh', ['-c', `command -v ${p}`]).status === 0);
const describeAsRoot = canRun ? describe : describe.skip;
if (!canRun) {
  const message = 'host-steps-disks.real: skipped: needs root and losetup, unshare, blkid, mkfs.ext4, mkfs.xfs (xfsprogs), sfdisk';
  if (process.env.CI === 'true') throw new Error(`${message}; under CI=true it must run`);
  console.warn(message);
}

interface Disk {
  readonly file: string;
  readonly loop: string;
}

describeAsRoot('the disk step of an apply, on real block devices', () => {
  const work = mkdtempSync(join(tmpdir(), 'smartstack-disks-'));
  const disks: Disk[] = [];

  const newDisk = (name: string): Disk => {
    const file = join(work, `${name}.img`);
    spawnSync('truncate', ['-s', '512M', file]);
    const loop = spawnSync('losetup', ['--find', '--show', file], { encoding: 'utf8' }).stdout.trim();
    if (!loop.startsWith('/dev/loop')) throw new Error(`losetup gave no device for ${file}`);
    const disk = { file, loop };
    disks.push(disk);
    return disk;
  };

  /** Renders the steps of a document with one filesystem and runs them; `before` runs first in the same namespace. */
  const apply = (device: string, mountPoint: string, before = '', after = ''): { status: number | null; output: string } => {
    const cc = new CloudConfig();
    cc.addFilesystem({ device, label: 'zk-data', mountPoint });
    const steps = join(work, 'host-steps.sh');
    writeFileSync(steps, fileContent(cc.render(), '/usr/lib/smartstack/host-steps.sh'));
    // /etc of this namespace is an overlay: the steps rewrite its fstab, this machine's stays.
    const overlay = mkdtempSync(join(work, 'etc-'));
    mkdirSync(join(overlay, 'upper'));
    mkdirSync(join(overlay, 'work'));
    writeFileSync(join(overlay, 'upper', 'fstab'), '# test fstab\n');
    const script = [
      'set -e',
      `mount -t overlay overlay -o lowerdir=/etc,upperdir=${overlay}/upper,workdir=${overlay}/work /etc`,
      before,
      `set +e; sh ${steps}; status=$?; set -e`,
      after,
      'exit $status',
    ].join('\n');
    const result = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { encoding: 'utf8', timeout: 90000 });
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
  };

  afterAll(() => {
    for (const d of disks) spawnSync('losetup', ['-d', d.loop]);
    rmSync(work, { recursive: true, force: true });
  });

  test('a blank disk is formatted, labelled and mounted noatime; fstab names it once, also after a second apply', () => {
    const disk = newDisk('blank');
    const dir = join(work, 'mnt-blank');
    const first = apply(disk.loop, dir, '', `findmnt -n -o SOURCE,FSTYPE,OPTIONS --mountpoint ${dir}; cat /etc/fstab; touch ${dir}/marker`);
    expect(first.output).toContain(`disk zk-data: ${disk.loop} on ${dir}`);
    expect(first.status).toBe(0);
    expect(first.output).toMatch(new RegExp(`${disk.loop} +ext4 +\\S*noatime`));
    expect(first.output).toContain(`${disk.loop} ${dir} ext4 defaults,noatime,nofail 0 2`);
    expect(spawnSync('blkid', ['-p', '-o', 'value', '-s', 'LABEL', disk.loop], { encoding: 'utf8' }).stdout.trim()).toBe('zk-data');

    // Applied again (the mount namespace is new: the disk is not mounted): the data stays.
    const uuid = spawnSync('blkid', ['-p', '-o', 'value', '-s', 'UUID', disk.loop], { encoding: 'utf8' }).stdout.trim();
    const second = apply(disk.loop, dir, '', `ls ${dir}; grep -c ' ${dir} ' /etc/fstab`);
    expect(second.status).toBe(0);
    expect(second.output).toContain('marker');
    expect(second.output).toMatch(/^1$/m);
    expect(spawnSync('blkid', ['-p', '-o', 'value', '-s', 'UUID', disk.loop], { encoding: 'utf8' }).stdout.trim()).toBe(uuid);
  });

  test.each([
    ['another filesystem (xfs)', (d: Disk) => `mkfs.xfs -q ${d.file}`, /TYPE=xfs/],
    ['a partition table', (d: Disk) => `printf 'label: gpt\\n,\\n' | sfdisk -q ${d.file}`, /PTTYPE=gpt/],
  ])('a disk that holds %s is never formatted: the apply fails, naming the device', (_, prepare, shown) => {
    const disk = newDisk(`used-${disks.length}`);
    expect(spawnSync('sh', ['-c', prepare(disk)]).status).toBe(0);
    const before = spawnSync('sha256sum', [disk.file], { encoding: 'utf8' }).stdout.split(' ')[0];
    const result = apply(disk.loop, join(work, `mnt-${disks.length}`));
    expect(result.status).toBe(1);
    expect(result.output).toContain(`step 'disk zk-data: ${disk.loop} on`);
    expect(result.output).toContain(`${disk.loop} holds`);
    expect(result.output).toMatch(shown);
    expect(result.output).toContain('not a ext4 filesystem; it is left as it is');
    expect(spawnSync('sha256sum', [disk.file], { encoding: 'utf8' }).stdout.split(' ')[0]).toBe(before);
  });

  test('a missing device fails the apply, naming it, and mounts nothing', () => {
    const dir = join(work, 'mnt-missing');
    mkdirSync(dir);
    const result = apply('/dev/disk/by-id/virtio-not-attached', dir, '', `mountpoint -q ${dir} && echo MOUNTED || true`);
    expect(result.status).toBe(1);
    expect(result.output).toContain("step 'disk zk-data: /dev/disk/by-id/virtio-not-attached on");
    expect(result.output).toContain('device /dev/disk/by-id/virtio-not-attached is missing');
    expect(result.output).not.toContain('MOUNTED');
  }, 60000);

  test('a mount point that another device already holds fails the apply', () => {
    const disk = newDisk('wanted');
    const other = newDisk('other');
    spawnSync('mkfs.ext4', ['-q', other.loop]);
    const dir = join(work, 'mnt-taken');
    mkdirSync(dir);
    const result = apply(disk.loop, dir, `mount ${other.loop} ${dir}`);
    expect(result.status).toBe(1);
    expect(result.output).toContain(`${dir} is already mounted from another device (${other.loop})`);
  });
});
