// Where an existing key comes from: a file (read exactly, like cryptsetup --key-file), stdin ('-'),
// or a prompt on the terminal without echo. Also the 0600 file a new recovery key is written to.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { UsageError, ZkluksError } from '../errors.ts';
import { readStream } from '../read-stream.ts';

export interface PromptStreams {
  stdin: NodeJS.ReadStream;
  /** Where the prompt is written (the terminal's stderr). */
  stderr: { write(chunk: string): unknown };
}

/** Read a key file exactly (no newline stripping, as cryptsetup does); '-' reads stdin. */
export async function readKeyFile(
  path: string,
  what: string,
  stdin: NodeJS.ReadableStream = process.stdin,
): Promise<Buffer> {
  let key: Buffer;
  try {
    key = path === '-' ? await readStream(stdin) : await readFile(path);
  } catch (error) {
    // A file that does not exist is bad input (exit 2), like a missing device.
    const Failure = (error as NodeJS.ErrnoException).code === 'ENOENT' ? UsageError : ZkluksError;
    throw new Failure(
      `Failed to read the ${what} from '${path}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      {
        hint: `ls -l '${path}'`,
      },
    );
  }
  if (key.length === 0) throw new UsageError(`Failed to read the ${what} from '${path}': it is empty`);
  return key;
}

/**
 * Ask on the terminal without echo; the answer without its line ending. Without a terminal the
 * error's hint is `noTerminalHint`: the command's own way to pass the key from a file.
 */
export async function promptHidden(
  question: string,
  streams: PromptStreams,
  noTerminalHint = 'pass it with --unlock-key-file FILE (- reads stdin)',
): Promise<Buffer> {
  const { stdin, stderr } = streams;
  if (!stdin.isTTY) {
    throw new UsageError(`Failed to ask for ${question}: stdin is not a terminal`, {
      hint: noTerminalHint,
    });
  }
  stderr.write(`${question}: `);
  stdin.setRawMode(true);
  stdin.resume();
  const bytes: number[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        for (const b of chunk) {
          if (b === 0x0d || b === 0x0a) {
            stdin.off('data', onData);
            return resolve();
          }
          if (b === 0x03) {
            stdin.off('data', onData);
            return reject(new ZkluksError('Failed to read the passphrase: interrupted; nothing was changed'));
          }
          if (b === 0x7f || b === 0x08) bytes.pop();
          else bytes.push(b);
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    stderr.write('\n');
  }
  const answer = Buffer.from(bytes);
  bytes.fill(0);
  if (answer.length === 0) throw new UsageError(`Failed to read ${question}: nothing was typed`);
  return answer;
}

/** Write a new recovery key to a new 0600 file (never over an existing one). */
export async function writeRecoveryKeyFile(path: string, key: string): Promise<void> {
  try {
    await writeFile(path, key, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ZkluksError(
      `Failed to write the recovery key to '${path}': ${code === 'EEXIST' ? 'the file exists (zkluks never overwrites a key file)' : (code ?? (error as Error).message)}`,
      {
        hint:
          code === 'EEXIST'
            ? `choose a new path, or move '${path}' away first`
            : `ls -ld "$(dirname '${path}')"`,
      },
    );
  }
}

export async function removeRecoveryKeyFile(path: string): Promise<void> {
  await rm(path, { force: true });
}
