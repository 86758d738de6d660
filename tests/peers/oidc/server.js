// OAuth 2 / OpenID Connect authorization server for the test suite.
//
//   node tests/peers/oidc/server.js [config.json]
//   OIDC_PEER_CONFIG='{"port": 0, ...}' node tests/peers/oidc/server.js
//
// Listens on loopback only. When listening it prints exactly one line
//   OIDC_PEER_READY {"issuer": "http://127.0.0.1:PORT", "port": PORT}
// on stdout; the Python harness (tests/peers/oidc_peer.py) waits for it.
// With "exit_on_stdin_close": true it exits when its stdin closes, so it dies
// with the test process even if that process is killed without cleanup.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';

import { buildProvider } from './provider.js';
import { interactionRoutes, observeEndpoints, testRoutes, TokenLog } from './routes.js';

export const READY_PREFIX = 'OIDC_PEER_READY';

const DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  access_token_ttl: 30,
  authorization_code_ttl: 60,
  refresh_token_ttl: 3600,
  device_code_ttl: 600,
  device_interval: null,
  rotate_refresh_tokens: true,
  api_resource: 'urn:synthorg:test-api',
  api_scopes: ['api:read', 'api:write'],
  clients: [],
  exit_on_stdin_close: false,
};

function loadConfig() {
  let raw;
  if (process.argv[2]) {
    raw = fs.readFileSync(process.argv[2], 'utf8');
  } else if (process.env.OIDC_PEER_CONFIG) {
    raw = process.env.OIDC_PEER_CONFIG;
  } else {
    raw = '{}';
  }
  const given = JSON.parse(raw);
  const unknown = Object.keys(given).filter((key) => !(key in DEFAULTS));
  if (unknown.length) {
    throw new Error(`unknown config keys: ${unknown.join(', ')}`);
  }
  const config = { ...DEFAULTS, ...given };
  // The /__test routes have no authentication: never expose them beyond loopback.
  const isLoopback = config.host === 'localhost'
    || (net.isIPv4(config.host) && config.host.startsWith('127.'))
    || config.host === '::1';
  if (!isLoopback) {
    throw new Error(`host must be a loopback address, got ${config.host}`);
  }
  return config;
}

function listen(server, host, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

async function main() {
  const config = loadConfig();
  let handler = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = http.createServer((req, res) => handler(req, res));
  // The issuer must name the real port, so bind first (port 0 = any free port).
  const port = await listen(server, config.host, config.port);
  const hostForUrl = net.isIPv6(config.host) ? `[${config.host}]` : config.host;
  const issuer = `http://${hostForUrl}:${port}`;

  const provider = buildProvider(issuer, config);
  const tokenLog = new TokenLog();
  provider.use(observeEndpoints(config, tokenLog));
  provider.use(testRoutes(provider, tokenLog));
  provider.use(interactionRoutes(provider));
  provider.on('server_error', (_ctx, err) => {
    process.stderr.write(`oidc-peer server_error: ${err.stack}\n`);
  });
  handler = provider.callback();

  const shutdown = () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  if (config.exit_on_stdin_close) {
    process.stdin.on('end', shutdown);
    process.stdin.on('error', shutdown);
    process.stdin.resume();
  }

  process.stdout.write(`${READY_PREFIX} ${JSON.stringify({ issuer, port })}\n`);
}

main().catch((err) => {
  process.stderr.write(`oidc-peer failed to start: ${err.stack ?? err}\n`);
  process.exit(1);
});
