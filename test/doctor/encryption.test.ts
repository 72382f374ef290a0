// The doctor's view of the encrypt-root journey: each state the issue names is recognised, with
// the step that gets the admin further.
import { describe, expect, it } from 'vitest';
import { checkEncryption } from '../../src/doctor/checks/encryption.ts';
import type { Facts } from '../../src/doctor/facts.ts';
import type { EncryptionFacts } from '../../src/doctor/gather-encryption.ts';

const UUID = '0b8f64e2-6b11-4d53-9b7a-2b3c4d5e6f70';
const PLAN = {
  ZKLUKS_ENC_UUID: UUID,
  ZKLUKS_ENC_NAME: 'cryptroot',
  ZKLUKS_ENC_DEVICE: 'PARTUUID=6c586e13-02',
};
const LEFT = ['/etc/zkluks/encrypt-root/plan.conf', '/etc/zkluks/encrypt-root/keys.sealed'];

function check(e: Partial<EncryptionFacts>, root = '/') {
  const encryption: EncryptionFacts = {
    plan: null,
    record: null,
    cmdlineRoot: 'PARTUUID=6c586e13-02',
    leftovers: [],
    volumeUuid: null,
    reencrypting: false,
    ...e,
  };
  return checkEncryption({ root, encryption } as unknown as Facts);
}

describe('doctor: encrypt-root journey', () => {
  it('says nothing on a system that never used encrypt-root', () => {
    expect(check({})).toEqual([]);
  });

  it('recognises "encryption armed"', () => {
    const [f] = check({ plan: PLAN, leftovers: LEFT, cmdlineRoot: '/dev/mapper/cryptroot' });
    expect(f).toMatchObject({ id: 'encryption.armed', severity: 'info', area: 'encryption' });
    expect(f?.summary).toContain(`the next boot encrypts the root in place as LUKS2 ${UUID}`);
  });

  it('names an arming whose cmdline.txt was never switched', () => {
    const [f] = check({ plan: PLAN, leftovers: LEFT });
    expect(f).toMatchObject({ id: 'encryption.arming-incomplete', severity: 'warning' });
  });

  it('recognises "encryption interrupted / resuming" from the header', () => {
    const [f] = check({ plan: PLAN, leftovers: LEFT, volumeUuid: UUID, reencrypting: true });
    expect(f).toMatchObject({ id: 'encryption.interrupted', severity: 'warning' });
    expect(f?.summary).toContain('the next boot resumes it');
  });

  it('recognises "encryption failed before it began" and says why', () => {
    const [f] = check({
      plan: PLAN,
      leftovers: LEFT,
      cmdlineRoot: '/dev/mapper/cryptroot',
      record: {
        state: 'not-started',
        reason: 'no-room',
        detail: 'the filesystem needs 45 MiB but only 32 MiB of /dev/vda1 remain',
      },
    });
    expect(f).toMatchObject({ id: 'encryption.failed-before-start', severity: 'error' });
    expect(f?.summary).toContain('the filesystem needs 45 MiB');
    expect(f?.hint).toContain('free space');
    expect(f?.evidence.join('\n')).toContain('reason=no-room');
  });

  it('recognises "encrypted; boot files still in the encrypting state"', () => {
    const [f] = check({
      plan: PLAN,
      leftovers: LEFT,
      cmdlineRoot: '/dev/mapper/cryptroot',
      volumeUuid: UUID,
      record: { state: 'encrypted', reason: 'ok', uuid: UUID, resumed: '1' },
    });
    expect(f).toMatchObject({ id: 'encryption.finish-pending', hint: 'zkluks encrypt-root --finish' });
    expect(f?.evidence.join('\n')).toContain('resumed after an interruption');
  });

  it('for a --root tree, names the tree and its device, and the Pi that boots it, never a reboot here', () => {
    const armed = check({ plan: PLAN, leftovers: LEFT, cmdlineRoot: '/dev/mapper/cryptroot' }, '/mnt');
    expect(armed[0]?.hint).toMatch(/^boot the Pi from this disk when ready/);
    const incomplete = check({ plan: PLAN, leftovers: LEFT }, '/mnt');
    expect(incomplete[0]?.hint).toBe(
      'zkluks encrypt-root --disarm --device DEVICE --root /mnt, then zkluks encrypt-root --device DEVICE --root /mnt (arms it again)',
    );
    const noRoom = check(
      {
        plan: PLAN,
        leftovers: LEFT,
        cmdlineRoot: '/dev/mapper/cryptroot',
        record: { state: 'not-started', reason: 'no-room', detail: 'no room' },
      },
      '/mnt',
    );
    expect(noRoom[0]?.hint).toContain('chroot /mnt apt-get clean');
    expect(noRoom[0]?.hint).toContain('zkluks encrypt-root --disarm --device DEVICE --root /mnt');
    const pending = check(
      { plan: PLAN, leftovers: LEFT, cmdlineRoot: '/dev/mapper/cryptroot', volumeUuid: UUID },
      '/mnt',
    );
    expect(pending[0]?.hint).toBe('zkluks encrypt-root --finish --device DEVICE --root /mnt');
  });

  it('is clean once --finish removed the encrypting boot files', () => {
    const [f] = check({ volumeUuid: UUID, record: { state: 'encrypted', reason: 'ok', uuid: UUID } });
    expect(f).toMatchObject({ id: 'encryption.done', severity: 'ok' });
  });
});
