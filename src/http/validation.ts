import { zValidator } from "@hono/zod-validator";
import type { ValidationTargets } from "hono";
import type { z } from "zod";
import { ValidationError } from "./errors.ts";

/**
 * `zValidator` whose failures become the contract's 400 with every zod issue listed (path in
 * dotted form), instead of the validator's default body.
 */
export function validate<T extends keyof ValidationTargets, S extends z.ZodType>(
  target: T,
  schema: S,
) {
  return zValidator(target, schema, (result) => {
    if (!result.success) {
      throw new ValidationError(
        result.error.issues.map((issue) => ({
          path: issue.path.length > 0 ? issue.path.join(".") : target,
          message: issue.message,
        })),
      );
    }
  });
}
