import assert from "node:assert/strict";
import { BUS_KEY_BYTES, loadBusKey } from "../../src/storage/kv_bus_key.ts";
import { kvKeys } from "../../src/storage/kv_keys.ts";

async function tempKv() {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-bus-key-test-" });
  return { dir, path: `${dir}/alarmd.kv` };
}

Deno.test("the Redis bus key is generated once and every instance starting together gets the same one", async () => {
  const { dir, path } = await tempKv();
  // Separate handles on one file, as separate processes of one deployment have.
  const handles = await Promise.all(Array.from({ length: 4 }, () => Deno.openKv(path)));
  try {
    const keys = await Promise.all(
      handles.flatMap((kv) => Array.from({ length: 5 }, () => loadBusKey(kv))),
    );
    assert.equal(keys[0].byteLength, BUS_KEY_BYTES);
    for (const key of keys) assert.deepEqual(key, keys[0]);
    assert.ok(keys[0].some((b) => b !== 0), "random bytes, not zeros");
    // A later start (a restart) reads the same key.
    assert.deepEqual(await loadBusKey(handles[0]), keys[0]);
  } finally {
    for (const kv of handles) kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a separate deployment (another KV store) gets a key of its own", async () => {
  const one = await tempKv();
  const two = await tempKv();
  const kvOne = await Deno.openKv(one.path);
  const kvTwo = await Deno.openKv(two.path);
  try {
    assert.notDeepEqual(await loadBusKey(kvOne), await loadBusKey(kvTwo));
  } finally {
    kvOne.close();
    kvTwo.close();
    await Deno.remove(one.dir, { recursive: true });
    await Deno.remove(two.dir, { recursive: true });
  }
});

Deno.test("a stored bus key that is not 32 bytes stops start-up with a message naming the KV key", async () => {
  const { dir, path } = await tempKv();
  const kv = await Deno.openKv(path);
  try {
    await kv.set(kvKeys.busKey, new Uint8Array(5));
    await assert.rejects(loadBusKey(kv), /\["b"\].*32-byte/);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
