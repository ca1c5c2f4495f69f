// Analytics.js (@segment/analytics-next, the browser library) in a real Chromium, sending
// to `serve` from a page on another origin, as a shop's page sends to Segment: CORS
// preflights, `text/plain` bodies with the write key, Basic authentication, its own headers.
// Used by tests/clients.rs; the libraries come from scripts/clients.sh.
//
//   node tests/browser_sender.js SERVE_URL WRITE_KEY COUNT MODE CHROMIUM
//
// MODE is `standard` (one request per event, to /v1/t, /v1/i, ...), `batching` (/v1/b), or
// `cdn` (one request per event, with the settings loaded from serve as from Segment's CDN).
// Each event carries `properties.n` (or `traits.n`) = its number and `properties.mode`. Exits
// once `serve` has answered 200 for all COUNT events; any other answer from `serve`, a page
// error or a failed delivery fails it.
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');
const { chromium } = require('playwright-core');

const [serveUrl, writeKey, count, mode, executablePath] = process.argv.slice(2);
const n = Number(count);
const bundle = path.join(
  path.dirname(require.resolve('@segment/analytics-next/package.json')),
  'dist',
  'umd'
);

const page = `<!doctype html><html><head><title>shop</title>
<script src="/ajs/index.js"></script></head><body>shop</body></html>`;

function staticServer() {
  const server = http.createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      return res.end(page);
    }
    const file = path.join(bundle, path.normalize(req.url.replace(/^\/ajs\//, '')));
    if (!req.url.startsWith('/ajs/') || !file.startsWith(bundle) || !fs.existsSync(file)) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'Content-Type': 'application/javascript' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// The events one request to serve carries (a batch, or one event).
function eventsIn(body) {
  const json = JSON.parse(body);
  return Array.isArray(json.batch) ? json.batch.length : 1;
}

async function main() {
  const server = await staticServer();
  const origin = `http://127.0.0.1:${server.address().port}`;
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  const problems = [];
  let acknowledged = 0;
  let requests = 0;
  try {
    const tab = await browser.newPage();
    tab.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    tab.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
        problems.push(`console: ${m.text()}`);
      }
    });
    // The page has no favicon; anything else missing is a problem.
    tab.on('response', (r) => {
      if (r.status() >= 400 && !r.url().startsWith(serveUrl) && !r.url().endsWith('/favicon.ico')) {
        problems.push(`${r.url()}: ${r.status()}`);
      }
    });
    tab.on('requestfailed', (r) => {
      if (r.url().startsWith(serveUrl)) problems.push(`${r.url()}: ${r.failure().errorText}`);
    });
    tab.on('requestfinished', async (r) => {
      if (!r.url().startsWith(serveUrl) || r.method() !== 'POST') return;
      requests += 1;
      const response = await r.response();
      if (response.status() === 200) {
        acknowledged += eventsIn(r.postData());
      } else {
        problems.push(`${r.url()}: ${response.status()} ${await response.text()}`);
      }
    });
    await tab.goto(origin + '/');
    const failed = await tab.evaluate(
      async ({ serveUrl, writeKey, n, mode }) => {
        const host = serveUrl.replace(/^https?:\/\//, '') + '/v1';
        const segment = {
          apiKey: writeKey,
          apiHost: host,
          protocol: serveUrl.split(':')[0],
          // A header of the page's own: serve must allow what the preflight asks for.
          deliveryStrategy:
            mode === 'batching'
              ? { strategy: 'batching', config: { size: 25, timeout: 200, headers: { 'X-Shop': 'demo' } } }
              : { strategy: 'standard', config: { headers: { 'X-Shop': 'demo' } } },
        };
        // `cdn`: the settings come from serve itself, as they come from Segment's CDN.
        const settings =
          mode === 'cdn'
            ? { writeKey, cdnURL: serveUrl }
            : { writeKey, cdnSettings: { integrations: { 'Segment.io': segment } } };
        const [analytics] = await window.AnalyticsNext.AnalyticsBrowser.load(settings, {
          disableClientPersistence: true,
        });
        const sent = [];
        for (let i = 0; i < n; i++) {
          const props = { n: i, mode, note: 'é "quoted", comma' };
          switch (i % 5) {
            case 0: sent.push(analytics.track('Order Completed', props)); break;
            case 1: sent.push(analytics.identify(`u${i}`, { n: i, mode, email: `u${i}@example.com` })); break;
            case 2: sent.push(analytics.page('Shop', 'Home', props)); break;
            case 3: sent.push(analytics.group('g1', { n: i, mode })); break;
            default: sent.push(analytics.screen('Settings', props));
          }
        }
        const contexts = await Promise.all(sent);
        return contexts.filter((c) => c.failedDelivery()).map((c) => String(c.failedDelivery().reason));
      },
      { serveUrl, writeKey, n, mode }
    );
    problems.push(...failed.map((f) => `failed delivery: ${f}`));
    const deadline = Date.now() + 60000;
    while (acknowledged < n && problems.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    if (acknowledged !== n) problems.push(`serve acknowledged ${acknowledged} of ${n} events`);
  } finally {
    await browser.close();
    server.close();
  }
  if (problems.length) {
    console.error(problems.join('\n'));
    process.exit(1);
  }
  console.log(`${acknowledged} events acknowledged in ${requests} requests from ${origin}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
