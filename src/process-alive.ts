// Whether a process id still names a running process: how zkluks tells a killed run's leftovers
// (temp files, private directories) from those of a run still going.

/** True when `pid` runs (also when it runs as another user, so that its files are left alone). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
