/** The presence endpoint's part of the OpenAPI document (openapi.ts). */
import { error, json, jsonSchema, PUBLISHER, PUBLISHER_ERRORS, ref } from "./openapi_parts.ts";
import { PRESENCE_MAX_USERS, presenceQuerySchema } from "./presence_routes.ts";

const userIdParam = {
  name: "userId",
  in: "query",
  required: true,
  style: "form",
  explode: true,
  schema: (jsonSchema(presenceQuerySchema) as { properties: Record<string, unknown> }).properties
    .userId,
  description: `1..${PRESENCE_MAX_USERS} user ids, the parameter repeated: ` +
    "`?userId=kim&userId=lee`; answered in this order",
};

export const PRESENCE_SCHEMAS = {
  Presence: {
    type: "object",
    properties: {
      users: {
        type: "array",
        description: "one entry per userId asked, in the order asked",
        items: {
          type: "object",
          properties: {
            userId: { type: "string" },
            online: { type: "boolean", description: "connections > 0" },
            connections: {
              type: "integer",
              minimum: 0,
              description: "live streams on every instance and worker",
            },
          },
          required: ["userId", "online", "connections"],
          additionalProperties: false,
        },
      },
    },
    required: ["users"],
    additionalProperties: false,
  },
};

export const PRESENCE_PATHS = {
  "/api/v1/presence": {
    get: {
      operationId: "getPresence",
      summary: "Whether users have a live stream, across every instance",
      description: "A stream counts while its writes go through: one whose client stopped " +
        "reading stops counting after two heartbeats, and the streams of an instance that " +
        "crashed within 30 s.",
      security: PUBLISHER,
      parameters: [userIdParam],
      responses: {
        200: {
          description: "each user's live streams",
          content: json(ref("Presence"), {
            users: [
              { userId: "kim", online: true, connections: 2 },
              { userId: "lee", online: false, connections: 0 },
            ],
          }),
        },
        400: error(
          400,
          `no userId, more than ${PRESENCE_MAX_USERS}, or one malformed (invalid_request)`,
        ),
        ...PUBLISHER_ERRORS,
        503: error(
          503,
          "presence cannot be known: Redis is down, or instances are still exchanging their " +
            "counts (unavailable); or the identity provider's keys cannot be fetched " +
            "(auth_unavailable)",
        ),
      },
    },
  },
};
