// Render JavaScript values as Lua source for a Prosody config file.
//
//   string  -> "quoted" (every byte outside printable ASCII escaped as \ddd)
//   number  -> decimal (must be finite)
//   boolean -> true / false
//   array   -> { v1, v2 }
//   object  -> { ["key"] = value }
//   luaRaw("text") -> text, verbatim (for the odd expression a test needs)
// null/undefined values inside objects are left out (Lua nil).

const RAW = Symbol('lua.raw');

export function luaRaw(text) {
  return { [RAW]: String(text) };
}

export function luaString(s) {
  const bytes = Buffer.from(String(s), 'utf8');
  let out = '"';
  for (const b of bytes) {
    if (b === 0x22) out += '\\"';
    else if (b === 0x5c) out += '\\\\';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += '\\' + String(b).padStart(3, '0');
  }
  return out + '"';
}

export function luaValue(v) {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'object' && RAW in v) return v[RAW];
  switch (typeof v) {
    case 'string':
      return luaString(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError(`cannot render ${v} as a Lua number`);
      return String(v);
    case 'bigint':
      return v.toString();
    case 'object': {
      if (Array.isArray(v)) {
        if (v.some((x) => x === null || x === undefined)) {
          throw new TypeError('arrays with holes cannot be rendered as Lua sequences');
        }
        return v.length === 0 ? '{ }' : `{ ${v.map(luaValue).join(', ')} }`;
      }
      const fields = Object.entries(v)
        .filter(([, x]) => x !== null && x !== undefined)
        .map(([k, x]) => `[${luaString(k)}] = ${luaValue(x)}`);
      return fields.length === 0 ? '{ }' : `{ ${fields.join(', ')} }`;
    }
    default:
      throw new TypeError(`cannot render a ${typeof v} as Lua`);
  }
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `name = value` lines for a config section; `indent` prefixes each line. */
export function luaOptions(options = {}, indent = '') {
  return Object.entries(options)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => {
      if (!IDENT.test(k)) throw new TypeError(`not a valid Prosody option name: ${JSON.stringify(k)}`);
      return `${indent}${k} = ${luaValue(v)}`;
    })
    .join('\n');
}
