#!/usr/bin/env node
// Forkd warm-up for the playwright-browser recipe (forkd spec 3.5): launches Debian's Chromium
// through playwright-core, opens about:blank, then serves evals with browser, context and page in
// scope. Everything launched here is in the snapshot: children start with the browser running.
'use strict';

const { serve } = require('./node-warmup.js');

const executablePath = process.env.FORKD_CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

async function main() {
  const started = Date.now();
  const { chromium } = require(process.env.FORKD_PLAYWRIGHT || 'playwright-core');
  const browser = await chromium.launch({ executablePath, headless: true, args: ARGS });
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto('about:blank');
  process.stderr.write(`warmup: chromium launched, page=about:blank (${Date.now() - started} ms)\n`);
  serve({ browser, context, page }, () => browser.close().catch(() => {}));
}

main().catch((e) => {
  process.stderr.write('warmup fatal: ' + (e && e.stack ? e.stack : String(e)) + '\n');
  process.exit(1);
});
