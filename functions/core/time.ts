const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** `YYYYMMDD_HHmm` in UTC, the stamp in connector file names. */
export function fileStamp(at: Date): string {
  return `${at.getUTCFullYear()}${pad(at.getUTCMonth() + 1)}${pad(at.getUTCDate())}_${pad(at.getUTCHours())}${pad(at.getUTCMinutes())}`;
}

/** `YYYYMMDD` in UTC. */
export function dayStamp(at: Date): string {
  return fileStamp(at).slice(0, 8);
}

/** `YYYYMMDDTHHmmssZ` in UTC: sortable, safe in object names. */
export function compactTimestamp(at: Date): string {
  return at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
}

/** `YYYY/MM/DD/HHh` in UTC, the folders of `failed/`. */
export function hourPath(at: Date): string {
  return `${at.getUTCFullYear()}/${pad(at.getUTCMonth() + 1)}/${pad(at.getUTCDate())}/${pad(at.getUTCHours())}h`;
}
