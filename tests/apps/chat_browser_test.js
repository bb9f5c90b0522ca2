// The chat page in headless Chromium (SPEC §4, issue 5): two pages join one
// room as alice and bob, a message and presence cross between them, an
// EventSource gets the room's events, and after a server restart on the same
// port both pages go `reconnecting` and back to `connected`.
// usage: node chat_browser_test.js PATH/TO/chat WORK_DIR CHROMIUM   (run by chat_browser_test.sh)
// Screenshots: WORK_DIR/chat-*.png. Every wait is bounded and polled.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const [chatBin, workDir, chromiumPath] = process.argv.slice(2);
const { chromium } = require(path.join(path.resolve(workDir), 'node_modules', 'playwright-core'));

const WAIT = 15000;  // ms, for any one condition
const overall = setTimeout(() => {
  console.error('FAIL: the browser test did not finish in 240 s');
  process.exit(1);
}, 240000);

let failures = 0;
function check(label, cond, detail) {
  console.log((cond ? 'ok   ' : 'FAIL ') + label + (cond || detail === undefined ? '' : '  ' + JSON.stringify(detail)));
  if (!cond) failures++;
}

function startChat(listen, extra = []) {
  return new Promise((resolve, reject) => {
    const proc = spawn(chatBin, ['--listen', listen, '--threads', '2', '--drain-timeout', '2s', ...extra],
                       { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error('chat did not print its listening line: ' + JSON.stringify(out)));
    }, WAIT);
    proc.on('error', (e) => { clearTimeout(timer); reject(e); });
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /^listening on http:\/\/127\.0\.0\.1:(\d+)\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, port: Number(m[1]) });
      }
    });
  });
}

function stopChat(chat) {
  return new Promise((resolve) => {
    if (!chat || chat.proc.exitCode !== null) return resolve(chat ? chat.proc.exitCode : null);
    const timer = setTimeout(() => chat.proc.kill('SIGKILL'), WAIT);
    chat.proc.on('exit', (code) => { clearTimeout(timer); resolve(code); });
    chat.proc.kill('SIGTERM');
  });
}

async function statusStartsWith(page, prefix, timeout = WAIT) {
  try {
    await page.waitForFunction((p) => document.getElementById('status').textContent.startsWith(p), prefix,
                               { timeout, polling: 50 });
    return true;
  } catch (e) {
    return false;
  }
}

async function membersAre(page, expected) {
  try {
    await page.waitForFunction(
        (want) => [...document.querySelectorAll('#members > *')].map((e) => e.textContent).sort().join(',') === want,
        expected.slice().sort().join(','), { timeout: WAIT, polling: 50 });
    return true;
  } catch (e) {
    return false;
  }
}

async function shows(page, from, text) {
  try {
    await page.waitForFunction(([f, t]) => [...document.querySelectorAll('#messages > *')].some(
        (e) => e.querySelector('.from') && e.querySelector('.from').textContent === f &&
               e.querySelector('.text') && e.querySelector('.text').textContent === t),
        [from, text], { timeout: WAIT, polling: 50 });
    return true;
  } catch (e) {
    return false;
  }
}

async function main() {
  let chat = await startChat('127.0.0.1:0');
  const port = chat.port;
  const base = `http://127.0.0.1:${port}`;
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    timeout: 60000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    context.setDefaultTimeout(WAIT);
    const pageErrors = [];
    // A Content-Security-Policy violation is reported on the console, not as a page error.
    const watch = (p) => {
      p.on('pageerror', (e) => pageErrors.push(String(e)));
      p.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) pageErrors.push(m.text()); });
    };
    const alice = await context.newPage();
    const bob = await context.newPage();
    for (const p of [alice, bob]) watch(p);

    await alice.goto(`${base}/?room=r&name=alice`);
    check('alice: #status starts with "connected"', await statusStartsWith(alice, 'connected'));
    await bob.goto(`${base}/?room=r&name=bob`);
    check('bob: #status starts with "connected"', await statusStartsWith(bob, 'connected'));
    check('alice sees bob join (presence in #members)', await membersAre(alice, ['alice', 'bob']));
    check('bob sees both members', await membersAre(bob, ['alice', 'bob']));

    const text = 'hi bob <b>not bold</b> & <img src=x onerror=alert(1)>';
    await alice.fill('#message', text);
    await alice.click('#send');
    check('bob sees alice\'s message', await shows(bob, 'alice', text));
    check('alice sees her own message', await shows(alice, 'alice', text));
    check('message text is shown as text, not markup',
          (await bob.$$eval('#messages b, #messages img', (els) => els.length)) === 0);
    check('one #messages child per message', (await bob.$$eval('#messages > *', (els) => els.length)) === 1);
    await bob.fill('#message', 'hello alice');
    await bob.press('#message', 'Enter');
    check('Enter sends too, and alice sees it', await shows(alice, 'bob', 'hello alice'));
    await alice.screenshot({ path: path.join(workDir, 'chat-alice.png') });
    await bob.screenshot({ path: path.join(workDir, 'chat-bob.png') });

    // The room's messages as Server-Sent Events, through the browser's EventSource.
    const events = await bob.evaluate(() => new Promise((resolve) => {
      const es = new EventSource('/api/rooms/r/events');
      const got = [];
      es.onmessage = (e) => {
        got.push({ id: e.lastEventId, data: JSON.parse(e.data) });
        if (got.length === 2) { es.close(); resolve(got); }
      };
      setTimeout(() => { es.close(); resolve(got); }, 10000);
    }));
    check('EventSource gets the room history with ids', events.length === 2 && events[0].data.text === text &&
          events[1].data.text === 'hello alice' && events.every((e) => e.id === e.data.id), events);

    // Restart the server on the same port: the pages retry with backoff and rejoin.
    check('chat drains and exits 0', (await stopChat(chat)) === 0);
    chat = null;
    check('alice: #status goes to "reconnecting"', await statusStartsWith(alice, 'reconnecting'));
    check('bob: #status goes to "reconnecting"', await statusStartsWith(bob, 'reconnecting'));
    await alice.screenshot({ path: path.join(workDir, 'chat-alice-reconnecting.png') });
    chat = await startChat(`127.0.0.1:${port}`);
    check('alice: back to "connected"', await statusStartsWith(alice, 'connected', 45000));
    check('bob: back to "connected"', await statusStartsWith(bob, 'connected', 45000));
    check('both are members again', await membersAre(alice, ['alice', 'bob']));
    await bob.fill('#message', 'after the restart');
    await bob.click('#send');
    check('messages flow after the reconnect', await shows(alice, 'bob', 'after the restart'));
    await alice.screenshot({ path: path.join(workDir, 'chat-alice-reconnected.png') });

    // With --token, the page passes the access_token of its own URL to the WebSocket.
    const secured = await startChat('127.0.0.1:0', ['--token', 't0k/en']);
    try {
      const carol = await context.newPage();
      const mallory = await context.newPage();
      for (const p of [carol, mallory]) watch(p);
      await carol.goto(`http://127.0.0.1:${secured.port}/?room=s&name=carol&access_token=t0k%2Fen`);
      check('--token: the page passes on its access_token', await statusStartsWith(carol, 'connected'));
      await mallory.goto(`http://127.0.0.1:${secured.port}/?room=s&name=mallory`);
      check('--token: a page without it is refused and retries', await statusStartsWith(mallory, 'reconnecting'));
      check('--token: ... and only carol is a member', await membersAre(carol, ['carol']));
      await carol.close();
      await mallory.close();
    } finally {
      await stopChat(secured);
    }
    check('no script errors or CSP violations on the pages', pageErrors.length === 0, pageErrors);
  } finally {
    await context.close().catch(() => {});
    await stopChat(chat);
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  console.log(`chat_browser_test: ${failures} failed; screenshots in ${workDir}`);
  clearTimeout(overall);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.error('FAIL: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
