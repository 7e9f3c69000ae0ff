/**
 * Deterministic Retail API data with every awkward case the API contract allows: numbers as
 * JSON numbers or strings (with blanks), unknown extra fields, every datetime form, id gaps, a
 * sale listed twice, amounts with 9 decimals, zero list prices, invalid records now and then,
 * and sales that reference products or customers that do not exist (yet).
 */

export interface SandboxDataOptions {
  readonly seed: number;
  readonly sales: number;
  readonly products: number;
  readonly customers: number;
}

/** Small, fast, seedable PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');
export const skuOf = (n: number): string => `SKU-${pad(n, 6)}`;
export const customerIdOf = (n: number): string => `CUST-${pad(n, 6)}`;

/** A decimal amount in hundredths as JSON text, written the ways the API writes numbers. */
function decimalText(cents: number, r: () => number): string {
  const negative = cents < 0;
  const abs = Math.abs(cents);
  const plain = `${negative ? '-' : ''}${Math.floor(abs / 100)}.${pad(abs % 100, 2)}`;
  const form = r();
  if (form < 0.35) return JSON.stringify(plain); // "59.90"
  if (form < 0.6) return plain; // 59.90 as a JSON number, trailing zero kept
  if (form < 0.65) return JSON.stringify(` ${plain} `); // blanks around a string number
  return String(Number(plain)); // 59.9
}

function integerText(value: number, r: () => number): string {
  const form = r();
  if (form < 0.6) return String(value);
  if (form < 0.9) return JSON.stringify(String(value));
  return JSON.stringify(` ${value} `);
}

const ISO_FORMS = ['zulu', 'offset', 'millis', 'naive'] as const;

function datetimeText(epochMs: number, r: () => number): string {
  const iso = new Date(epochMs).toISOString(); // 2025-07-19T10:15:00.000Z
  const form = ISO_FORMS[Math.floor(r() * ISO_FORMS.length)] ?? 'zulu';
  switch (form) {
    case 'zulu':
      return `${iso.slice(0, 19)}Z`;
    case 'millis':
      return `${iso.slice(0, 19)}.${pad(Math.floor(r() * 1000), 3)}Z`;
    case 'naive':
      return iso.slice(0, 19).replace('T', ' ');
    case 'offset': {
      const offsetHours = [2, -5, 5.5, 9][Math.floor(r() * 4)] ?? 2;
      const local = new Date(epochMs + offsetHours * 3600_000).toISOString().slice(0, 19);
      const sign = offsetHours < 0 ? '-' : '+';
      const abs = Math.abs(offsetHours);
      return `${local}${sign}${pad(Math.floor(abs), 2)}:${pad((abs % 1) * 60, 2)}`;
    }
  }
}

const EXTRA_FIELDS = ['"channel":"web"', '"_meta":{"source":"pos","v":2}', '"tags":["promo"]', '"note":null'];

export class SandboxData {
  /** Each record's JSON text, in the order the API serves it. */
  readonly products: string[] = [];
  readonly customers: string[] = [];
  readonly sales: string[] = [];
  /** The id of each entry of `sales` (ascending; a sale listed twice appears twice). */
  readonly saleIds: number[] = [];
  private readonly productPrices: number[] = [];
  private readonly r: () => number;
  private nextSaleId = 1;
  private saleClockMs = Date.UTC(2025, 6, 1, 0, 0, 0);

  constructor(private readonly options: SandboxDataOptions) {
    this.r = prng(options.seed);
    this.appendProducts(options.products);
    this.appendCustomers(options.customers);
    this.appendSales(options.sales);
  }

  appendProducts(count: number): void {
    const r = this.r;
    for (let i = 0; i < count; i++) {
      const n = this.products.length + 1;
      const cents = r() < 0.02 ? 0 : 100 + Math.floor(r() * 19_900);
      this.productPrices.push(cents);
      const fields = [
        `"product_sku":${JSON.stringify(skuOf(n))}`,
        `"description":${r() < 0.05 ? 'null' : JSON.stringify(`Product ${n} – "${['Mug', 'Lamp', 'Tea', 'Sock'][n % 4]}"`)}`,
        `"unit_amount":${r() < 0.01 ? '"n/a"' : decimalText(cents, r)}`,
        `"supplier":${r() < 0.1 ? 'null' : JSON.stringify(`Supplier ${1 + Math.floor(r() * 40)}`)}`,
      ];
      if (r() < 0.05) fields.push(EXTRA_FIELDS[Math.floor(r() * EXTRA_FIELDS.length)] ?? '');
      this.products.push(`{${fields.join(',')}}`);
    }
  }

  appendCustomers(count: number): void {
    const r = this.r;
    for (let i = 0; i < count; i++) {
      const n = this.customers.length + 1;
      const emails = Array.from({ length: Math.floor(r() * 3) }, (_, k) => `c${n}.${k}@example.com`);
      const phones = Array.from(
        { length: Math.floor(r() * 3) },
        () => `+34 6${pad(Math.floor(r() * 1e8), 8)}`,
      );
      const fields = [
        `"customer_id":${JSON.stringify(customerIdOf(n))}`,
        `"emails":${JSON.stringify(emails)}`,
        `"phone_numbers":${JSON.stringify(phones)}`,
      ];
      if (r() < 0.05) fields.push(EXTRA_FIELDS[Math.floor(r() * EXTRA_FIELDS.length)] ?? '');
      this.customers.push(`{${fields.join(',')}}`);
    }
  }

  /** New sales: their ids are larger than every id already served. */
  appendSales(count: number): void {
    const r = this.r;
    const productCount = Math.max(1, this.options.products);
    const customerCount = Math.max(1, this.options.customers);
    for (let i = 0; i < count; i++) {
      const id = this.nextSaleId;
      this.nextSaleId += 1 + (r() < 0.15 ? 1 + Math.floor(r() * 6) : 0);
      this.saleClockMs += 1000 + Math.floor(r() * 60_000);
      // ~2% reference a customer or product beyond the known ones: "not (yet) known".
      const customer =
        r() < 0.02 ? customerCount + 1 + Math.floor(r() * 10) : 1 + Math.floor(r() * customerCount);
      const lines: string[] = [];
      let totalCents = 0;
      let previousSku = 0;
      const lineCount = 1 + Math.floor(r() * 4);
      for (let l = 0; l < lineCount; l++) {
        let sku = r() < 0.02 ? productCount + 1 + Math.floor(r() * 10) : 1 + Math.floor(r() * productCount);
        if (previousSku && r() < 0.08) sku = previousSku; // the same sku on two lines of one sale
        previousSku = sku;
        const quantity = 1 + Math.floor(r() * 5);
        const unit = this.productPrices[sku - 1] ?? 100 + Math.floor(r() * 5000);
        const discount = [0, 0, 0, 0.1, 0.25, -0.05][Math.floor(r() * 6)] ?? 0;
        const cents = Math.round(unit * quantity * (1 - discount));
        totalCents += cents;
        const amount =
          r() < 0.01 ? JSON.stringify(`${(cents / 100).toFixed(2)}3456789`) : decimalText(cents, r);
        lines.push(
          `{"product_sku":${JSON.stringify(skuOf(sku))},"quantity":${integerText(quantity, r)},"amount":${amount}}`,
        );
      }
      const fields = [
        `"id":${integerText(id, r)}`,
        `"datetime":${JSON.stringify(datetimeText(this.saleClockMs, r))}`,
        `"total_amount":${decimalText(totalCents, r)}`,
        `"customer_id":${JSON.stringify(customerIdOf(customer))}`,
        `"items":[${lines.join(',')}]`,
      ];
      if (r() < 0.05) fields.push(EXTRA_FIELDS[Math.floor(r() * EXTRA_FIELDS.length)] ?? '');
      let record = `{${fields.join(',')}}`;
      if (r() < 0.006) record = corrupt(record, r);
      this.sales.push(record);
      this.saleIds.push(id);
      if (r() < 0.005) {
        // the API does not promise uniqueness: the same sale served twice
        this.sales.push(record);
        this.saleIds.push(id);
      }
    }
  }
}

/** An invalid record that still matches the OpenAPI schema (wrong content, right JSON types). */
function corrupt(record: string, r: () => number): string {
  const kind = Math.floor(r() * 4);
  if (kind === 0) return record.replace(/"datetime":"[^"]*"/, '"datetime":"not a date"');
  if (kind === 1) return record.replace(/"quantity":("[^"]*"|\d+)/, '"quantity":"two"');
  if (kind === 2) return record.replace(/"amount":("[^"]*"|[\d.]+)/, '"amount":"12,50"');
  return record.replace(/"datetime":"[^"]*"/, '"datetime":"2025-02-30T10:00:00Z"');
}
