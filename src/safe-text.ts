// Text read from a disk, a header or a file zkluks did not write (token fields, labels, crypttab
// fields, a boot record) may hold terminal escapes and line breaks: on a found disk they are chosen by
// whoever made it. Human output passes each such value through safeText, which shows every control
// character, line or paragraph separator and bidirectional-text control as a visible escape instead
// of letting the terminal act on it. JSON output needs none of this: JSON.stringify escapes them.

/** C0 and C1 controls and DEL, the Unicode line and paragraph separators, and bidi controls. */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function escape(ch: string): string {
  const code = ch.charCodeAt(0);
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, '0')}`
    : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * `text` with every character a terminal could act on (ESC, CR, LF, BEL, …) written as a visible
 * escape such as `\x1b`, so the result is one line that the terminal shows as it is. A backslash
 * stays as it is (crypttab writes a space as `\040`), so a value may contain text that looks like one
 * of these escapes.
 */
export function safeText(text: string): string {
  return text.replace(UNSAFE, escape);
}
