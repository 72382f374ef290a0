// zkluks remove VOLUME: wipe the Zymkey keyslot and its token. Refused when no passphrase or
// recovery keyslot would remain, unless told twice.
import { remove } from '../../keyslot/operations.ts';
import { removalCommand } from '../keyslot-command.ts';

export const removeCommand = removalCommand({
  remove,
  done: (volume) => `removed the Zymkey from '${volume}'`,
});
