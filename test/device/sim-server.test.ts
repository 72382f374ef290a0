// `zkluks sim serve`'s socket protocol, in process: request/answer lines, reasons, many requests on
// one connection and many connections.
import { mkdtempSync, rmSync, statSync, existsSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SimZymkey } from '../../src/device/sim.ts';
import { simArm, simBindLock, simBreach, simInit } from '../../src/device/sim-control.ts';
import { startSimServer, type SimServer } from '../../src/device/sim-server.ts';

let dir: string;
let state: string;
let server: SimServer;
let log: string[];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'zkluks-serve-'));
  state = join(dir, 'state');
  simInit(state);
  log = [];
  server = await startSimServer({
    socketPath: join(dir, 'sim.sock'),
    port: new SimZymkey(state),
    log: (l) => log.push(l),
  });
});
afterEach(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A client that sends lines and reads answer lines in order. */
async function connect(): Promise<{ ask(line: string): Promise<string>; socket: Socket }> {
  const socket = createConnection(server.socketPath);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.setEncoding('utf8');
  let buffered = '';
  const waiting: ((line: string) => void)[] = [];
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      waiting.shift()?.(line);
    }
  });
  return {
    socket,
    ask(line) {
      return new Promise((resolve) => {
        waiting.push(resolve);
        socket.write(`${line}\n`);
      });
    },
  };
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('sim serve', () => {
  it('answers LOCK then UNSEAL on one connection with the original bytes, socket mode 0600', async () => {
    expect(statSync(server.socketPath).mode & 0o777).toBe(0o600);
    const c = await connect();
    const locked = await c.ask(`LOCK ${b64('the key')}`);
    expect(locked).toMatch(/^OK [A-Za-z0-9+/=]+$/);
    const plain = await c.ask(`UNSEAL ${locked.slice(3)}`);
    expect(plain).toBe(`OK ${b64('the key')}`);
    const rand = await c.ask('RAND 48');
    expect(Buffer.from(rand.slice(3), 'base64')).toHaveLength(48);
    c.socket.destroy();
  });

  it('answers pipelined requests in order and serves several connections', async () => {
    const [a, b] = [await connect(), await connect()];
    const answers = await Promise.all([a.ask('RAND 1'), a.ask('RAND 2'), a.ask('RAND 3'), b.ask('RAND 4')]);
    expect(answers.map((x) => Buffer.from(x.slice(3), 'base64').length)).toEqual([1, 2, 3, 4]);
    a.socket.destroy();
    b.socket.destroy();
  });

  it('answers ERR with the reason once the module self-destructed, and the log holds no key bytes', async () => {
    const c = await connect();
    const locked = await c.ask(`LOCK ${b64('secret-key-bytes')}`);
    simBindLock(state);
    simArm(state, 0, 'self-destruct');
    simBreach(state, 0);
    const answer = await c.ask(`UNSEAL ${locked.slice(3)}`);
    expect(answer).toMatch(/^ERR self-destructed \S/);
    expect(answer).toContain('can never be unsealed again');
    expect(log).toEqual(['LOCK ok', 'UNSEAL err self-destructed']);
    expect(log.join('\n')).not.toContain(locked.slice(3, 20));
    c.socket.destroy();
  });

  it('answers ERR for a damaged blob and for malformed requests without dropping the connection', async () => {
    const c = await connect();
    expect(await c.ask(`UNSEAL ${Buffer.alloc(80, 1).toString('base64')}`)).toMatch(/^ERR corrupt-blob /);
    expect(await c.ask('UNSEAL not*base64')).toMatch(/^ERR unknown bad request/);
    expect(await c.ask('RAND lots')).toMatch(/^ERR unknown bad request/);
    expect(await c.ask('HELLO')).toMatch(/^ERR unknown bad request/);
    expect(await c.ask('RAND 2\r')).toMatch(/^OK /);
    c.socket.destroy();
  });

  it('close removes the socket file', async () => {
    await server.close();
    expect(existsSync(join(dir, 'sim.sock'))).toBe(false);
    server = await startSimServer({ socketPath: join(dir, 'sim.sock'), port: new SimZymkey(state) });
  });
});
