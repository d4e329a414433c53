/**
 * List cursors (src/domain/cursor.ts): opaque to clients, URL-safe, and refused with
 * InvalidRequestError unless this server could have issued them.
 */
import assert from "node:assert/strict";
import { decodeCursor, encodeCursor } from "../../src/domain/cursor.ts";
import { InvalidRequestError } from "../../src/domain/errors.ts";

const ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
const REFUSED = { name: "InvalidRequestError", message: "cursor is not one this server issued" };

function assertRefused(cursor: string) {
  assert.throws(() => decodeCursor(cursor), REFUSED, `accepted ${JSON.stringify(cursor)}`);
  assert.throws(() => decodeCursor(cursor), InvalidRequestError);
}

Deno.test("a cursor is the versioned id in unpadded base64", () => {
  // base64("v1:01ARZ3NDEKTSV4RRFFQ69G5FAV") is "djE6…VY=", the padding dropped.
  assert.equal(encodeCursor(ID), "djE6MDFBUlozTkRFS1RTVjRSUkZGUTY5RzVGQVY");
  assert.equal(
    encodeCursor("00000000000000000000000000"),
    "djE6MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA",
  );
  assert.equal(
    encodeCursor("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"),
    "djE6N1paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo",
  );
});

Deno.test("every issued cursor decodes to its id and needs no escaping in a URL", () => {
  const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  let seed = 7;
  const next = () => (seed = (seed * 48271) % 2147483647);
  const ids = ["00000000000000000000000000", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ", ID];
  for (let i = 0; i < 500; i++) {
    let id = "01J";
    for (let c = 0; c < 23; c++) id += alphabet[next() % 32];
    ids.push(id);
  }
  for (const id of ids) {
    const cursor = encodeCursor(id);
    assert.match(cursor, /^[A-Za-z0-9_-]+$/, id);
    assert.equal(encodeURIComponent(cursor), cursor);
    assert.equal(decodeCursor(cursor), id);
  }
});

Deno.test("a cursor this server did not issue is an InvalidRequestError", () => {
  for (
    const cursor of [
      "",
      "garbage",
      "!!!",
      "djE6", // "v1:" with no id
      btoa(ID), // no version prefix
      btoa(`v2:${ID}`), // another version
      btoa(`V1:${ID}`),
      btoa(`v1: ${ID}`),
      btoa(`v1:${ID.toLowerCase()}`),
      btoa(`v1:${ID}0`), // 27 characters
      btoa(`v1:${ID.slice(0, -1)}`), // 25 characters
      btoa(`v1:${ID.slice(0, -1)}U`), // U is not Crockford base32
      btoa(`v1:8${ID.slice(1)}`), // past the largest 48-bit time
      btoa("v1:not-an-id"),
      encodeCursor(ID).slice(0, -1), // cut short
      encodeCursor(ID) + "A",
      "x".repeat(300),
    ]
  ) {
    assertRefused(cursor);
  }
});
