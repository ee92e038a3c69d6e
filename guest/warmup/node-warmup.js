#!/usr/bin/env node
// Forkd warm-up for Node guests: speaks the agent's line-JSON bridge (forkd spec 3.4/3.5) on stdio.
//   -> {"ready": true}                       once, when warm
//   <- {"id": "<n>", "code": "<body>"}       one request per line
//   -> {"id": "<n>", "result": <json>}       or {"id": "<n>", "error": "<msg>", "stack": "<stack>"}
// code is an async function BODY: top-level await works, a value comes back only through `return`
// (no return = null). Non-finite numbers anywhere in the result travel as forkd's sentinels.
// Run directly it serves `require` and a persistent `state` object; the Playwright warm-up reuses
// serve() with browser, context and page in scope.
'use strict';

const readline = require('readline');

const NAN = '__js_NaN__';
const POS_INF = '__js_Infinity__';
const NEG_INF = '__js_-Infinity__';

function sentinels(_key, value) {
  if (typeof value === 'number' && !Number.isFinite(value)) {
    if (Number.isNaN(value)) return NAN;
    return value > 0 ? POS_INF : NEG_INF;
  }
  return value;
}

// The protocol owns stdout: whatever user code prints goes to stderr, which the agent forwards
// to the console log with a 'forkd-warmup: ' prefix.
const protocolWrite = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, encoding, callback) => process.stderr.write(chunk, encoding, callback);

function send(message) {
  protocolWrite(JSON.stringify(message, sentinels) + '\n');
}

const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;

async function run(scope, request) {
  const names = Object.keys(scope);
  const fn = new AsyncFunction(...names, request.code);
  const result = await fn(...names.map((n) => scope[n]));
  return result === undefined ? null : result;
}

/** Sends the ready handshake, then answers requests until stdin closes; onClose runs before exit. */
function serve(scope, onClose) {
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  // One request at a time, in order: replies never overtake each other.
  let queue = Promise.resolve();
  rl.on('line', (line) => {
    queue = queue.then(async () => {
      let request;
      try {
        request = JSON.parse(line);
      } catch (e) {
        send({ error: 'invalid json: ' + e.message });
        return;
      }
      const id = request && request.id !== undefined ? request.id : null;
      if (!request || typeof request.code !== 'string') {
        send({ id, error: 'request has no code string', stack: '' });
        return;
      }
      try {
        const result = await run(scope, request);
        // Serialise here so a BigInt or a cycle becomes this request's error, not a crash.
        const text = JSON.stringify({ id, result }, sentinels);
        protocolWrite(text + '\n');
      } catch (e) {
        const error = e instanceof Error ? e : new Error(String(e));
        send({ id, error: error.message, stack: error.stack || '' });
      }
    });
  });
  rl.on('close', () => {
    queue.then(async () => {
      if (onClose) await onClose();
      process.exit(0);
    });
  });
  send({ ready: true });
}

module.exports = { serve, sentinels, NAN, POS_INF, NEG_INF };

if (require.main === module) {
  process.stderr.write(`warmup: node ${process.version} ready\n`);
  serve({ require, state: {} });
}
