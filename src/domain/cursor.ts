/**
 * Opaque list cursors. Clients must not build them, so the id is wrapped and versioned: the
 * format can change without breaking anyone who only passes `nextCursor` back.
 */
import { InvalidRequestError } from "./errors.ts";
import { isUlid } from "./ulid.ts";

const PREFIX = "v1:";

export function encodeCursor(beforeId: string): string {
  return btoa(PREFIX + beforeId).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** The id a page continues below; InvalidRequestError for anything this server did not issue. */
export function decodeCursor(cursor: string): string {
  let text = "";
  try {
    text = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    // fall through to the error below
  }
  const id = text.startsWith(PREFIX) ? text.slice(PREFIX.length) : "";
  if (!isUlid(id)) throw new InvalidRequestError("cursor is not one this server issued");
  return id;
}
