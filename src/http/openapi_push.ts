/** The Web Push part of the OpenAPI document (openapi.ts). */
import {
  error,
  idParam,
  json,
  PUBLIC,
  ref,
  UNPARSEABLE,
  USER,
  USER_ERRORS,
} from "./openapi_parts.ts";

const PUSH_DISABLED = error(404, "push is not enabled on this server (push_disabled)");

export const PUSH_SCHEMAS = {
  VapidPublicKey: {
    type: "object",
    properties: {
      publicKey: {
        type: "string",
        description: "base64url of the 65-byte uncompressed P-256 point: the browser's " +
          "`applicationServerKey`",
      },
    },
    required: ["publicKey"],
    additionalProperties: false,
  },
  NewPushSubscription: {
    type: "object",
    description: "the browser's `PushSubscription.toJSON()`",
    properties: {
      endpoint: { type: "string", maxLength: 1024 },
      keys: {
        type: "object",
        properties: {
          p256dh: { type: "string", description: "base64url, a 65-byte P-256 point" },
          auth: { type: "string", description: "base64url, 16 bytes" },
        },
        required: ["p256dh", "auth"],
      },
      expirationTime: { type: ["number", "null"] },
    },
    required: ["endpoint", "keys"],
  },
  PushSubscription: {
    type: "object",
    properties: {
      id: { type: "string" },
      endpoint: { type: "string" },
      createdAt: { type: "string", format: "date-time" },
    },
    required: ["id", "endpoint", "createdAt"],
    additionalProperties: false,
  },
  PushSubscriptionList: {
    type: "object",
    properties: { items: { type: "array", items: ref("PushSubscription") } },
    required: ["items"],
    additionalProperties: false,
  },
};

export const PUSH_PATHS = {
  "/api/v1/push/vapid-public-key": {
    get: {
      operationId: "getVapidPublicKey",
      summary: "The VAPID public key browsers subscribe with",
      security: PUBLIC,
      responses: {
        200: { description: "the key", content: json(ref("VapidPublicKey")) },
        ...UNPARSEABLE,
        404: PUSH_DISABLED,
      },
    },
  },
  "/api/v1/users/push-subscriptions": {
    post: {
      operationId: "registerMyPushSubscription",
      summary: "Register this browser's push subscription for the caller",
      description: "An endpoint belongs to one user: registering it moves it from any other. " +
        "A user keeps at most 10; the oldest is replaced.",
      security: USER,
      requestBody: { required: true, content: json(ref("NewPushSubscription")) },
      responses: {
        201: { description: "registered", content: json(ref("PushSubscription")) },
        200: { description: "already registered", content: json(ref("PushSubscription")) },
        400: error(
          400,
          "invalid body or keys (invalid_request), or an endpoint that is not an allowed push " +
            "service (endpoint_not_allowed)",
        ),
        ...USER_ERRORS,
        404: PUSH_DISABLED,
      },
    },
    get: {
      operationId: "listMyPushSubscriptions",
      summary: "The caller's push subscriptions",
      security: USER,
      responses: {
        200: { description: "oldest first", content: json(ref("PushSubscriptionList")) },
        ...USER_ERRORS,
        404: PUSH_DISABLED,
      },
    },
  },
  "/api/v1/users/push-subscriptions/{id}": {
    delete: {
      operationId: "deleteMyPushSubscription",
      summary: "Forget one of the caller's push subscriptions",
      security: USER,
      parameters: [{ ...idParam, description: "a subscription id" }],
      responses: {
        204: { description: "deleted" },
        400: error(400, "the id is not valid percent-encoding (invalid_request)"),
        ...USER_ERRORS,
        404: error(404, "unknown id or another user's (not_found), or push is off (push_disabled)"),
      },
    },
  },
};
