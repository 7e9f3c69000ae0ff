/**
 * An independent computation of what the pipeline must produce from the sandbox's records,
 * written from DATA_CONTRACT.md without the product's SQL or typing code: exact decimal
 * arithmetic on scaled BigInts, strict datetime parsing, latest-wins per key, the mart rules.
 */

const SCALE = 1_000_000_000n;

function text(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? value : String(value);
}

/**
 * A number's exact value as a BigInt scaled by 10^scale, or null when it is not exact at that
 * scale (plain or exponent form, JSON's grammar with blanks around). Works on the raw JSON text.
 */
function scaledValue(raw: string, scale: number): bigint | null {
  const m = /^([+-]?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(raw.trim());
  if (!m) return null;
  const digits = BigInt(`${m[2]}${m[3] ?? ''}`);
  const shift = scale + Number(m[4] ?? '0') - (m[3] ?? '').length;
  if (Math.abs(shift) > 80) return digits === 0n ? 0n : null;
  let value: bigint;
  if (shift >= 0) value = digits * 10n ** BigInt(shift);
  else {
    const divisor = 10n ** BigInt(-shift);
    if (digits % divisor !== 0n) return null;
    value = digits / divisor;
  }
  return m[1] === '-' ? -value : value;
}

/** Decimal as a BigInt scaled by 1e9, or null when it breaks the rule (not exact, over 29 digits). */
export function decimal(raw: string | null): bigint | null {
  if (raw === null) return null;
  const value = scaledValue(raw, 9);
  if (value === null) return null;
  return (value < 0n ? -value : value) < 10n ** 38n ? value : null;
}

/** Plain digits, or an exponent form whose value is whole, within INT64. */
function integer(raw: string | null): bigint | null {
  if (raw === null) return null;
  if (/^\s*[+-]?\d+\.\d*\s*$/.test(raw)) return null; // a point without exponent: not an integer
  const value = scaledValue(raw, 0);
  if (value === null || value > 2n ** 63n - 1n || value < -(2n ** 63n)) return null;
  return value;
}

/** "YYYY-MM-DDTHH:MM:SS[.ffffff]" in UTC, or null. */
function datetime(raw: string | null): string | null {
  if (raw === null) return null;
  const m = /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(Z|([+-])(\d\d):(\d\d))?$/.exec(
    raw.trim(),
  );
  if (!m) return null;
  const [, y, mo, d, h, mi, s, frac = '', , sign, oh = '0', om = '0'] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  const check = new Date(ms);
  if (
    check.getUTCDate() !== Number(d) ||
    check.getUTCMonth() !== Number(mo) - 1 ||
    Number(h) > 23 ||
    Number(mi) > 59 ||
    Number(s) > 59
  ) {
    return null;
  }
  const offset = (sign === '-' ? -1 : 1) * (Number(oh) * 60 + Number(om)) * 60_000;
  const utc = new Date(ms - (sign ? offset : 0)).toISOString().slice(0, 19);
  const fraction = frac.replace(/0+$/, '');
  return fraction ? `${utc}.${fraction}` : utc;
}

export function formatDecimal(scaled: bigint): string {
  const negative = scaled < 0n;
  const abs = negative ? -scaled : scaled;
  const whole = abs / SCALE;
  const fraction = (abs % SCALE).toString().padStart(9, '0').replace(/0+$/, '');
  const textValue = fraction ? `${whole}.${fraction}` : `${whole}`;
  return negative && textValue !== '0' ? `-${textValue}` : textValue;
}

/** Integer division rounding half away from zero. */
function divRound(a: bigint, b: bigint): bigint {
  const negative = a < 0n !== b < 0n;
  const x = a < 0n ? -a : a;
  const y = b < 0n ? -b : b;
  const q = (2n * x + y) / (2n * y);
  return negative ? -q : q;
}

/** JSON text of a value as the API sent it, numbers kept exactly (the line is re-scanned for them). */
function rawJson(record: string): Record<string, unknown> {
  // Quote every number token so JSON.parse keeps its exact text.
  return JSON.parse(
    record.replace(/("(?:[^"\\]|\\.)*")|(-?\d[\d.eE+-]*)/g, (_m, str, num) => (str ? str : `"${num}"`)),
  );
}

export type MartRow = {
  id: string;
  sales_datetime: string;
  item_amount: string;
  product_sku: string;
  item_quantity: string;
  product_description: string | null;
  discount_perc: string | null;
  sale_id: string;
  customer_id: string;
};

export interface Expected {
  mart: MartRow[];
  orphans: { sale_id: string; product_sku: string; reason: string }[];
  odsSales: number;
  rejects: Record<string, number>;
}

/** What the warehouse must hold after every record was loaded once (records in API order). */
export function expectedFrom(data: { products: string[]; customers: string[]; sales: string[] }): Expected {
  const rejects: Record<string, Set<string>> = {
    products: new Set(),
    customers: new Set(),
    sales: new Set(),
  };
  const products = new Map<string, { unit: bigint; description: string | null }>();
  for (const line of data.products) {
    const r = rawJson(line);
    const sku = text(r.product_sku);
    const unit = decimal(text(r.unit_amount));
    if (!sku?.trim() || unit === null) rejects.products?.add(line);
    else products.set(sku, { unit, description: text(r.description) });
  }
  const customers = new Set<string>();
  for (const line of data.customers) {
    const id = text(rawJson(line).customer_id);
    if (!id?.trim()) rejects.customers?.add(line);
    else customers.add(id);
  }
  interface Sale {
    id: bigint;
    datetime: string;
    customer: string;
    items: { sku: string; quantity: bigint; amount: bigint }[];
  }
  const sales = new Map<bigint, Sale>();
  for (const line of data.sales) {
    const r = rawJson(line);
    const id = integer(text(r.id));
    const dt = datetime(text(r.datetime));
    const total = decimal(text(r.total_amount));
    const customer = text(r.customer_id);
    const items = (r.items as Record<string, unknown>[] | null) ?? [];
    const typed = items.map((it) => ({
      sku: text(it.product_sku),
      quantity: integer(text(it.quantity)),
      amount: decimal(text(it.amount)),
    }));
    const ok =
      id !== null &&
      dt !== null &&
      total !== null &&
      !!customer?.trim() &&
      typed.every((t) => !!t.sku?.trim() && t.quantity !== null && t.amount !== null);
    if (!ok) {
      rejects.sales?.add(line);
      continue;
    }
    sales.set(id, {
      id,
      datetime: dt,
      customer: customer as string,
      items: typed as { sku: string; quantity: bigint; amount: bigint }[],
    });
  }
  const mart: MartRow[] = [];
  const orphans: Expected['orphans'] = [];
  for (const sale of sales.values()) {
    const bySku = new Map<string, { quantity: bigint; amount: bigint }>();
    for (const it of sale.items) {
      const sum = bySku.get(it.sku) ?? { quantity: 0n, amount: 0n };
      bySku.set(it.sku, { quantity: sum.quantity + it.quantity, amount: sum.amount + it.amount });
    }
    for (const [sku, sum] of bySku) {
      const product = products.get(sku);
      if (!product || !customers.has(sale.customer)) {
        orphans.push({
          sale_id: String(sale.id),
          product_sku: sku,
          reason: product ? 'missing_customer' : 'missing_product',
        });
        continue;
      }
      const denominator = product.unit * sum.quantity; // scaled 1e9
      let discount: string | null = null;
      if (denominator !== 0n) {
        const q = divRound(sum.amount * SCALE, denominator); // a / d, scaled 1e9, half away from zero
        const percent = 100n * (SCALE - q); // scaled 1e9
        discount = formatDecimal(divRound(percent, 10_000_000n) * 10_000_000n);
      }
      mart.push({
        id: `${sale.id}-${sku}`,
        sales_datetime: sale.datetime,
        item_amount: formatDecimal(sum.amount),
        product_sku: sku,
        item_quantity: String(sum.quantity),
        product_description: product.description,
        discount_perc: discount,
        sale_id: String(sale.id),
        customer_id: sale.customer,
      });
    }
  }
  return {
    mart,
    orphans,
    odsSales: sales.size,
    rejects: Object.fromEntries(
      Object.entries(rejects)
        .filter(([, s]) => s.size)
        .map(([k, s]) => [k, s.size]),
    ),
  };
}
