/** The source endpoints, which are also the bucket prefixes and the table names. */
export const ENTITIES = ['products', 'customers', 'sales'] as const;
export type Entity = (typeof ENTITIES)[number];

/** How each endpoint is read: sales incrementally by id, the others in full each run. */
export const EXTRACT_MODE = {
  sales: 'incremental',
  products: 'full',
  customers: 'full',
} as const satisfies Record<Entity, 'incremental' | 'full'>;

export function isEntity(value: string): value is Entity {
  return (ENTITIES as readonly string[]).includes(value);
}
