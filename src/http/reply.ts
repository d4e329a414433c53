import type { FrameSink } from "../domain/ports.ts";

/** What a route answers; the pipeline adds the common headers and the transport writes it. */
export type Reply = BodyReply | StreamReply;

export interface BodyReply {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string | Uint8Array | null;
  /** Close the connection after this answer (an unread body would be parsed as a request). */
  readonly close?: boolean;
}

/** A long-lived response: the transport writes the head, then hands the route a sink. */
export interface StreamReply {
  readonly status: 200;
  readonly headers: Record<string, string>;
  /** Called once with the sink, after the head is written. */
  open(sink: FrameSink): void;
  /** Called instead of `open` when the client left before the head went out. */
  cancel(): void;
}

export const isStream = (reply: Reply): reply is StreamReply => "open" in reply;

const JSON_TYPE = "application/json";

export function jsonReply(status: number, value: unknown): BodyReply {
  return { status, headers: { "Content-Type": JSON_TYPE }, body: JSON.stringify(value) };
}

export function emptyReply(status = 204): BodyReply {
  return { status, headers: {}, body: null };
}
