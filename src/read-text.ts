// A text file's content, or null when it cannot be read: for facts where a missing file is an answer.
import { readFileSync } from 'node:fs';

export function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}
