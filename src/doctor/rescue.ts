// The rescue to do while the volume is still open, when the Zymkey will not unlock it again.
import { slotsWithoutZymkey, type WaysIn } from './ways-in.ts';

export function rescueNow(ways: WaysIn): string {
  const v = ways.volume;
  const backup = `cryptsetup luksHeaderBackup ${v} --header-backup-file /root/${ways.mapping ?? 'volume'}-header.img`;
  if (ways.recoverySlots.length > 0) {
    return `now, while the volume is open: check you still hold the recovery key of slot ${ways.recoverySlots.join('/')} ('zkluks recovery verify ${v}'); if not, 'zkluks recovery add ${v}' with the current passphrase; then '${backup}', and keep both off this Pi`;
  }
  const others = slotsWithoutZymkey(ways);
  if (others.length > 0) {
    // No token proves what opens these slots: the passphrase is the admin's to know.
    return `now, while the volume is open: 'zkluks recovery add ${v} --unlock-key-file FILE' with the passphrase of slot ${others.join('/')} in FILE (zkluks tests it; no token says whether anyone holds one), then '${backup}', and keep both off this Pi`;
  }
  const name = ways.mapping ?? 'NAME';
  return (
    `now, before any reboot: the volume key is only in memory. Run 'dmsetup table --showkeys ${name} | awk '{print $5}' | xxd -r -p > /run/vk.bin' ` +
    `and 'cryptsetup luksAddKey --volume-key-file /run/vk.bin ${v}' (type a new passphrase), 'shred -u /run/vk.bin', ` +
    `then 'zkluks recovery add ${v}' and '${backup}'`
  );
}
