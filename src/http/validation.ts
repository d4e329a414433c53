import { zValidator } from "@hono/zod-validator";
import type { ValidationTargets } from "hono";
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

/**
 * `zValidator` whose failures become the contract's 400 with every zod issue listed (path in
 * dotted form), instead of the validator's default body.
 */
export function validate<T extends keyof ValidationTargets, S extends z.ZodType>(
  target: T,
  schema: S,
) {
  return zValidator(target, schema, (result) => {
    if (!result.success) throw new ValidationError(toIssues(result.error, target));
  });
}
