// Koa middleware mounted in front of oidc-provider's own routes:
// - /interaction/:uid[/login|/confirm|/abort]: login and consent as JSON + form
//   POSTs, so a requests.Session can sign in and consent with no browser;
// - /__test/...: test-only controls (counters, client registration, grant
//   revocation, device-code expiry). The server refuses to bind anything but
//   loopback, so these are never reachable from another machine.
import { errors } from 'oidc-provider';

import {
  expireDeviceCode, grantIdsForClient, revokeGrant, TestStoreAdapter,
} from './store.js';

const MAX_BODY_BYTES = 64 * 1024;

async function readBody(ctx) {
  const chunks = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) ctx.throw(413, 'body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  if ((ctx.get('content-type') || '').includes('application/json')) {
    try {
      return JSON.parse(text);
    } catch {
      ctx.throw(400, 'invalid JSON body');
    }
  }
  return Object.fromEntries(new URLSearchParams(text));
}

function normalizeUserCode(input) {
  // Same normalization oidc-provider applies before storing a user code.
  return String(input).toUpperCase().replace(/\W/g, '');
}

// Token-endpoint bookkeeping: one record per POST /token, whatever its outcome.
export class TokenLog {
  constructor() {
    this.requests = [];
  }

  record(entry) {
    this.requests.push(entry);
  }

  reset() {
    this.requests = [];
  }

  summary() {
    const byGrantType = {};
    for (const { grant_type: grantType } of this.requests) {
      byGrantType[grantType] = (byGrantType[grantType] ?? 0) + 1;
    }
    return { total: this.requests.length, by_grant_type: byGrantType, requests: this.requests };
  }
}

export function observeEndpoints(config, tokenLog) {
  return async function observe(ctx, next) {
    await next();
    const route = ctx.oidc?.route;
    if (route === 'token') {
      const body = typeof ctx.body === 'object' && ctx.body !== null ? ctx.body : {};
      tokenLog.record({
        grant_type: ctx.oidc.params?.grant_type ?? 'unknown',
        client_id: ctx.oidc.client?.clientId ?? null,
        status: ctx.status,
        error: body.error ?? null,
      });
    } else if (route === 'device_authorization' && ctx.status === 200 && config.device_interval) {
      // oidc-provider omits `interval` (RFC 8628 then means 5 s); a shorter one keeps tests fast.
      ctx.body = { ...ctx.body, interval: config.device_interval };
    }
  };
}

async function consent(provider, details) {
  const { prompt, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  return { consent: details.grantId ? {} : { grantId } };
}

export function interactionRoutes(provider) {
  const pattern = /^\/interaction\/([\w-]+)(?:\/(login|confirm|abort))?$/;

  return async function interactions(ctx, next) {
    const match = ctx.path.match(pattern);
    if (!match) return next();
    const [, uid, action] = match;
    ctx.set('cache-control', 'no-store');

    let details;
    try {
      details = await provider.interactionDetails(ctx.req, ctx.res);
    } catch (err) {
      if (err instanceof errors.SessionNotFound) {
        ctx.status = 400;
        ctx.body = { error: 'interaction_not_found', error_description: err.message };
        return undefined;
      }
      throw err;
    }
    if (details.uid !== uid) {
      ctx.status = 400;
      ctx.body = { error: 'interaction_mismatch' };
      return undefined;
    }

    if (!action) {
      if (ctx.method !== 'GET') ctx.throw(405);
      const base = `/interaction/${uid}`;
      ctx.body = {
        uid,
        prompt: details.prompt.name,
        reasons: details.prompt.reasons,
        details: details.prompt.details,
        client_id: details.params.client_id,
        scope: details.params.scope ?? null,
        account_id: details.session?.accountId ?? null,
        actions: { login: `${base}/login`, confirm: `${base}/confirm`, abort: `${base}/abort` },
      };
      return undefined;
    }

    if (ctx.method !== 'POST') ctx.throw(405);
    const body = await readBody(ctx);
    let result;
    if (action === 'abort') {
      result = { error: 'access_denied', error_description: 'End-User aborted interaction' };
    } else if (action === 'login') {
      if (details.prompt.name !== 'login') ctx.throw(400, `prompt is ${details.prompt.name}, not login`);
      const accountId = body.login || body.username;
      if (!accountId) ctx.throw(400, 'login is required');
      result = { login: { accountId: String(accountId) } };
    } else {
      if (details.prompt.name !== 'consent') ctx.throw(400, `prompt is ${details.prompt.name}, not consent`);
      result = await consent(provider, details);
    }
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    ctx.status = 303;
    ctx.redirect(returnTo);
    return undefined;
  };
}

export function testRoutes(provider, tokenLog) {
  return async function testOnly(ctx, next) {
    if (!ctx.path.startsWith('/__test/')) return next();
    ctx.set('cache-control', 'no-store');
    const route = `${ctx.method} ${ctx.path}`;

    switch (route) {
      case 'GET /__test/health':
        ctx.body = { ok: true };
        return undefined;
      case 'GET /__test/token-requests':
        ctx.body = tokenLog.summary();
        return undefined;
      case 'POST /__test/reset':
        tokenLog.reset();
        ctx.status = 204;
        return undefined;
      case 'POST /__test/clients': {
        const metadata = await readBody(ctx);
        try {
          await provider.Client.validate(metadata);
        } catch (err) {
          ctx.status = 400;
          ctx.body = { error: err.error ?? 'invalid_client_metadata', error_description: err.error_description ?? err.message };
          return undefined;
        }
        await new TestStoreAdapter('Client').upsert(metadata.client_id, metadata);
        const client = await provider.Client.find(metadata.client_id);
        ctx.status = 201;
        ctx.body = client.metadata();
        return undefined;
      }
      case 'POST /__test/grants/revoke': {
        const { client_id: clientId } = await readBody(ctx);
        if (!clientId) ctx.throw(400, 'client_id is required');
        const grantIds = grantIdsForClient(clientId);
        for (const grantId of grantIds) revokeGrant(grantId);
        ctx.body = { client_id: clientId, revoked_grants: grantIds.length };
        return undefined;
      }
      case 'POST /__test/device/expire': {
        const { user_code: userCode } = await readBody(ctx);
        if (!userCode) ctx.throw(400, 'user_code is required');
        if (!expireDeviceCode(normalizeUserCode(userCode))) ctx.throw(404, 'no such user_code');
        ctx.status = 204;
        return undefined;
      }
      default:
        ctx.status = 404;
        ctx.body = { error: 'not_found', error_description: `no test route ${route}` };
        return undefined;
    }
  };
}
