// The recovery key escrow: encrypted to an age recipient with the standard `age` tool, so its owner
// can decrypt it on any machine (`age -d -i IDENTITY`). The key goes to age only on stdin.
import { CommandFailedError, UsageError, ZkluksError } from '../errors.ts';
import type { Runner } from '../exec.ts';
import { AGE_RECIPIENT, type AgeEscrow } from './token.ts';

export function checkRecipient(recipient: string): string {
  if (!AGE_RECIPIENT.test(recipient)) {
    throw new UsageError(
      `Failed to use escrow recipient '${recipient}': not an age recipient (age1… , 62 characters)`,
      {
        hint: 'age-keygen -o key.txt (prints the public key to use as RECIPIENT)',
      },
    );
  }
  return recipient;
}

export async function escrowToAge(runner: Runner, recipient: string, key: string): Promise<AgeEscrow> {
  try {
    const r = await runner('age', ['--encrypt', '--armor', '--recipient', checkRecipient(recipient)], {
      input: key,
      secretInput: true,
    });
    return { format: 'age', recipient, ciphertext: r.stdout };
  } catch (error) {
    if (error instanceof CommandFailedError) {
      throw new ZkluksError(`Failed to encrypt the recovery key to '${recipient}': ${error.stderr.trim()}`, {
        hint: 'apt-get install age',
      });
    }
    throw error;
  }
}

export async function openAgeEscrow(
  runner: Runner,
  escrow: AgeEscrow,
  identityFile: string,
): Promise<string> {
  const r = await runner('age', ['--decrypt', '--identity', identityFile], {
    input: escrow.ciphertext,
    reject: false,
  });
  if (r.exitCode !== 0) {
    throw new ZkluksError(
      `Failed to decrypt the escrowed recovery key with identity '${identityFile}': ${r.stderr.trim().split('\n').pop() ?? `age exited ${r.exitCode}`}`,
      { hint: `use the identity whose public key is ${escrow.recipient} (age-keygen -y IDENTITY prints it)` },
    );
  }
  return r.stdout.trim();
}
