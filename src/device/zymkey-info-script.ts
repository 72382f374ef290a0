// The one fixed Python script the zymbit backend runs (as `python3 -`, script on stdin) to read
// model, serial, firmware, binding and perimeter through Zymbit's `zymkey` module, and the parser
// of its JSON report. Every piece that cannot be read is reported as an error string, never raised.
import type { BindingInfo, PerimeterChannel, ZymkeyInfo } from './port.ts';

export const ZYMKEY_INFO_SCRIPT = String.raw`
import json, sys
out = {"module": False, "client": False, "model": None, "serial": None, "firmware": None,
       "binding": None, "perimeter": None, "errors": {}}
def failed(key, e):
    out["errors"][key] = "%s: %s" % (type(e).__name__, e)
try:
    import zymkey
    out["module"] = True
except Exception as e:
    failed("import", e)
    zymkey = None
client = getattr(zymkey, "client", None) if zymkey is not None else None
if zymkey is not None and client is None:
    out["errors"]["client"] = "zymkey.client is None: zkOpen failed (module unreachable or zkifc not running)"
if client is not None:
    out["client"] = True
    def read(key, fn):
        try:
            out[key] = fn()
        except Exception as e:
            failed(key, e)
    read("model", lambda: str(client.get_model_number()))
    read("serial", lambda: str(client.get_serial_number()))
    read("firmware", lambda: str(client.get_firmware_version()))
    read("binding", lambda: [bool(v) for v in client.get_current_binding_info()])
    read("perimeter", lambda: [int(t) for t in client.get_perimeter_detect_info()])
sys.stdout.write(json.dumps(out) + "\n")
`;

export interface ZymkeyInfoReport {
  /** The `zymkey` module imported. */
  module: boolean;
  /** `zymkey.client` exists (zkOpen succeeded). */
  client: boolean;
  info: ZymkeyInfo;
  binding: BindingInfo;
  perimeter: PerimeterChannel[];
  /** What could not be read, by piece (import, client, model, …), with Python's error text. */
  errors: Record<string, string>;
}

const UNKNOWN_PERIMETER: PerimeterChannel[] = [
  { channel: 0, action: 'unknown', firstBreach: null },
  { channel: 1, action: 'unknown', firstBreach: null },
];

/** Everything unknown, with the reason. */
export function unknownReport(why: string): ZymkeyInfoReport {
  return {
    module: false,
    client: false,
    info: { model: 'unknown', serial: 'unknown', firmware: 'unknown' },
    binding: { mode: 'unknown', bound: null },
    perimeter: UNKNOWN_PERIMETER.map((c) => ({ ...c })),
    errors: { script: why },
  };
}

const text = (v: unknown): string => (typeof v === 'string' && v.trim() !== '' ? v.trim() : 'unknown');

/** Parse the script's stdout. Anything malformed degrades to "unknown", never throws. */
export function parseZymkeyInfoReport(stdout: string): ZymkeyInfoReport {
  let raw: unknown;
  try {
    raw = JSON.parse(stdout.trim().split('\n').pop() ?? '');
  } catch {
    return unknownReport(`the info script printed no JSON report: '${stdout.trim().slice(0, 200)}'`);
  }
  if (typeof raw !== 'object' || raw === null)
    return unknownReport('the info script printed an unexpected report');
  const r = raw as Record<string, unknown>;
  const errors: Record<string, string> = {};
  if (typeof r.errors === 'object' && r.errors !== null) {
    for (const [k, v] of Object.entries(r.errors)) if (typeof v === 'string') errors[k] = v;
  }
  let binding: BindingInfo = { mode: 'unknown', bound: null };
  if (Array.isArray(r.binding) && r.binding.length === 2 && r.binding.every((v) => typeof v === 'boolean')) {
    const [locked, bound] = r.binding as [boolean, boolean];
    binding = { mode: locked ? 'production' : 'developer', bound };
  }
  let perimeter = UNKNOWN_PERIMETER.map((c) => ({ ...c }));
  const stamps = r.perimeter;
  if (Array.isArray(stamps) && stamps.length >= 2 && stamps.every((t) => Number.isInteger(t) && t >= 0)) {
    // The API reports the epoch second of the first breach per channel, 0 = none. Actions cannot be read back.
    perimeter = ([0, 1] as const).map((channel) => {
      const t = stamps[channel] as number;
      return {
        channel,
        action: 'unknown' as const,
        firstBreach: t ? new Date(t * 1000).toISOString() : null,
      };
    });
  }
  return {
    module: r.module === true,
    client: r.client === true,
    info: { model: text(r.model), serial: text(r.serial), firmware: text(r.firmware) },
    binding,
    perimeter,
    errors,
  };
}
