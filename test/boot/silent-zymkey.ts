// A Zymkey that never answers: a Unix socket that accepts QEMU's virtio-serial connection and reads
// every request, but writes nothing back, so the guest's zkunlockifs waits for a reply that never comes.
import { createServer, type Socket } from 'node:net';

/** Serve `socket` silently for the duration of `fn`; returns what the guest sent too. */
export async function withSilentZymkey<T>(
  socket: string,
  fn: (socket: string) => Promise<T>,
): Promise<{ value: T; received: string }> {
  let received = '';
  const clients = new Set<Socket>();
  const server = createServer((client) => {
    clients.add(client);
    client.on('data', (d: Buffer) => {
      received += d.toString('latin1');
    });
    client.on('error', () => clients.delete(client));
    client.on('close', () => clients.delete(client));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, resolve);
  });
  try {
    return { value: await fn(socket), received };
  } finally {
    for (const c of clients) c.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
