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
  // Playwright's 30 s default is too short for a child's first page work under TCG, whose translation
  // cache starts empty in every new VMM process.
  context.setDefaultTimeout(Number(process.env.FORKD_PLAYWRIGHT_TIMEOUT_MS || 300000));
  const page = await context.newPage();
  // Render one page before the snapshot: Blink's and V8's lazy start-up work is then done in the
  // parent, and every child inherits it instead of paying it on its first eval.
  await page.setContent('<!doctype html><title>warm</title><p>warm</p>');
  await page.title();
  await page.goto('about:blank');
  process.stderr.write(`warmup: chromium launched, page=about:blank (${Date.now() - started} ms)\n`);
  serve({ browser, context, page }, () => browser.close().catch(() => {}));
}

main().catch((e) => {
  process.stderr.write('warmup fatal: ' + (e && e.stack ? e.stack : String(e)) + '\n');
  process.exit(1);
});
