// A local OpenID provider for Serre's development stack and the gateway's tests, built on
// the certified npm package `oidc-provider`. Confidential clients (clients.json) obtain
// RS256 JWT access tokens with the client-credentials grant:
//
//   curl -u est-ensemble-admin:dev-secret-est-ensemble-admin \
//     -d grant_type=client_credentials -d resource=urn:serre:api $ISSUER/token
//
// Tokens carry `sub` (the client id), `groups` and `organisation` from clients.json, and
// `aud: serre-api` for the resource `urn:serre:api` (any other resource indicator becomes
// the audience itself). The signing key is generated at start and written, with the
// issuer URL, to $SERRE_OIDC_STATE_DIR so tests can forge attack tokens. In-memory
// storage and a throwaway key: development and tests only.
//
// Environment: PORT (default 15433; 0 = any free port), SERRE_OIDC_STATE_DIR (required),
// SERRE_OIDC_CLIENTS (default ./clients.json), SERRE_OIDC_TOKEN_TTL (seconds, default 600),
// SERRE_OIDC_HOST (address to listen on, default 127.0.0.1), SERRE_OIDC_TLS_CERT and
// SERRE_OIDC_TLS_KEY (PEM files: serve HTTPS, as a production gateway requires).
import { generateKeyPairSync } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import Provider from 'oidc-provider';

const here = dirname(fileURLToPath(import.meta.url));
const stateDir = process.env.SERRE_OIDC_STATE_DIR;
if (!stateDir) {
  console.error('SERRE_OIDC_STATE_DIR is required');
  process.exit(2);
}
const port = Number(process.env.PORT ?? 15433);
const ttl = Number(process.env.SERRE_OIDC_TOKEN_TTL ?? 600);
const clientsFile = process.env.SERRE_OIDC_CLIENTS ?? join(here, 'clients.json');
const { clients } = JSON.parse(readFileSync(clientsFile, 'utf8'));
const byId = new Map(clients.map((c) => [c.client_id, c]));

function writeAtomically(path, text, mode = 0o600) {
  writeFileSync(`${path}.tmp`, text, { mode });
  renameSync(`${path}.tmp`, path);
}

const kid = `serre-test-${Date.now().toString(36)}`;
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };
writeAtomically(join(stateDir, 'signing-key.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
writeAtomically(join(stateDir, 'kid'), kid);

const host = process.env.SERRE_OIDC_HOST ?? '127.0.0.1';
const tls = process.env.SERRE_OIDC_TLS_CERT
  ? { cert: readFileSync(process.env.SERRE_OIDC_TLS_CERT), key: readFileSync(process.env.SERRE_OIDC_TLS_KEY) }
  : null;
const server = tls ? createHttpsServer(tls) : createHttpServer();
server.listen(port, host, () => {
  const issuer = `${tls ? 'https' : 'http'}://${host}:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    })),
    jwks: { keys: [jwk] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'urn:serre:api',
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator) => ({
          scope: '',
          audience: resourceIndicator === 'urn:serre:api' ? 'serre-api' : resourceIndicator,
          accessTokenTTL: ttl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    extraTokenClaims: (ctx, token) => {
      const c = byId.get(token.clientId);
      return c ? { groups: c.groups, organisation: c.organisation } : {};
    },
  });
  server.on('request', provider.callback());
  writeAtomically(join(stateDir, 'issuer'), issuer, 0o644);
  console.log(`oidc-provider listening: ${issuer}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
