// Bulwark web console: log in, pick a VM, drive its serial console over the
// WebSocket protocol of docs/console.md.
//
// The page is served with a strict CSP (no inline script or style), so all
// of its behaviour lives here. The server decides who may use a console and
// which input it accepts; what this page refuses (copy, paste, drag and
// drop) is defence in depth, never the control itself.
'use strict';

(function () {
  const $ = (selector) => document.querySelector(selector);

  const POLICY = "the console's clipboard policy forbids copy and paste";
  const PASTE_BLOCKED = 'paste blocked: ' + POLICY;
  const COPY_BLOCKED = 'copy blocked: ' + POLICY;
  const MENU_BLOCKED = 'context menu blocked: ' + POLICY;

  // The server refuses larger keystroke messages (docs/console.md).
  const MAX_INPUT_BYTES = 4096;

  // Why the server closed, by close code, for when no "closed" message
  // came first (docs/console.md).
  const CLOSE_CODES = {
    1000: 'closed',
    4001: 'refused: the console is held by someone else',
    4003: 'permission revoked',
    4008: 'timed out',
    4009: 'taken over',
    4010: 'VM stopped',
  };

  // Must match the fallback rules at the end of app.css.
  const FONT_FAMILY = 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace';
  const FONT_SIZE = 14;

  const encoder = new TextEncoder();

  let term = null; // one xterm for the page's lifetime, reset per connection
  let ws = null; // the current console socket; events from older ones are ignored
  let closedShown = false; // the current connection's end is already on screen

  // ---- views ----

  function show(view) {
    $('#login-view').hidden = view !== 'login';
    $('#vms-view').hidden = view === 'login';
    if (view === 'login') {
      $('#console-view').hidden = true;
    }
  }

  // setText is the only way text reaches the page: user names, VM names
  // and server messages are data, never markup.
  function setText(selector, text) {
    $(selector).textContent = text;
  }

  function setNotice(text) {
    setText('#console-notice', text);
  }

  // ---- login ----

  // errorText is the server's JSON error message, or the HTTP status.
  async function errorText(resp) {
    let msg = '';
    try {
      msg = (await resp.json()).error || '';
    } catch (_) {
      // not JSON: fall back to the status
    }
    return msg || resp.statusText || 'HTTP ' + resp.status;
  }

  async function login(ev) {
    ev.preventDefault();
    setText('#login-error', '');
    $('#login').disabled = true;
    try {
      const resp = await fetch('/api/v1/login', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ user: $('#user').value, password: $('#password').value }),
        credentials: 'same-origin',
        cache: 'no-store',
      });
      if (!resp.ok) {
        let msg = 'login failed: ' + (await errorText(resp));
        const retry = resp.headers.get('Retry-After');
        if (resp.status === 429 && retry) {
          msg += ' (try again in ' + retry + ' s)';
        }
        setText('#login-error', msg);
        return;
      }
      // The body repeats the session secret for the CLI. The page never
      // reads it, so no script can leak it: the HttpOnly cookie the
      // response set is the browser's credential.
      $('#password').value = '';
      show('vms');
      await loadVMs();
    } catch (e) {
      setText('#login-error', 'login failed: ' + e.message);
    } finally {
      $('#login').disabled = false;
    }
  }

  // ---- VM list ----

  // loadVMs lists the VMs; it answers whether the session is still valid.
  async function loadVMs() {
    setText('#vms-error', '');
    let resp;
    try {
      resp = await fetch('/api/v1/vms', { credentials: 'same-origin', cache: 'no-store' });
    } catch (e) {
      setText('#vms-error', 'cannot list VMs: ' + e.message);
      return true;
    }
    if (resp.status === 401) {
      show('login');
      return false;
    }
    if (!resp.ok) {
      setText('#vms-error', 'cannot list VMs: ' + (await errorText(resp)));
      return true;
    }
    renderVMs(await resp.json());
    return true;
  }

  function renderVMs(vms) {
    const list = $('#vms');
    list.replaceChildren();
    const names = (Array.isArray(vms) ? vms : [])
      .map((vm) => ({ name: (vm.spec && vm.spec.name) || '', state: vm.state || '' }))
      .filter((vm) => vm.name !== '')
      .sort((a, b) => a.name.localeCompare(b.name));
    if (names.length === 0) {
      const li = document.createElement('li');
      li.className = 'empty';
      li.textContent = 'no VMs';
      list.append(li);
      return;
    }
    for (const vm of names) {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.className = 'vm-name';
      name.textContent = vm.name;
      const state = document.createElement('span');
      state.className = 'vm-state';
      state.textContent = vm.state;
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = 'Connect';
      button.dataset.vm = vm.name;
      button.addEventListener('click', () => connect(vm.name));
      li.append(name, state, button);
      list.append(li);
    }
  }

  // ---- terminal ----

  // mirrorXtermStyles works around the CSP for xterm's DOM renderer, which
  // writes its colours, font and cursor rules into <style> elements that a
  // policy without 'unsafe-inline' blocks. Constructed stylesheets are not
  // subject to style-src, so the text of those elements is copied into
  // one. The CSS is xterm's own, built from the options below, never from
  // guest output. The blocked <style> elements still log CSP reports.
  function mirrorXtermStyles(screen) {
    if (!('adoptedStyleSheets' in document) || !('replaceSync' in CSSStyleSheet.prototype)) {
      return; // app.css has a monochrome fallback
    }
    const sheet = new CSSStyleSheet();
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    const styles = () => screen.querySelectorAll(':scope > style');
    const sync = () => sheet.replaceSync(Array.from(styles(), (s) => s.textContent).join('\n'));
    // Watch only the <style> elements and the screen's own children: the
    // rows below change with every byte of output.
    const onStyleChange = new MutationObserver(sync);
    const watch = (style) => onStyleChange.observe(style, { childList: true, characterData: true, subtree: true });
    new MutationObserver((records) => {
      for (const r of records) {
        r.addedNodes.forEach((n) => n.nodeName === 'STYLE' && watch(n));
      }
      sync();
    }).observe(screen, { childList: true });
    styles().forEach(watch);
    sync();
  }

  // clipboardKey says why a key event is refused, or '' to let it through:
  // the shortcuts that paste or copy in browsers and terminals.
  function clipboardKey(ev) {
    const key = (ev.key || '').toLowerCase(); // absent on some synthetic events
    const ctrl = ev.ctrlKey || ev.metaKey;
    if (key === 'insert' && ev.shiftKey && !ctrl) return PASTE_BLOCKED; // Shift+Insert
    if (key === 'insert' && ctrl) return COPY_BLOCKED; // Ctrl+Insert
    if (key === 'v' && ctrl) return PASTE_BLOCKED; // Ctrl+V, Ctrl+Shift+V, Cmd+V
    if ((key === 'c' || key === 'x') && ev.metaKey) return COPY_BLOCKED; // Cmd+C, Cmd+X
    if (key === 'c' && ev.ctrlKey && ev.shiftKey) return COPY_BLOCKED; // Ctrl+Shift+C
    // Plain Ctrl+C is the guest's interrupt; it copies only with a
    // selection, which the page clears as soon as one appears.
    if (key === 'c' && ev.ctrlKey && term.hasSelection()) {
      term.clearSelection();
      return COPY_BLOCKED;
    }
    return '';
  }

  function ensureTerminal() {
    if (term) {
      return;
    }
    term = new Terminal({
      cols: 80,
      rows: 24,
      fontFamily: FONT_FAMILY,
      fontSize: FONT_SIZE,
      cursorBlink: true,
      scrollback: 5000,
      rightClickSelectsWord: false,
      // Guest output can carry OSC 8 hyperlinks; by default xterm offers
      // to open them. A console has no business navigating the browser.
      linkHandler: { activate() {}, allowNonHttpProtocols: false },
    });
    term.open($('#terminal'));
    mirrorXtermStyles(term.element.querySelector('.xterm-screen'));

    // A selection is what gets copied, and xterm starts one on mousedown
    // (on Linux also handing it to the primary selection, ready for a
    // middle-click paste elsewhere). So mouse buttons never reach xterm:
    // focus is all a click is for here. The guest loses mouse reporting,
    // which a serial console hardly uses.
    $('#terminal').addEventListener(
      'mousedown',
      (ev) => {
        ev.preventDefault();
        ev.stopPropagation();
        term.focus();
      },
      { capture: true },
    );
    // Should a selection appear all the same (xterm's API), drop it.
    term.onSelectionChange(() => {
      if (term.hasSelection()) {
        term.clearSelection();
      }
    });
    term.attachCustomKeyEventHandler((ev) => {
      const refusal = clipboardKey(ev);
      if (refusal === '') {
        return true;
      }
      ev.preventDefault(); // no browser paste or copy either
      if (ev.type === 'keydown') {
        setNotice(refusal);
      }
      return false;
    });
    term.onData((data) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        return;
      }
      const bytes = encoder.encode(data);
      if (bytes.length > MAX_INPUT_BYTES) {
        setNotice('input dropped: more than ' + MAX_INPUT_BYTES + ' bytes at once');
        return;
      }
      ws.send(bytes); // binary: keystrokes
    });
    term.onResize(sendResize);
  }

  function sendResize() {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
    }
  }

  // ---- console connection ----

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  // clock renders an RFC 3339 time as the local HH:MM:SS.
  function clock(when) {
    const d = new Date(when);
    if (Number.isNaN(d.getTime())) {
      return String(when || '?');
    }
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  // renderStatus: "held by alice (cli) since 10:02:03; waiting: bob",
  // prefixed with "you are waiting in line; " while this page waits.
  function renderStatus(msg) {
    const holders = (msg.holders || []).map(
      (h) => h.user + (h.client ? ' (' + h.client + ')' : '') + ' since ' + clock(h.since),
    );
    const waiting = (msg.waiting || []).map((w) => w.user);
    let text = holders.length > 0 ? 'held by ' + holders.join(', ') : 'not held';
    if (waiting.length > 0) {
      text += '; waiting: ' + waiting.join(', ');
    }
    if (msg.state === 'waiting') {
      text = 'you are waiting in line; ' + text;
    }
    setText('#console-status', text);
    document.body.dataset.consoleState = msg.state || '';
  }

  // markClosed records the end of the current connection once: the
  // server's "closed" reason wins over the close code that follows it.
  function markClosed(reason) {
    document.body.dataset.console = 'closed';
    delete document.body.dataset.consoleState;
    $('#disconnect').disabled = true;
    if (!closedShown) {
      closedShown = true;
      setNotice('closed: ' + reason);
    }
  }

  function onControl(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (_) {
      return; // not ours to interpret
    }
    switch (msg.type) {
      case 'status':
        renderStatus(msg);
        break;
      case 'notice':
        setNotice(String(msg.message || ''));
        break;
      case 'closed':
        markClosed(String(msg.reason || 'closed by the server'));
        break;
    }
  }

  function connect(name) {
    disconnect(); // one console at a time
    $('#console-view').hidden = false; // xterm measures its font on open: be visible
    ensureTerminal();
    term.reset();
    setText('#console-vm', name);
    setText('#console-status', 'connecting…');
    setNotice('');
    closedShown = false;
    delete document.body.dataset.console;

    const query = 'force=' + ($('#force').checked ? '1' : '0') + '&wait=' + ($('#wait').checked ? '1' : '0');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    // The session cookie authenticates the upgrade: a browser cannot put
    // an Authorization header on a WebSocket.
    const sock = new WebSocket(
      scheme + '//' + location.host + '/api/v1/vms/' + encodeURIComponent(name) + '/console?' + query,
    );
    sock.binaryType = 'arraybuffer';
    ws = sock;

    sock.addEventListener('open', () => {
      if (sock !== ws) return;
      document.body.dataset.console = 'connected';
      $('#disconnect').disabled = false;
      sendResize();
      term.focus();
    });
    sock.addEventListener('message', (ev) => {
      if (sock !== ws) return;
      if (typeof ev.data === 'string') {
        onControl(ev.data);
      } else {
        term.write(new Uint8Array(ev.data));
      }
    });
    sock.addEventListener('close', (ev) => {
      if (sock !== ws) return;
      ws = null;
      setText('#console-status', 'disconnected');
      // A refused upgrade (no session, no permission, unknown VM) is
      // indistinguishable from a network failure here: both are 1006.
      markClosed(CLOSE_CODES[ev.code] || 'connection failed or lost (code ' + ev.code + ')');
    });
  }

  function disconnect() {
    if (!ws) {
      return;
    }
    const sock = ws;
    ws = null; // its close event is no longer ours to report
    sock.close(1000);
    setText('#console-status', 'disconnected');
    markClosed('disconnected');
  }

  // ---- clipboard policy ----

  // Capture-phase listeners on window run before any listener of xterm's,
  // so these events never reach the terminal. The login form is exempt:
  // pasting a password (from a password manager) is no console input.
  function guard(type, message, applies) {
    window.addEventListener(
      type,
      (ev) => {
        if (ev.target instanceof Node && $('#login-form').contains(ev.target)) return;
        if (applies && !applies(ev)) return;
        ev.preventDefault();
        ev.stopImmediatePropagation();
        if (type === 'dragover' && ev.dataTransfer) {
          ev.dataTransfer.dropEffect = 'none';
        }
        if (message) {
          setNotice(message);
        }
      },
      { capture: true },
    );
  }

  guard('paste', PASTE_BLOCKED);
  guard('drop', PASTE_BLOCKED);
  guard('dragover', ''); // fires continuously: the drop says it
  guard('copy', COPY_BLOCKED);
  guard('cut', COPY_BLOCKED);
  guard('dragstart', COPY_BLOCKED);
  guard('contextmenu', MENU_BLOCKED);
  // Input that arrives without a paste event (some platforms' paste and
  // drop paths into xterm's hidden textarea).
  guard('beforeinput', PASTE_BLOCKED, (ev) => /^insertFrom(Paste|Drop|Yank)/.test(ev.inputType || ''));

  // ---- start ----

  $('#login-form').addEventListener('submit', login);
  $('#refresh').addEventListener('click', loadVMs);
  $('#vm-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = $('#vm-name').value.trim();
    if (/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(name)) {
      connect(name);
    } else {
      setText('#vms-error', 'not a VM name: ' + name);
    }
  });
  $('#disconnect').addEventListener('click', disconnect);

  // A session cookie from an earlier login may still be valid: show the
  // VMs straight away, or the login form if the server says no.
  show('login');
  loadVMs().then((ok) => ok && show('vms'));
})();
