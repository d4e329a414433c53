import assert from "node:assert/strict";
import fc from "fast-check";
import { createUlidGenerator, isUlid, ulidAfter, ulidTimeOf } from "../../src/domain/ulid.ts";

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const toBig = (id: string) => [...id].reduce((v, c) => v * 32n + BigInt(ALPHABET.indexOf(c)), 0n);
const ulidArb = fc.tuple(
  fc.constantFrom(..."01234567"),
  fc.array(fc.constantFrom(...ALPHABET), { minLength: 25, maxLength: 25 }),
).map(([first, rest]) => first + rest.join(""));

Deno.test("ulidAfter steps 1 to 2^40 above its input, carrying past the last 8 characters", () => {
  fc.assert(
    fc.property(ulidArb, (id) => {
      if (toBig(id) + (1n << 40n) >= 1n << 128n) return;
      const next = ulidAfter(id);
      assert.ok(isUlid(next), next);
      const step = toBig(next) - toBig(id);
      assert.ok(step >= 1n && step <= 1n << 40n, `${id} -> ${next}: step ${step}`);
    }),
    { numRuns: 2000 },
  );
  // A tail of all Z always carries.
  const carried = ulidAfter("0000000000000000000ZZZZZZZ");
  assert.ok(carried > "00000000000000000010000000", carried);
});

Deno.test("ulidAfter refuses to leave the 128-bit space", () => {
  assert.throws(() => ulidAfter("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"), RangeError);
});

Deno.test("a generator's ids increase within a millisecond, past a floor and when the clock steps back", () => {
  const ids = createUlidGenerator();
  const t = Date.UTC(2026, 10, 25);
  const seen: string[] = [];
  for (let i = 0; i < 5000; i++) seen.push(ids.next(t));
  seen.push(ids.next(t - 60_000));
  const floor = ids.next(t + 10) + "";
  seen.push(floor, ids.next(t, floor.replace(/.$/, "Z")));
  for (let i = 1; i < seen.length; i++) {
    assert.ok(seen[i] > seen[i - 1], `${seen[i - 1]} !< ${seen[i]}`);
  }
  assert.equal(new Set(seen).size, seen.length);
  assert.equal(ulidTimeOf(seen[0]), t);
  assert.ok(seen.every(isUlid));
});
