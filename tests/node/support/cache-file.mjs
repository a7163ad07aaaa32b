// Edits a flagrelay LMDB data file in place, from outside the relay, as damage or a foreign binary
// would: finds records by the documented layout (cache/src/record.cpp) and rewrites their bytes
// without moving anything, so LMDB's page structure stays intact.
//
//   offset 0 u32 magic "FLRY" | 4 u32 format version | 8 u64 CRC-64/XZ over [0,8) + [16,end)
//   16: u8 type (1 meta, 2 item); item: str kind, str key, str json (str = u32 length + bytes)
import fs from 'node:fs';

const MAGIC = Buffer.from('FLRY');

let table;
function crcTable() {
  if (table) return table;
  const poly = 0xc96c5795d7870f42n;
  table = new Array(256);
  for (let i = 0n; i < 256n; i++) {
    let crc = i;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1n ? (crc >> 1n) ^ poly : crc >> 1n;
    table[Number(i)] = crc;
  }
  return table;
}

/** CRC-64/XZ of the given buffers, in order. */
export function crc64(...buffers) {
  const t = crcTable();
  let crc = 0xffffffffffffffffn;
  for (const buf of buffers) {
    for (const byte of buf) crc = t[Number((crc ^ BigInt(byte)) & 0xffn)] ^ (crc >> 8n);
  }
  return crc ^ 0xffffffffffffffffn;
}

/** Every item record in the file: {offset, end, kind, key, jsonOffset, jsonLength}. */
export function findItemRecords(file) {
  const buf = fs.readFileSync(file);
  const out = [];
  for (let at = buf.indexOf(MAGIC); at !== -1; at = buf.indexOf(MAGIC, at + 1)) {
    if (at + 17 > buf.length || buf[at + 16] !== 2) continue;
    let pos = at + 17;
    const str = () => {
      if (pos + 4 > buf.length) return null;
      const len = buf.readUInt32LE(pos);
      if (pos + 4 + len > buf.length) return null;
      const start = pos + 4;
      pos = start + len;
      return { start, len };
    };
    const kind = str();
    const key = kind && str();
    const json = key && str();
    if (!json) continue;
    out.push({
      offset: at,
      end: pos,
      kind: buf.toString('utf8', kind.start, kind.start + kind.len),
      key: buf.toString('utf8', key.start, key.start + key.len),
      jsonOffset: json.start,
      jsonLength: json.len,
    });
  }
  return out;
}

/** Rewrites one record with `edit(buf, record)` applied, then fixes its checksum. */
export function editRecord(file, record, edit) {
  const buf = fs.readFileSync(file);
  edit(buf, record);
  const crc = crc64(buf.subarray(record.offset, record.offset + 8), buf.subarray(record.offset + 16, record.end));
  buf.writeBigUInt64LE(crc, record.offset + 8);
  fs.writeFileSync(file, buf);
}

/** Sets a record's format version (a "newer binary" wrote it). */
export function setFormatVersion(file, record, version) {
  editRecord(file, record, (buf) => buf.writeUInt32LE(version, record.offset + 4));
}
