// The operator's token, kept in this tab's session storage, and what its claims say.
const KEY = "subledger.console.token";
export const OPERATOR_SCOPES = ["admin", "analyst", "auditor"];

function claimsOf(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(parts[1].length / 4) * 4, "="));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

function scopesOf(claims) {
  const raw = claims.scope ?? claims.scp ?? claims.permissions ?? "";
  return (Array.isArray(raw) ? raw : String(raw).split(/\s+/)).filter(Boolean);
}

/**
 * Why a token cannot sign in to the console, or null when it may try (the API has the last word).
 * Read from the token's own claims, which the browser cannot verify: they only choose the message.
 */
export function refusal(token, nowSeconds = Date.now() / 1000) {
  const claims = claimsOf(token);
  if (claims === null) return "This is not a bearer token (a JWT of three dot-separated parts).";
  if (typeof claims.exp === "number" && claims.exp <= nowSeconds) {
    return `This token expired at ${new Date(claims.exp * 1000).toISOString()}. Ask for a new one.`;
  }
  const scopes = scopesOf(claims);
  if (!scopes.some((s) => OPERATOR_SCOPES.includes(s))) {
    return `This token's scope (${scopes.join(" ") || "none"}) is not an operator's: the console needs admin, analyst or auditor. A user token cannot sign in here.`;
  }
  return null;
}

export const session = {
  token: () => sessionStorage.getItem(KEY),
  save: (token) => sessionStorage.setItem(KEY, token),
  clear: () => sessionStorage.removeItem(KEY),
  scopes() {
    const token = this.token();
    const claims = token && claimsOf(token);
    return claims ? scopesOf(claims) : [];
  },
  subject() {
    const token = this.token();
    const claims = token && claimsOf(token);
    return claims ? String(claims.sub ?? "") : "";
  },
  has(...scopes) {
    const mine = this.scopes();
    return scopes.some((s) => mine.includes(s));
  },
};
