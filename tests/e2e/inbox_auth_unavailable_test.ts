/**
 * End to end, in a real Chromium: while the identity provider's key set cannot be reached,
 * alarmd answers the inbox's requests with 503 auth_unavailable; the inbox keeps its token and
 * opens as soon as the key set is back, with no new sign-in.
 *
 * Needs Chromium (ALARMD_CHROMIUM, default /usr/bin/chromium; never downloaded). Without it the
 * test is skipped with a message, except when CI=true: then it fails.
 */
import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { launchChromium, skipWithoutChromium } from "../helpers/chromium.ts";
import { startTestServer } from "../helpers/test_server.ts";

const ignore = skipWithoutChromium("tests/e2e/inbox_auth_unavailable_test.ts");

Deno.test({
  name:
    "inbox: a 503 auth_unavailable keeps the token, and the inbox opens once the key set is back",
  ignore,
  async fn() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    // A secret too, so that the test publishes with an HS256 token while the key set is down.
    await using server = await startTestServer({
      jwtJwksUrl: `http://127.0.0.1:${port}/jwks.json`,
      retryMs: 300,
    });
    const rsa = await generateKeyPair("RS256", { extractable: true });
    const token = await new SignJWT({}).setProtectedHeader({ alg: "RS256", kid: "k1" })
      .setSubject("kim").setExpirationTime("10m").sign(rsa.privateKey);

    await using browser = await launchChromium();
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    const unavailable = page.waitForResponse((r) => r.status() === 503);
    await page.goto(`${server.url}/?token=${encodeURIComponent(token)}`);
    const refused = await unavailable;
    assert.equal((await refused.json()).error.code, "auth_unavailable");
    await page.getByRole("alert").waitFor({ state: "visible", timeout: 5_000 });
    assert.match(String(await page.getByRole("alert").textContent()), /retrying/);
    assert.ok(await page.locator("#token-form").isHidden(), "no sign-in form for a 503");
    assert.equal(await page.evaluate("sessionStorage.getItem('alarmd-token')"), token);
    assert.notEqual(await page.locator("#status").getAttribute("data-state"), "unauthorized");

    const jwk = { ...(await exportJWK(rsa.publicKey)), kid: "k1", alg: "RS256", use: "sig" };
    const idp = Deno.serve(
      { port, hostname: "127.0.0.1", onListen() {} },
      () => Response.json({ keys: [jwk] }),
    );
    try {
      const res = await server.fetch("/api/v1/alarms", {
        method: "POST",
        token: await server.publisherToken(),
        json: { userId: "kim", type: "comment", data: { text: "the keys are back" } },
      });
      assert.equal(res.status, 201);
      const alarm = await res.json();
      // The stream retries after Retry-After; then the list loads with the same token.
      await page.locator('#status[data-state="connected"]').waitFor({ timeout: 10_000 });
      await page.locator(`li[data-id="${alarm.id}"]`).waitFor({ timeout: 5_000 });
      assert.equal(await page.evaluate("sessionStorage.getItem('alarmd-token')"), token);
      assert.deepEqual(pageErrors, []);
    } finally {
      await page.close();
      await idp.shutdown();
    }
  },
});
