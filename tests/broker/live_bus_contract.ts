/**
 * The LiveBus contract (src/domain/ports.ts), run on every adapter. `open` returns the buses
 * of two instances of one deployment (the same bus twice for the single-instance adapter).
 */
import assert from "node:assert/strict";
import { whenReady } from "../helpers/redis.ts";
import type { AlarmChange, LiveBus } from "../../src/domain/ports.ts";
import { waitUntil } from "../helpers/wait.ts";

export interface BusPair {
  readonly a: LiveBus;
  readonly b: LiveBus;
  /** Whether a and b are separate instances (changes cross between them). */
  readonly separate: boolean;
  close(): Promise<void>;
}

let seq = 0;
export function change(userId = "kim"): AlarmChange & { kind: "created" } {
  const id = String(++seq).padStart(26, "0");
  return {
    kind: "created",
    prevId: null,
    alarm: {
      id,
      userId,
      type: "t",
      data: { n: seq },
      createdAt: new Date().toISOString(),
      readAt: null,
      notification: null,
    },
  };
}

const idOf = (c: AlarmChange) =>
  c.kind === "created" ? c.alarm.id : c.kind === "erased" ? `erased ${c.userId}` : c.ids.join();

export function liveBusContract(name: string, open: () => Promise<BusPair>) {
  Deno.test(`${name}: subscribers of the publishing instance hear a change before publish returns`, async () => {
    const pair = await open();
    try {
      const heard: AlarmChange[] = [];
      pair.a.subscribe((c) => heard.push(c));
      const c = change();
      pair.a.publish(c);
      assert.deepEqual(heard, [c]);
    } finally {
      await pair.close();
    }
  });

  Deno.test(`${name}: every instance hears every change once, in publish order`, async () => {
    const pair = await open();
    try {
      const atA: string[] = [];
      const atB: string[] = [];
      pair.a.subscribe((c) => atA.push(idOf(c)));
      pair.b.subscribe((c) => atB.push(idOf(c)));
      await whenReady(pair.a, pair.b);
      const fromA = Array.from({ length: 200 }, () => change());
      const fromB = Array.from({ length: 50 }, () => change("lee"));
      for (const c of fromA) pair.a.publish(c);
      for (const c of fromB) pair.b.publish(c);
      const expected = 250;
      await waitUntil(() => atA.length >= expected && atB.length >= expected, "all changes heard");
      await new Promise((r) => setTimeout(r, 50)); // nothing more may arrive
      for (const heard of pair.separate ? [atA, atB] : [atA]) {
        assert.equal(heard.length, 250);
        assert.equal(new Set(heard).size, 250, "no change heard twice");
        const a = heard.filter((id) => fromA.some((c) => idOf(c) === id));
        assert.deepEqual(a, fromA.map(idOf), "publish order per publisher");
      }
    } finally {
      await pair.close();
    }
  });

  Deno.test(`${name}: read and deleted changes cross too, and unsubscribing stops delivery`, async () => {
    const pair = await open();
    try {
      const heard: AlarmChange[] = [];
      const stop = pair.b.subscribe((c) => heard.push(c));
      await whenReady(pair.a, pair.b);
      const read: AlarmChange = { kind: "read", userId: "kim", ids: ["01A", "01B"], unread: 3 };
      pair.a.publish(read);
      await waitUntil(() => heard.length === 1, "read change heard");
      assert.deepEqual(heard[0], read);
      stop();
      pair.a.publish(change());
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(heard.length, 1);
    } finally {
      await pair.close();
    }
  });
}
