/**
 * A thin typed client for the CRM API.
 *
 * Types come from the committed OpenAPI document (`npm run generate` writes
 * `src/schema.d.ts` with openapi-typescript); requests go through openapi-fetch, so
 * paths, parameters, bodies and responses are all checked by the compiler. The wrapper
 * adds what every caller needs:
 *
 * - the access token on every request, and one transparent refresh (rotating the
 *   refresh token) when a request answers 401, after which the request is retried once;
 * - an `Idempotency-Key` on every POST (kept on the retry), so a retried create never
 *   creates twice;
 * - `ifMatch(version)` / `versionOf(response)` for the `If-Match` / `ETag` pair that
 *   guards every change.
 */
import createClient, { type Client, type Middleware } from "openapi-fetch";

import type { components, paths } from "./schema.js";

export type { components, paths };
/** Every schema of the API by name, e.g. `Schemas["Opportunity"]`. */
export type Schemas = components["schemas"];
/** A problem+json error body. */
export type Problem = Schemas["Problem"];

/** The tokens of a logged-in session. */
export interface Session {
  accessToken: string;
  refreshToken: string;
}

export interface CrmClientOptions {
  /** The server, e.g. `http://127.0.0.1:8080` (paths in the document start with `/api/v1`). */
  baseUrl: string;
  /** Called whenever the session changes (login, refresh, logout, refresh failure). */
  onSession?: (session: Session | null) => void;
  /** A `fetch` to use instead of the global one. */
  fetch?: typeof globalThis.fetch;
  /** A session saved earlier (an app restarting); refreshed when its access token expired. */
  session?: Session;
}

/** The `If-Match` value for a record version (`"3"`). */
export function ifMatch(version: number): string {
  return `"${version}"`;
}

/** The record version named by a response's `ETag`, if any. */
export function versionOf(response: Response): number | undefined {
  const etag = response.headers.get("ETag");
  if (etag === null) return undefined;
  const n = Number.parseInt(etag.replace(/^W\//, "").replaceAll('"', ""), 10);
  return Number.isNaN(n) ? undefined : n;
}

/** A new idempotency key (a random UUID). */
export function newIdempotencyKey(): string {
  return crypto.randomUUID();
}

export interface CrmClient {
  /** The typed openapi-fetch client: `api.GET("/api/v1/accounts", {...})` and so on. */
  api: Client<paths>;
  /** Logs in with e-mail and password; the session is kept for later requests. */
  login(email: string, password: string): Promise<Schemas["TokenResponse"]>;
  /** Ends the session on the server and forgets it here. */
  logout(): Promise<void>;
  /** The current session, if any. */
  session(): Session | null;
}

const AUTH_PATHS = ["/api/v1/auth/login", "/api/v1/auth/refresh"];

export function createCrmClient(options: CrmClientOptions): CrmClient {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  let current: Session | null = options.session ?? null;
  let refreshing: Promise<boolean> | null = null;
  // The request as first sent, to retry it after a refresh (its body is single-use).
  const originals = new WeakMap<Request, Request>();

  const session = (): Session | null => current;
  const setSession = (s: Session | null): void => {
    current = s;
    options.onSession?.(s);
  };

  const isAuthPath = (url: string): boolean => AUTH_PATHS.some((p) => new URL(url).pathname === p);

  const refresh = async (): Promise<boolean> => {
    const s = current;
    if (s === null) return false;
    const { data, response } = await raw.POST("/api/v1/auth/refresh", {
      body: { refresh_token: s.refreshToken },
    });
    if (data === undefined || !response.ok) {
      setSession(null);
      return false;
    }
    setSession({ accessToken: data.access_token, refreshToken: data.refresh_token });
    return true;
  };

  const middleware: Middleware = {
    onRequest({ request }) {
      if (current !== null && !request.headers.has("Authorization") && !isAuthPath(request.url)) {
        request.headers.set("Authorization", `Bearer ${current.accessToken}`);
      }
      if (request.method === "POST" && !request.headers.has("Idempotency-Key") && !isAuthPath(request.url)) {
        request.headers.set("Idempotency-Key", newIdempotencyKey());
      }
      originals.set(request, request.clone());
      return request;
    },
    async onResponse({ request, response }) {
      if (response.status !== 401 || current === null || isAuthPath(request.url)) return response;
      const original = originals.get(request);
      if (original === undefined) return response;
      // One refresh at a time: concurrent 401s wait for the same one.
      refreshing ??= refresh().finally(() => {
        refreshing = null;
      });
      const renewed = (await refreshing) ? session() : null;
      if (renewed === null) return response;
      const retry = original.clone();
      retry.headers.set("Authorization", `Bearer ${renewed.accessToken}`);
      return fetchImpl(retry);
    },
  };

  // `raw` has no middleware: it serves the refresh itself.
  const raw = createClient<paths>({ baseUrl: options.baseUrl, fetch: fetchImpl });
  const api = createClient<paths>({ baseUrl: options.baseUrl, fetch: fetchImpl });
  api.use(middleware);

  return {
    api,
    async login(email, password) {
      const { data, error } = await raw.POST("/api/v1/auth/login", { body: { email, password } });
      if (data === undefined) {
        throw new CrmError("login failed", error);
      }
      setSession({ accessToken: data.access_token, refreshToken: data.refresh_token });
      return data;
    },
    async logout() {
      if (current !== null) {
        await api.POST("/api/v1/auth/logout", {});
      }
      setSession(null);
    },
    session,
  };
}

/** An API call that did not succeed, with the problem the server answered. */
export class CrmError extends Error {
  readonly problem: Problem | undefined;

  constructor(message: string, problem: unknown) {
    const p = isProblem(problem) ? problem : undefined;
    super(p === undefined ? message : `${message}: ${p.code}: ${p.detail}`);
    this.name = "CrmError";
    this.problem = p;
  }
}

function isProblem(v: unknown): v is Problem {
  return typeof v === "object" && v !== null && "code" in v && "status" in v && "detail" in v;
}

/** The data of a successful call, or a `CrmError` with the problem. */
export function ok<T>(result: { data?: T; error?: unknown; response: Response }, what: string): T {
  if (result.data === undefined) {
    throw new CrmError(`${what} answered ${result.response.status}`, result.error);
  }
  return result.data;
}
