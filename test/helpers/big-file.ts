import { once } from 'node:events';
import { createWriteStream } from 'node:fs';

/**
 * Writes a products file of about `bytes` bytes (newline-delimited, valid records, 50,000
 * distinct SKUs), streaming: the writer holds one record at a time.
 */
export async function writeProductsFile(
  path: string,
  bytes: number,
): Promise<{ records: number; bytes: number }> {
  const out = createWriteStream(path);
  let written = 0;
  let records = 0;
  while (written < bytes) {
    const line = `${JSON.stringify({
      product_sku: `SKU-${String(records % 50_000).padStart(6, '0')}`,
      description: `Product ${records}: a reasonably long description, as catalogues have them`,
      unit_amount: `${(records % 1000) + 1}.${String(records % 100).padStart(2, '0')}`,
      supplier: `Supplier ${records % 97}`,
    })}\n`;
    records++;
    written += Buffer.byteLength(line);
    if (!out.write(line)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return { records, bytes: written };
}
