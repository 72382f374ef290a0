// Boots the test kernel under QEMU (TCG; KVM is unusable on the build machines) with the serial
// console on pipes. It watches the console byte stream (a prompt has no newline) and answers a
// prompt once it appears, never earlier: typed-ahead text would be echoed before askpass turns echo off.
// The Zymkey is `zkluks sim serve` on the host, on the Unix socket the VM's virtio-serial port uses.
import { execa, type ResultPromise } from 'execa';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { bundle } from '../helpers/cli.ts';
import type { TestKernel } from './kernel.ts';

export interface BootOptions {
  kernel: TestKernel;
  initrd: string;
  disk: string;
  /** Extra kernel command-line words. */
  append?: string;
  /** The crypttab name of the root's mapping (root=/dev/mapper/<name>); default cryptroot. */
  rootName?: string;
  /** Unix socket of `zkluks sim serve`, attached as the virtio-serial port zymkey.sim. */
  simSocket?: string;
  /** Type `reply` followed by a newline when `prompt` appears on the console. */
  answer?: { prompt: string; reply: string };
  timeoutMs?: number;
  /** Let the guest's writes reach the disk image (default: a throwaway snapshot). */
  persist?: boolean;
  /** Kill the VM (like pulling the power) as soon as the console so far satisfies this. */
  killWhen?: (console: string) => boolean;
  /** Limit the disk to this many bytes per second (QEMU's throttling), so slow steps stay slow on a fast host. */
  diskBytesPerSecond?: number;
}

export interface BootResult {
  console: string;
  durationMs: number;
  timedOut: boolean;
  /** Milliseconds from start until the prompt appeared, when one was answered. */
  promptAtMs: number | null;
  /** Whether killWhen ended the boot. */
  killed: boolean;
}

export function bootVm(opts: BootOptions): Promise<BootResult> {
  const args = [
    '-accel',
    'tcg',
    '-m',
    '1024',
    '-smp',
    '2',
    '-nographic',
    '-nodefaults',
    '-no-reboot',
    '-serial',
    'stdio',
    '-kernel',
    opts.kernel.vmlinuz,
    '-initrd',
    opts.initrd,
    '-append',
    `console=ttyS0 root=/dev/mapper/${opts.rootName ?? 'cryptroot'} panic=-1 ${opts.append ?? ''}`.trim(),
    '-drive',
    `file=${opts.disk},format=raw,if=virtio${opts.persist ? '' : ',snapshot=on'}${
      opts.diskBytesPerSecond ? `,throttling.bps-total=${opts.diskBytesPerSecond}` : ''
    }`,
  ];
  if (opts.simSocket) {
    args.push(
      '-device',
      'virtio-serial-pci',
      '-chardev',
      `socket,id=zk,path=${opts.simSocket}`,
      '-device',
      'virtserialport,chardev=zk,name=zymkey.sim',
    );
  }
  const started = performance.now();
  const vm = spawn('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let promptAtMs: number | null = null;
  let timedOut = false;
  let killed = false;
  const onData = (chunk: Buffer) => {
    out += chunk.toString('latin1');
    if (opts.killWhen && !killed && opts.killWhen(out)) {
      killed = true;
      vm.kill('SIGKILL');
    }
    if (opts.answer && promptAtMs === null && out.includes(opts.answer.prompt)) {
      promptAtMs = performance.now() - started;
      vm.stdin.write(`${opts.answer.reply}\n`);
    }
  };
  vm.stdout.on('data', onData);
  vm.stderr.on('data', onData);
  const timer = setTimeout(() => {
    timedOut = true;
    vm.kill('SIGKILL');
  }, opts.timeoutMs ?? 120_000);
  return new Promise((resolve, reject) => {
    vm.on('error', reject);
    vm.on('close', () => {
      clearTimeout(timer);
      resolve({ console: out, durationMs: performance.now() - started, timedOut, promptAtMs, killed });
    });
  });
}

/**
 * Run `zkluks sim serve` for the simulator state `state` on a new socket in `dir` for the duration of
 * `fn` (QEMU connects as a client, so it listens first); returns what it logged too.
 */
export async function withSimulator<T>(
  state: string,
  dir: string,
  fn: (socket: string) => Promise<T>,
): Promise<{ value: T; log: string }> {
  const socket = join(dir, `sim-${Date.now()}.sock`);
  const server: ResultPromise = execa(
    process.execPath,
    [bundle, 'sim', 'serve', '--socket', socket, '--sim-state', state],
    { reject: false },
  );
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sim serve did not start:\n${log}`)), 15_000);
    server.stderr?.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  try {
    return { value: await fn(socket), log };
  } finally {
    server.kill('SIGTERM');
    log = String((await server).stderr);
  }
}
