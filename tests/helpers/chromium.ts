/**
 * Debian's Chromium for browser tests, never a downloaded browser. Without it a test file is
 * skipped with the reason printed, except under CI=true, where a missing browser is a failure.
 */
import type { Browser, BrowserContext } from "playwright-core";
import { chromium } from "playwright-core";

export const CHROMIUM_PATH = Deno.env.get("ALARMD_CHROMIUM") ?? "/usr/bin/chromium";
const IN_CI = Deno.env.get("CI") === "true";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
];

function chromiumProblem(): string | null {
  try {
    return Deno.statSync(CHROMIUM_PATH).isFile ? null : `${CHROMIUM_PATH} is not a file`;
  } catch {
    return `no Chromium at ${CHROMIUM_PATH}`;
  }
}

const problem = chromiumProblem();

/** Whether `file`'s tests are to be skipped here; says why once. */
export function skipWithoutChromium(file: string): boolean {
  if (problem === null || IN_CI) return false;
  console.warn(
    `%c${file} skipped: ${problem}. Install Chromium or set ALARMD_CHROMIUM ` +
      "(with CI=true this is a failure).",
    "color: yellow",
  );
  return true;
}

/** Starts headless Chromium; throws saying how to install it when there is none. */
export async function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  if (problem) {
    throw new Error(
      `CI=true and the browser tests cannot run: ${problem}. ` +
        "Install Chromium (apt-get install chromium) or set ALARMD_CHROMIUM to its path.",
    );
  }
  return await chromium.launch({ executablePath: CHROMIUM_PATH, args: [...FLAGS, ...extraArgs] });
}

/** Chromium with a profile on disk in `dir` (not incognito), for what only such a profile does. */
export async function launchChromiumProfile(dir: string): Promise<BrowserContext> {
  if (problem) await launchChromium(); // throws with the reason
  return await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM_PATH,
    args: FLAGS,
  });
}
