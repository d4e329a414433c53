import type { PushSubscriptionRecord } from "../domain/push.ts";
import type { PushService } from "../domain/push_service.ts";
import { emptyReply, jsonReply } from "./reply.ts";
import type { Route } from "./route.ts";
import { pushSubscriptionIdParamSchema, pushSubscriptionSchema } from "./schemas.ts";
import { parseJsonBody, parseOr400 } from "./validation.ts";

const BASE = "/api/v1/users/push-subscriptions";

/** What a subscription shows its user: never its keys. */
const view = (r: PushSubscriptionRecord) => ({
  id: r.id,
  endpoint: r.endpoint,
  createdAt: r.createdAt,
});

/** The VAPID key (public) and a user's own browser subscriptions. */
export function pushRoutes(push: PushService): Route[] {
  const user = { access: "user", rateLimit: "user" } as const;
  return [
    {
      method: "GET",
      path: "/api/v1/push/vapid-public-key",
      access: "public",
      handle: () => jsonReply(200, { publicKey: push.publicKey() }),
    },
    {
      ...user,
      method: "POST",
      path: BASE,
      bodyLimit: 8 * 1024,
      async handle({ request, principal, body }) {
        const input = parseJsonBody(request.header("content-type"), body, pushSubscriptionSchema);
        const { record, created } = await push.register(principal.userId, {
          endpoint: input.endpoint,
          keys: input.keys,
        });
        return jsonReply(created ? 201 : 200, view(record));
      },
    },
    {
      ...user,
      method: "GET",
      path: BASE,
      async handle({ principal }) {
        return jsonReply(200, { items: (await push.list(principal.userId)).map(view) });
      },
    },
    {
      ...user,
      method: "DELETE",
      path: `${BASE}/:id`,
      async handle({ principal, params }) {
        const { id } = parseOr400(pushSubscriptionIdParamSchema, params, "path");
        await push.delete(principal.userId, id);
        return emptyReply();
      },
    },
  ];
}
