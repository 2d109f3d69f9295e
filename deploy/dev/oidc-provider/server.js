// A local OpenID provider for Serre's development stack and the gateway's tests, built on
// the certified npm package `oidc-provider`. Confidential clients (clients.json) obtain
// RS256 JWT access tokens with the client-credentials grant:
//
//   curl -u est-ensemble-admin:dev-secret-est-ensemble-admin \
//     -d grant_type=client_credentials -d resource=urn:serre:api $ISSUER/token
//
// Tokens carry `sub` (the client id), `groups` and `organisation` from clients.json, and
// `aud: serre-api` for the resource `urn:serre:api` (any other resource indicator becomes
// the audience itself).
//
// The web console (client `serre-console`) signs people in with the authorization code
// flow and PKCE on the same sign-in page, and renews their access tokens with refresh
// tokens (`offline_access`); signing out of the console ends the session here too
// (RP-Initiated Logout: /session/end with id_token_hint, then back to the console).
//
// People sign in with the device authorization grant (RFC 8628) through the public client
// `serre-cli` (no secret; grants device_code and refresh_token), as `serre login` does:
// the verification page takes the user code, then this server's own sign-in page
// (/interaction/…) asks for a development account — each client of clients.json is also an
// account, with the same `sub`, `groups` and `organisation`, and its client secret as
// password — and consent is given at once for `openid offline_access` and the API. The
// provider's devInteractions (which sign anyone in without a password) stay disabled. The signing key is generated at start and written, with the
// issuer URL, to $SERRE_OIDC_STATE_DIR so tests can forge attack tokens. In-memory
// storage and a throwaway key: development and tests only.
//
// Environment: PORT (default 15433; 0 = any free port), SERRE_OIDC_STATE_DIR (required),
// SERRE_OIDC_CLIENTS (default ./clients.json), SERRE_OIDC_TOKEN_TTL (seconds, default 600),
// SERRE_OIDC_HOST (address to listen on, default 127.0.0.1), SERRE_OIDC_TLS_CERT and
// SERRE_OIDC_TLS_KEY (PEM files: serve HTTPS, as a production gateway requires),
// SERRE_OIDC_RP_LOGOUT (`0`: no end_session_endpoint, as a provider without RP-Initiated
// Logout; the console's tests check its local sign-out against it).
import { generateKeyPairSync } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { timingSafeEqual } from 'node:crypto';
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
// The public client of Serre's command line (device flow, refresh tokens).
const CLI_CLIENT = 'serre-cli';
// The public client of the gateway's web console (authorization code + PKCE).
const CONSOLE_CLIENT = 'serre-console';

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
    clients: [
      ...clients.map((c) => ({
        client_id: c.client_id,
        client_secret: c.client_secret,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
      })),
      {
        // The gateway's web console (/console): authorization code flow with PKCE, a
        // public client. `native` lets the redirect URI's loopback port vary (RFC 8252
        // §7.3), as the gateway under test listens on a free port.
        client_id: CONSOLE_CLIENT,
        client_name: 'Serre (console web)',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        // refresh_token: with `offline_access` (and prompt=consent) the console gets a
        // refresh token and renews a lapsed access token without signing in again.
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [
          'http://127.0.0.1/console/auth/callback',
          'http://localhost/console/auth/callback',
        ],
        // RP-Initiated Logout: « Se déconnecter » ends this provider's session too, then
        // comes back to the console (any loopback port, as above).
        post_logout_redirect_uris: [
          'http://127.0.0.1/console?deconnecte=1',
          'http://localhost/console?deconnecte=1',
        ],
      },
      {
        client_id: CLI_CLIENT,
        client_name: 'serre (command line)',
        token_endpoint_auth_method: 'none',
        grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
        redirect_uris: [],
        response_types: [],
      },
    ],
    findAccount: (ctx, id) => (byId.has(id)
      ? { accountId: id, claims: () => ({ sub: id }) }
      : undefined),
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    scopes: ['openid', 'offline_access'],
    jwks: { keys: [jwk] },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: process.env.SERRE_OIDC_RP_LOGOUT !== '0' },
      clientCredentials: { enabled: true },
      deviceFlow: { enabled: true },
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
      // A person's token (device flow) carries its account's groups, a client's its own.
      const c = byId.get(token.accountId ?? token.clientId);
      return c ? { groups: c.groups, organisation: c.organisation } : {};
    },
  });
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(provider, req, res).catch((err) => {
        console.error('interaction:', err);
        if (!res.headersSent) {
          res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
        }
        res.end(`sign-in failed: ${err.message}\n`);
      });
    } else {
      callback(req, res);
    }
  });
  writeAtomically(join(stateDir, 'issuer'), issuer, 0o644);
  console.log(`oidc-provider listening: ${issuer}`);
});

// ---- Sign-in and consent pages of the device flow (development accounts) -----------------

const escapeHtml = (v) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 16384) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function samePassword(account, password) {
  const want = Buffer.from(account.client_secret);
  const got = Buffer.from(password ?? '');
  return want.length === got.length && timingSafeEqual(want, got);
}

function page(res, status, title, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head>`
    + `<body><h1>${title}</h1>${body}</body></html>`);
}

function loginForm(res, uid, message) {
  page(res, message ? 401 : 200, 'Serre development sign-in', `${message ? `<p>${escapeHtml(message)}</p>` : ''}
<p>Development accounts are the clients of clients.json; the password is the client secret.</p>
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label>Account <input name="login" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button></form>`);
}

// GET /interaction/:uid shows the sign-in form (or gives consent at once, below);
// POST /interaction/:uid/login checks the account and its password.
async function interaction(provider, req, res) {
  const [, , uid, step] = new URL(req.url, 'http://x').pathname.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  const { prompt, params, session } = details;
  if (req.method === 'GET' && prompt.name === 'login') {
    loginForm(res, uid);
    return;
  }
  if (req.method === 'POST' && step === 'login' && prompt.name === 'login') {
    const form = await readForm(req);
    const account = byId.get(form.get('login'));
    if (!account || !samePassword(account, form.get('password'))) {
      loginForm(res, uid, 'Unknown account or wrong password.');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: account.client_id } },
      { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'consent') {
    // Development: the CLI is first-party; consent is given for what it asked.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } },
      { mergeWithLastSubmission: true });
    return;
  }
  page(res, 400, 'Unexpected step', `<p>${escapeHtml(prompt.name)}</p>`);
}

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
