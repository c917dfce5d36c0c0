// The console's only way to the data: POST /graphql with the operator's bearer token.
import { session } from "./session.js";

/** A refusal or failure the pages show as it is: kind is "unauthenticated", "forbidden", "api" or "network". */
export class ApiError extends Error {
  constructor(kind, message, code) {
    super(message);
    this.kind = kind;
    this.code = code;
  }
}

const KIND_OF_CODE = { UNAUTHENTICATED: "unauthenticated", FORBIDDEN: "forbidden" };

/** Run one GraphQL operation; answers `data`, or throws an ApiError for the first error. */
export async function gql(query, variables = {}, token = session.token()) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new ApiError("network", `The API could not be reached (${error.message}).`, "NETWORK");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError("api", `The API answered HTTP ${response.status} without a GraphQL body.`, `HTTP_${response.status}`);
  }
  if (body.errors && body.errors.length) {
    const first = body.errors[0];
    const code = (first.extensions && first.extensions.code) || "INTERNAL";
    throw new ApiError(KIND_OF_CODE[code] || "api", first.message, code);
  }
  return body.data;
}
