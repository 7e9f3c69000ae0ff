import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PagePlanner, planParts } from '../../functions/core/pagination.js';

/** Drives a planner against a list of `total` items, `concurrency` pages at a time, in the worst order. */
function drive(total: number, pageSize: number, concurrency: number, firstPage = 1): number[] {
  const planner = new PagePlanner({ firstPage, pageSize });
  const requested: number[] = [];
  const inFlight: number[] = [];
  for (let guard = 0; guard < 10_000; guard++) {
    for (
      let p = planner.next();
      p !== undefined;
      p = inFlight.length + 1 < concurrency ? planner.next() : undefined
    ) {
      inFlight.push(p);
      requested.push(p);
    }
    const page = inFlight.pop(); // answer the newest first: pages complete out of order
    if (page === undefined) break;
    const count = Math.max(0, Math.min(pageSize, total - (page - 1) * pageSize));
    planner.done(page, count, Math.ceil(total / pageSize));
  }
  assert.ok(planner.complete, 'the planner reaches the end');
  return requested;
}

describe('PagePlanner', () => {
  const cases = [
    { total: 0, pageSize: 250, concurrency: 4, pages: [1] },
    { total: 10, pageSize: 250, concurrency: 4, pages: [1] },
    { total: 250, pageSize: 250, concurrency: 4, pages: [1, 2] }, // a full last page needs one probe
    { total: 251, pageSize: 250, concurrency: 4, pages: [1, 2] },
    { total: 1000, pageSize: 100, concurrency: 3, pages: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] },
  ];
  for (const c of cases) {
    test(`${c.total} items, page size ${c.pageSize}: each page requested once`, () => {
      const requested = drive(c.total, c.pageSize, c.concurrency);
      assert.deepEqual(
        [...requested].sort((a, b) => a - b),
        c.pages,
      );
    });
  }

  test('keeps several pages in flight once the total is known', () => {
    const planner = new PagePlanner({ firstPage: 1, pageSize: 10 });
    assert.equal(planner.next(), 1);
    assert.equal(planner.next(), undefined, 'nothing else before the first answer tells the size');
    planner.done(1, 10, 5);
    assert.deepEqual(
      [planner.next(), planner.next(), planner.next(), planner.next(), planner.next()],
      [2, 3, 4, 5, undefined],
    );
  });

  test('follows a list that grows while it is paged', () => {
    const planner = new PagePlanner({ firstPage: 1, pageSize: 10 });
    planner.next();
    planner.done(1, 10, 2);
    assert.equal(planner.next(), 2);
    planner.done(2, 10, 4); // new items arrived: the total grew
    assert.deepEqual([planner.next(), planner.next(), planner.next()], [3, 4, undefined]);
    planner.done(3, 10, 4);
    planner.done(4, 3, 4);
    assert.equal(planner.next(), undefined);
    assert.ok(planner.complete);
    assert.equal(planner.last, 4);
  });

  test('resumes after durable pages without requesting them again', () => {
    const staged = [
      { page: 3, count: 10, totalPages: 6 },
      { page: 5, count: 10, totalPages: 6 },
    ];
    const planner = new PagePlanner({ firstPage: 3, pageSize: 10, staged });
    const asked: number[] = [];
    for (let p = planner.next(); p !== undefined; p = planner.next()) asked.push(p);
    assert.deepEqual(asked, [4, 6]);
  });

  test('a short page ends the run even when later pages were probed', () => {
    const planner = new PagePlanner({ firstPage: 1, pageSize: 10 });
    planner.next();
    planner.done(1, 10, 3);
    planner.next();
    planner.next();
    planner.done(3, 0, 3);
    assert.equal(planner.complete, false);
    planner.done(2, 4, 3);
    assert.equal(planner.last, 2);
    assert.ok(planner.complete);
  });
});

describe('planParts', () => {
  const pages = (...bytes: number[]) => bytes.map((b, i) => ({ page: i + 1, bytes: b }));

  test('joins contiguous pages until the target size', () => {
    assert.deepEqual(
      planParts({ frontier: 1, pages: pages(40, 40, 40, 40, 40), targetBytes: 100, lastPage: undefined }),
      [{ first: 1, last: 3, bytes: 120 }],
    );
  });

  test('stops at the first gap', () => {
    const some = [
      { page: 1, bytes: 80 },
      { page: 3, bytes: 80 },
    ];
    assert.deepEqual(planParts({ frontier: 1, pages: some, targetBytes: 100, lastPage: 3 }), []);
  });

  test('flushes the remainder once the last page is in', () => {
    assert.deepEqual(planParts({ frontier: 1, pages: pages(40, 40, 40, 0), targetBytes: 100, lastPage: 4 }), [
      { first: 1, last: 3, bytes: 120 },
      { first: 4, last: 4, bytes: 0 },
    ]);
  });

  test('starts at the frontier', () => {
    assert.deepEqual(planParts({ frontier: 3, pages: pages(40, 40, 40, 40), targetBytes: 50, lastPage: 4 }), [
      { first: 3, last: 4, bytes: 80 },
    ]);
  });
});
