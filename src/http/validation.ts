import type { z } from "zod";
import type { ValidationIssue } from "./errors.ts";
import { ValidationError } from "./errors.ts";

/** zod issues as the contract lists them: a dotted path and a message. */
export function toIssues(
  error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] },
  where: string,
): ValidationIssue[] {
  return error.issues.map((issue) => ({
    path: issue.path.length > 0 ? issue.path.map(String).join(".") : where,
    message: issue.message,
  }));
}

/** Parses with `schema` or throws the contract's 400 listing every issue. */
export function parseOr400<S extends z.ZodType>(
  schema: S,
  value: unknown,
  where: string,
): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new ValidationError(toIssues(result.error, where));
  return result.data;
}

const JSON_CONTENT_TYPE = /^application\/(?:[\w.+-]*\+)?json\s*(?:;|$)/i;

/** A JSON request body checked against `schema`: its content type, its syntax, its shape. */
export function parseJsonBody<S extends z.ZodType>(
  contentType: string | undefined,
  body: string,
  schema: S,
): z.infer<S> {
  if (!contentType || !JSON_CONTENT_TYPE.test(contentType)) {
    throw new ValidationError([{ path: "content-type", message: "must be application/json" }]);
  }
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new ValidationError([{ path: "body", message: "Malformed JSON in request body" }]);
  }
  return parseOr400(schema, json, "body");
}
