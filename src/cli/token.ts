import { SignJWT } from "jose";
import { PUBLISH_SCOPE } from "../domain/scopes.ts";

export interface TokenRequest {
  readonly secret: string;
  readonly sub: string;
  readonly publish: boolean;
  readonly ttlMs: number;
  readonly issuer?: string;
  readonly audience?: string;
}

/** An HS256 token that alarmd configured with the same secret accepts. */
export async function mintToken(request: TokenRequest): Promise<string> {
  const jwt = new SignJWT(request.publish ? { scope: PUBLISH_SCOPE } : {})
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(request.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor((Date.now() + request.ttlMs) / 1000));
  if (request.issuer) jwt.setIssuer(request.issuer);
  if (request.audience) jwt.setAudience(request.audience);
  return await jwt.sign(new TextEncoder().encode(request.secret));
}
