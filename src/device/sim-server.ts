// `zkluks sim serve`: the simulator over a Unix socket, for a QEMU guest's initramfs that reaches
// the host through virtio-serial (QEMU connects as a client and keeps one connection for the VM's
// life). Line protocol, one request and one answer per line, many per connection:
//   UNSEAL <base64 sealed>  -> OK <base64 plain>  | ERR <reason> <message>
//   LOCK <base64 plain>     -> OK <base64 sealed> | ERR <reason> <message>
//   RAND <n>                -> OK <base64>        | ERR <reason> <message>
// The log names each request's verb and outcome, never key bytes.
import { lstatSync, rmSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { failureOf } from './failures.ts';
import type { ZymkeyPort } from './port.ts';

/** Longest request line accepted (a sealed 64-byte key is ~150 base64 characters). */
export const MAX_LINE = 1024 * 1024;

export interface SimServerOptions {
  socketPath: string;
  port: ZymkeyPort;
  /** One line per request, e.g. "UNSEAL ok" or "UNSEAL err self-destructed". */
  log?: (line: string) => void;
}

export interface SimServer {
  socketPath: string;
  close(): Promise<void>;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function decode(arg: string | undefined): Buffer | undefined {
  if (arg === undefined || arg === '' || arg.length % 4 !== 0 || !BASE64.test(arg)) return undefined;
  return Buffer.from(arg, 'base64');
}

/** Answer one request line; returns the answer line (without newline) and a log line. */
export async function answerRequest(
  port: ZymkeyPort,
  line: string,
): Promise<{ answer: string; log: string }> {
  const [verb = '', arg, ...rest] = line.trim().split(' ');
  const err = (reason: string, message: string, outcome = `err ${reason}`) => ({
    answer: `ERR ${reason} ${message.replace(/\s+/g, ' ')}`,
    log: `${verb || '(empty)'} ${outcome}`,
  });
  if (rest.length > 0) return err('unknown', `bad request: ${verb} takes one argument`, 'err bad-request');
  try {
    let out: Buffer;
    if (verb === 'UNSEAL' || verb === 'LOCK') {
      const data = decode(arg);
      if (!data) return err('unknown', `bad request: ${verb} needs base64 data`, 'err bad-request');
      out = verb === 'UNSEAL' ? await port.unseal(data) : await port.seal(data);
    } else if (verb === 'RAND') {
      if (!arg || !/^\d+$/.test(arg))
        return err('unknown', 'bad request: RAND needs a byte count', 'err bad-request');
      out = await port.randomBytes(Number(arg));
    } else {
      return err('unknown', 'bad request: verbs are UNSEAL, LOCK, RAND', 'err bad-request');
    }
    return { answer: `OK ${out.toString('base64')}`, log: `${verb} ok` };
  } catch (error) {
    const { reason, explanation } = failureOf(error);
    return err(reason, explanation);
  }
}

function serveConnection(socket: Socket, port: ZymkeyPort, log: (line: string) => void): void {
  let buffered = '';
  let chain: Promise<void> = Promise.resolve();
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, nl).replace(/\r$/, '');
      buffered = buffered.slice(nl + 1);
      // Answers go out in request order.
      chain = chain.then(async () => {
        const { answer, log: entry } = await answerRequest(port, line);
        log(entry);
        if (!socket.destroyed) socket.write(`${answer}\n`);
      });
    }
    if (buffered.length > MAX_LINE) {
      log('(oversized) err bad-request');
      socket.end(`ERR unknown bad request: line longer than ${MAX_LINE} bytes\n`);
      buffered = '';
    }
  });
  socket.on('error', () => socket.destroy());
}

function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) rmSync(path);
  } catch {
    // Nothing there.
  }
}

/** Listen on `socketPath` (mode 0600); resolves once connections are accepted. */
export async function startSimServer(opts: SimServerOptions): Promise<SimServer> {
  const log = opts.log ?? (() => undefined);
  removeStaleSocket(opts.socketPath);
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serveConnection(socket, opts.port, log);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(opts.socketPath, 0o600);
  return {
    socketPath: opts.socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          removeStaleSocket(opts.socketPath);
          resolve();
        });
      }),
  };
}
