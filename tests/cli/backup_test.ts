/**
 * `alarmd backup FILE` (docs/operations.md#backup-and-restore): a consistent copy of a live
 * store, restored the way the docs say (stop, replace the file, start).
 */
import assert from "node:assert/strict";
import { COMPILE_FLAGS } from "../../scripts/compile.ts";
import { KV_LAYOUT_VERSION } from "../../src/storage/kv_layout.ts";
import { kvKeys } from "../../src/storage/kv_keys.ts";
import { decodeAlarm, type StoredUserState } from "../../src/storage/kv_records.ts";
import type { AlarmJson } from "../helpers/api_client.ts";
import { create, expectJson, listAll, unreadCount } from "../helpers/api_client.ts";
import { startProcess, startServeProcess } from "../helpers/process.ts";
import { publisherToken, startTestServer, userToken } from "../helpers/test_server.ts";
import { waitUntil, within } from "../helpers/wait.ts";

/** Wall-clock ms with sub-ms precision, comparable with the backup's `snapshotAt`. */
const now = () => performance.timeOrigin + performance.now();

const USERS = Array.from({ length: 12 }, (_, i) => `u${i}`);

/**
 * `deno run main.ts` with only the permissions of the compiled binary, which is what operators
 * run: node:sqlite refuses some SQL (ATTACH, so VACUUM INTO) without every permission.
 */
const AS_RELEASED = [
  Deno.execPath(),
  "run",
  ...COMPILE_FLAGS.filter((flag) => /^--(allow|unstable)-/.test(flag)),
  "main.ts",
];

/** `alarmd backup …` as a real process; its exit code and output. */
async function runBackup(args: string[], env: Record<string, string>) {
  const proc = await startProcess(["backup", ...args], env, { command: AS_RELEASED });
  const { code } = await within(60_000, proc.status, "alarmd backup");
  return { code, stdout: proc.stdout(), stderr: proc.stderr() };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** What a publisher and the users were told while the backup ran, with when. */
interface Ledger {
  /** Every alarm answered 201, with when the answer arrived and when the request was sent. */
  created: Map<string, { alarm: AlarmJson; sentAt: number; ackedAt: number }>;
  /** Reads and deletes: when each was sent and, once answered 204, when. */
  read: Map<string, { sentAt: number; ackedAt?: number }>;
  deleted: Map<string, { sentAt: number; ackedAt?: number }>;
  /** Any answer other than the expected one. */
  unexpected: string[];
}

/**
 * Creates, reads and deletes from `workers` loops until `stop` resolves: mostly creates, every
 * fourth step a read of an alarm of the same user, every seventh a delete.
 */
async function publishLoad(
  url: string,
  stop: Promise<void>,
  workers: number,
): Promise<{ ledger: Ledger; finished: Promise<void> }> {
  const ledger: Ledger = {
    created: new Map(),
    read: new Map(),
    deleted: new Map(),
    unexpected: [],
  };
  const publisher = await publisherToken("backup-load");
  const tokens = new Map(
    await Promise.all(USERS.map(async (u) => [u, await userToken(u)] as const)),
  );
  let stopped = false;
  void stop.then(() => (stopped = true));
  let step = 0;
  const call = async (path: string, init: RequestInit, token: string) => {
    const res = await fetch(url + path, {
      ...init,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    });
    return { status: res.status, text: await res.text() };
  };
  /**
   * A random alarm of `userId`'s, not deleted, that `ok` accepts. A read and a delete of one
   * alarm never race, so each is answered 204.
   */
  const pick = (userId: string, ok: (id: string) => boolean) => {
    const ids = [...ledger.created.keys()].filter((id) =>
      ledger.created.get(id)!.alarm.userId === userId && !ledger.deleted.has(id) && ok(id)
    );
    return ids[Math.floor(Math.random() * ids.length)];
  };
  /** Marks `id` read or deletes it, recording when that was sent and when answered. */
  const change = async (kind: "read" | "deleted", userId: string, id: string) => {
    const entry: { sentAt: number; ackedAt?: number } = { sentAt: now() };
    ledger[kind].set(id, entry);
    const res = kind === "read"
      ? await call(`/api/v1/users/alarms/${id}/read`, { method: "POST" }, tokens.get(userId)!)
      : await call(`/api/v1/users/alarms/${id}`, { method: "DELETE" }, tokens.get(userId)!);
    if (res.status === 204) entry.ackedAt = now();
    else ledger.unexpected.push(`${kind} ${res.status} ${res.text}`);
  };
  const worker = async () => {
    while (!stopped) {
      const n = step++;
      const userId = USERS[n % USERS.length];
      const toRead = n % 4 === 3 ? pick(userId, (id) => !ledger.read.has(id)) : undefined;
      const toDelete = n % 7 === 6
        ? pick(userId, (id) => ledger.read.get(id)?.ackedAt !== undefined || !ledger.read.has(id))
        : undefined;
      if (toRead) await change("read", userId, toRead);
      else if (toDelete) await change("deleted", userId, toDelete);
      else {
        const sentAt = now();
        const res = await call("/api/v1/alarms", {
          method: "POST",
          body: JSON.stringify({ userId, type: "load", data: { n } }),
        }, publisher);
        if (res.status !== 201) {
          ledger.unexpected.push(`create ${res.status} ${res.text}`);
          continue;
        }
        const alarm = JSON.parse(res.text) as AlarmJson;
        ledger.created.set(alarm.id, { alarm, sentAt, ackedAt: now() });
      }
    }
  };
  const finished = Promise.all(Array.from({ length: workers }, worker)).then(() => {});
  return { ledger, finished };
}

Deno.test("a backup taken under a publishing load restores every alarm acknowledged before it, with its read state and unread counts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-backup-" });
  const kvPath = `${dir}/alarmd.kv`;
  const file = `${dir}/backup.kv`;
  try {
    let ledger: Ledger;
    let report: Record<string, unknown>;
    let keyed: AlarmJson;
    const keyedBody = { userId: "keyed", type: "once", data: { n: 1 } };
    {
      await using alarmd = await startServeProcess({
        ALARMD_KV_PATH: kvPath,
        ALARMD_RATE_PUBLISH_PER_SECOND: "0",
        ALARMD_RATE_USER_PER_SECOND: "0",
      });
      const publisher = await publisherToken("backup-load");
      // Some history to copy, and an idempotency record, before the load starts.
      for (let batch = 0; batch < 6; batch++) {
        const res = await fetch(`${alarmd.url}/api/v1/alarms/batch`, {
          method: "POST",
          headers: { authorization: `Bearer ${publisher}`, "content-type": "application/json" },
          body: JSON.stringify({
            alarms: Array.from({ length: 500 }, (_, i) => ({
              userId: `history-${i % 50}`,
              type: "history",
              data: { batch, i, text: "Kim commented on your post" },
            })),
          }),
        });
        assert.equal(res.status, 201, await res.text());
      }
      const keyedRes = await fetch(`${alarmd.url}/api/v1/alarms`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${publisher}`,
          "content-type": "application/json",
          "idempotency-key": "before-backup",
        },
        body: JSON.stringify(keyedBody),
      });
      keyed = await expectJson<AlarmJson>(keyedRes, 201);

      const { promise: stop, resolve: stopLoad } = Promise.withResolvers<void>();
      const load = await publishLoad(alarmd.url, stop, 8);
      ledger = load.ledger;
      const createdSince = (t: number) =>
        [...load.ledger.created.values()].filter((c) => c.sentAt > t).length;
      await waitUntil(() => createdSince(0) >= 100, "100 creates before the backup", 30_000);
      const backup = await runBackup([file], { ALARMD_KV_PATH: kvPath });
      const exited = now();
      await waitUntil(() => createdSince(exited) >= 20, "20 creates after the backup", 30_000);
      stopLoad();
      await load.finished;
      assert.equal(backup.code, 0, backup.stderr);
      report = JSON.parse(backup.stdout);
      assert.equal(await alarmd.stop(), 0);
    }
    console.log(
      `backup under load: ${JSON.stringify(report)}; ${ledger.created.size} creates, ` +
        `${ledger.read.size} reads, ${ledger.deleted.size} deletes`,
    );
    assert.deepEqual(ledger.unexpected, []);
    assert.equal(report.file, file);
    assert.ok((report.keys as number) > 3000, `${report.keys} keys`);
    assert.equal(report.bytes, (await Deno.stat(file)).size);
    for (const leftover of [`${file}.tmp`, `${file}-wal`, `${file}-shm`]) {
      assert.ok(!await exists(leftover), `${leftover} was left behind`);
    }
    // Committed before the snapshot began: in the copy; sent after it was taken: not.
    const snapshotAt = Date.parse(report.snapshotAt as string);
    const takenBy = snapshotAt + (report.snapshotMs as number) + 1;
    const before = [...ledger.created.values()].filter((c) => c.ackedAt < snapshotAt);
    const after = [...ledger.created.values()].filter((c) => c.sentAt > takenBy);
    assert.ok(
      before.length >= 100 && after.length >= 20,
      `${before.length} before, ${after.length} after`,
    );

    // The copy itself: the layout stamp, and every user's state agrees with its alarms.
    {
      const kv = await Deno.openKv(file);
      try {
        assert.equal((await kv.get(kvKeys.layoutVersion)).value, KV_LAYOUT_VERSION);
        for (const userId of [...USERS, "history-0", "history-49", "keyed"]) {
          const state = (await kv.get<StoredUserState>(kvKeys.userState(userId))).value;
          assert.ok(state, `no state for ${userId}`);
          let total = 0;
          let unread = 0;
          for await (const entry of kv.list({ prefix: kvKeys.alarmsOf(userId) })) {
            total++;
            if (decodeAlarm(entry.value).readAt === null) unread++;
          }
          assert.deepEqual([state.total, state.unread], [total, unread], `state of ${userId}`);
        }
      } finally {
        kv.close();
      }
    }

    // Restore as the docs say: the file in place of alarmd.kv, then start.
    const restoreDir = await Deno.makeTempDir({ prefix: "alarmd-restore-" });
    try {
      await Deno.copyFile(file, `${restoreDir}/alarmd.kv`);
      await using restored = await startTestServer({}, { dir: restoreDir });
      for (const userId of USERS) {
        const token = await restored.userToken(userId);
        const listed = await listAll(restored, token);
        const byId = new Map(listed.map((a) => [a.id, a]));
        for (const { alarm } of before.filter((c) => c.alarm.userId === userId)) {
          const read = ledger.read.get(alarm.id);
          const deleted = ledger.deleted.get(alarm.id);
          const found = byId.get(alarm.id);
          if (deleted?.ackedAt !== undefined && deleted.ackedAt < snapshotAt) {
            assert.equal(found, undefined, `${alarm.id} was deleted before the backup`);
            continue;
          }
          if (!found) {
            // Only a delete sent while the backup ran may have taken it.
            assert.ok(
              deleted && deleted.sentAt <= takenBy,
              `acknowledged alarm ${alarm.id} is missing from the backup`,
            );
            continue;
          }
          assert.deepEqual({ ...found, readAt: null }, alarm, `${alarm.id} changed`);
          if (read?.ackedAt !== undefined && read.ackedAt < snapshotAt) {
            assert.notEqual(found.readAt, null, `${alarm.id} was read before the backup`);
          } else if (!read || read.sentAt > takenBy) {
            assert.equal(found.readAt, null, `${alarm.id} was not read before the backup`);
          }
        }
        for (const alarm of listed) {
          assert.ok(ledger.created.has(alarm.id), `${alarm.id} was never acknowledged`);
        }
        for (const { alarm } of after.filter((c) => c.alarm.userId === userId)) {
          assert.ok(!byId.has(alarm.id), `${alarm.id}, sent after the backup ended, is in it`);
        }
        assert.equal(
          await unreadCount(restored, token),
          listed.filter((a) => a.readAt === null).length,
          `unread count of ${userId}`,
        );
      }
      assert.equal((await listAll(restored, await restored.userToken("history-7"))).length, 60);
      // The idempotency record came along: a retry is answered with the stored alarm.
      const retry = await create(
        restored,
        await restored.publisherToken("backup-load"),
        keyedBody,
        {
          "idempotency-key": "before-backup",
        },
      );
      assert.deepEqual(await expectJson(retry, 200), keyed);
    } finally {
      await Deno.remove(restoreDir, { recursive: true });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("backup copies commits still in the WAL, works with the store closed, and replaces a file only with --force", async () => {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-backup-" });
  const kvPath = `${dir}/store.kv`;
  const file = `${dir}/copy.kv`;
  const valueIn = async (path: string, key: Deno.KvKey) => {
    const copy = await Deno.openKv(path);
    try {
      return (await copy.get(key)).value;
    } finally {
      copy.close();
    }
  };
  try {
    // Open, as under a running alarmd: these commits are in the WAL, not yet in the file itself.
    const kv = await Deno.openKv(kvPath);
    try {
      for (let i = 0; i < 10; i++) await kv.set(["x", i], i);
      assert.ok((await Deno.stat(`${kvPath}-wal`)).size > 0);
      const live = await runBackup([file, "--kv-path", kvPath], {});
      assert.equal(live.code, 0, live.stderr);
      assert.equal(JSON.parse(live.stdout).keys, 10);
    } finally {
      kv.close();
    }
    assert.equal(await valueIn(file, ["x", 9]), 9);

    // Closed, as with alarmd stopped.
    await Deno.chmod(kvPath, 0o600);
    await Deno.writeTextFile(file, "keep me");
    const refused = await runBackup([file], { ALARMD_KV_PATH: kvPath });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /copy\.kv exists; pass --force to replace it/);
    assert.equal(await Deno.readTextFile(file), "keep me");

    const forced = await runBackup([file, "--force"], { ALARMD_KV_PATH: kvPath });
    assert.equal(forced.code, 0, forced.stderr);
    const report = JSON.parse(forced.stdout);
    assert.deepEqual(
      Object.keys(report).sort(),
      ["bytes", "file", "keys", "snapshotAt", "snapshotMs", "source", "totalMs", "verifyMs"],
    );
    assert.equal(report.keys, 10);
    assert.equal(report.bytes, (await Deno.stat(file)).size);
    const mode = (await Deno.stat(file)).mode! & 0o777;
    assert.equal(mode, 0o600, "the copy is as private as the store");
    // Nothing is left next to the store or the copy.
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["copy.kv", "store.kv"]);
    assert.equal(await valueIn(file, ["x", 9]), 9);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("backup says clearly what is wrong: no FILE, no KV file, a KV Connect URL, the store itself", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "alarmd-backup-" });
  try {
    const kvPath = `${dir}/store.kv`;
    const kv = await Deno.openKv(kvPath);
    await kv.set(["x"], 1);
    kv.close();
    await Deno.writeTextFile(`${dir}/notes.txt`, "not a database");
    const cases: [string, string[], Record<string, string>, number, RegExp][] = [
      ["no FILE", [], { ALARMD_KV_PATH: kvPath }, 2, /^alarmd: backup needs a FILE/],
      [
        "no KV file",
        [`${dir}/copy.kv`],
        { ALARMD_KV_PATH: `${dir}/missing.kv` },
        1,
        /^alarmd: backup failed: no KV file at .*missing\.kv/,
      ],
      [
        "a KV Connect URL",
        [`${dir}/copy.kv`],
        { ALARMD_KV_PATH: "https://kv.example.com/secret-database-id" },
        2,
        /^alarmd: ALARMD_KV_PATH \(--kv-path\) is a KV Connect URL/,
      ],
      [
        "the store itself",
        [kvPath, "--force"],
        { ALARMD_KV_PATH: kvPath },
        2,
        /is the KV file itself/,
      ],
      [
        "not a KV file",
        [`${dir}/copy.kv`],
        { ALARMD_KV_PATH: `${dir}/notes.txt` },
        1,
        /^alarmd: backup failed: .* is not a Deno KV file/,
      ],
    ];
    for (const [name, args, env, code, expected] of cases) {
      await t.step(name, async () => {
        const result = await runBackup(args, env);
        assert.equal(result.code, code, result.stderr);
        assert.equal(result.stdout, "");
        assert.match(result.stderr, expected);
        assert.equal(result.stderr.trimEnd().split("\n").length, 1, result.stderr);
        assert.ok(!result.stderr.includes("secret-database-id"), "the URL is not printed");
      });
    }
    assert.ok(!await exists(`${dir}/copy.kv`));
    assert.ok(!await exists(`${dir}/copy.kv.tmp`));
    assert.ok(!await exists(`${dir}/missing.kv`), "a missing store must not be created");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
