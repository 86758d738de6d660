// Builds the oidc-provider instance from the peer's JSON configuration.
//
// Deliberate choices for a test peer (each differs from the library default):
// - PKCE is required for every code-flow client, not only public ones (OAuth 2.1).
// - A client allowed the refresh_token grant gets a refresh token from the code
//   and device flows without having to ask for `offline_access` + `prompt=consent`,
//   and refresh tokens do not die with the login session.
// - Refresh tokens rotate on every use (configurable); reusing a rotated one is
//   `invalid_grant` and, as the library does, revokes the whole grant.
// - Scopes other than the OpenID ones belong to one resource server
//   (`api_resource`), which the library needs for client_credentials scopes and
//   for access tokens carrying API scopes.
import crypto from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

import { TestStoreAdapter } from './store.js';

export const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'];

export function buildProvider(issuer, config) {
  const apiResource = config.api_resource;
  const apiScopes = new Set(config.api_scopes);
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'peer-rs256', use: 'sig', alg: 'RS256' };

  const provider = new Provider(issuer, {
    adapter: TestStoreAdapter,
    clients: config.clients,
    jwks: { keys: [signingKey] },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    scopes: OIDC_SCOPES,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    responseTypes: ['code'],
    pkce: { required: () => true, methods: ['S256'] },
    async findAccount(_ctx, accountId) {
      return {
        accountId,
        async claims() {
          return { sub: accountId, name: accountId, email: `${accountId}@peer.test`, email_verified: true };
        },
      };
    },
    async issueRefreshToken(_ctx, client) {
      return client.grantTypeAllowed('refresh_token');
    },
    async expiresWithSession() {
      return false;
    },
    rotateRefreshToken: config.rotate_refresh_tokens,
    interactions: {
      url(_ctx, interaction) {
        return `/interaction/${interaction.uid}`;
      },
    },
    ttl: {
      AccessToken: config.access_token_ttl,
      ClientCredentials: config.access_token_ttl,
      AuthorizationCode: config.authorization_code_ttl,
      DeviceCode: config.device_code_ttl,
      RefreshToken: config.refresh_token_ttl,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
      Grant: config.refresh_token_ttl,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      deviceFlow: {
        enabled: true,
        // The pages are JSON so the Python harness reads them without an HTML parser.
        async userCodeInputSource(ctx, form, out, err) {
          ctx.body = {
            page: 'device_input',
            xsrf: hiddenValue(form, 'xsrf'),
            // The error's class name (e.g. AbortedError, NotFoundError) is stable; out.error is prose here.
            error: err ? err.name : out?.error,
            error_description: out?.error_description ?? err?.message,
          };
        },
        async userCodeConfirmSource(ctx, form, client, _deviceInfo, userCode) {
          ctx.body = {
            page: 'device_confirm',
            xsrf: hiddenValue(form, 'xsrf'),
            user_code: userCode,
            client_id: client.clientId,
          };
        },
        async successSource(ctx) {
          ctx.body = { page: 'device_success', client_id: ctx.oidc.client.clientId };
        },
      },
      resourceIndicators: {
        enabled: true,
        async defaultResource(ctx, _client, oneOf) {
          if (oneOf) return oneOf;
          const requested = (ctx.oidc.params?.scope ?? '').split(' ');
          return requested.some((scope) => apiScopes.has(scope)) ? apiResource : undefined;
        },
        async useGrantedResource() {
          return true;
        },
        async getResourceServerInfo(_ctx, resourceIndicator) {
          if (resourceIndicator !== apiResource) {
            throw new errors.InvalidTarget();
          }
          return {
            scope: [...apiScopes].join(' '),
            audience: apiResource,
            accessTokenTTL: config.access_token_ttl,
            accessTokenFormat: 'opaque',
          };
        },
      },
    },
  });

  // Nothing in front of the peer terminates TLS; it is plain HTTP on loopback.
  provider.proxy = false;
  return provider;
}

function hiddenValue(form, name) {
  const match = form.match(new RegExp(`name="${name}" value="([^"]*)"`));
  return match ? match[1] : undefined;
}
