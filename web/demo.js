/* demo.js - the notification center served at / (web/index.html).
 *
 * Two modes:
 * - anonymous (no token): follows one channel (?channel=NAME, default "demo") through herald.js
 *   with the transport chosen in the switch, with an unread badge counted in this browser and a
 *   list of notifications (kept in localStorage with the last id, so a reload resumes where it
 *   stopped);
 * - signed in (a token given as #token=... in the address, or pasted into the sign-in form): a
 *   herald.session on the user's personal feed (user/42), whose badge is the server's unread
 *   count, the same on every device of the user; clicking an unread notification (or "Mark all
 *   read") marks it read on the server, which clears the badge on the user's other devices too.
 * Both publish like a backend does (POST /pub/{channel}) and chart the server's own figures from
 * GET /metrics. Message data is only ever put into the page with textContent. */
(function () {
  'use strict';

  const $ = (sel) => document.querySelector(sel);
  const params = new URLSearchParams(location.search);
  const MAX_ITEMS = 100;
  const TRANSPORTS = ['auto', 'websocket', 'sse', 'iframe', 'longpoll', 'poll'];
  const NAMES = { auto: 'auto', websocket: 'WebSocket', sse: 'SSE', iframe: 'iframe', longpoll: 'long poll', poll: 'short poll' };
  const H = window.herald;

  /* ------------------------------------------------------------------ sign-in */
  const TOKEN_KEY = 'herald-demo:token';

  /* The token: from #token=... (then kept in localStorage and taken out of the address bar; a
   * fragment never reaches the server's logs), or the one kept from before. */
  function takeToken() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) {
      const t = decodeURIComponent(m[1]);
      try {
        localStorage.setItem(TOKEN_KEY, t);
      } catch (e) { /* private mode: signed in for this page only */ }
      window.history.replaceState(null, '', location.pathname + location.search); // (`history` below is the charts')
      return t;
    }
    try {
      return localStorage.getItem(TOKEN_KEY) || null;
    } catch (e) {
      return null;
    }
  }

  /* The token's claims (not verified: the server does that), for showing who is signed in. */
  function claimsOf(token) {
    try {
      const b = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const bin = atob(b + '==='.slice((b.length + 3) % 4));
      return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)))) || {};
    } catch (e) {
      return {};
    }
  }

  const TOKEN = takeToken();
  const SIGNED_IN = !!TOKEN && !!H && typeof H.session === 'function';
  const CLAIMS = TOKEN ? claimsOf(TOKEN) : {};
  const CHANNEL = SIGNED_IN ? null : params.get('channel') || 'demo';
  const STORE_KEY = SIGNED_IN ? 'herald-demo:session' : 'herald-demo:' + CHANNEL;

  const el = {
    badge: $('#badge'), bell: $('#bell'), state: $('#state'), conn: $('#conn'), active: $('#active-transport'),
    list: $('#messages'), empty: $('#empty'), unreadLabel: $('#unread-label'), unreadChannels: $('#unread-channels'),
    log: $('#log'), lastId: $('#stat-lastid'), received: $('#stat-received'), dupes: $('#stat-dupes'),
    form: $('#publish-form'), text: $('#publish-text'), event: $('#publish-event'), curl: $('#curl'),
    result: $('#publish-result'), error: $('#error'), switcher: $('#transport'), apiKey: $('#publish-key'),
    signin: $('#signin'), signinForm: $('#signin-form'), signinToken: $('#signin-token'), signinResult: $('#signin-result'),
  };

  /* ------------------------------------------------------------------ saved state */
  function loadSaved() {
    try {
      const s = JSON.parse(localStorage.getItem(STORE_KEY) || 'null');
      if (s && typeof s === 'object') return s;
    } catch (e) { /* private mode or bad JSON: start afresh */ }
    return {};
  }
  const saved = loadSaved();
  // signed in, the list comes from the server (the feed's history) on every visit
  let items = !SIGNED_IN && Array.isArray(saved.items) ? saved.items.slice(0, MAX_ITEMS) : [];
  let lastId = !SIGNED_IN && typeof saved.lastId === 'string' ? saved.lastId : null;
  let chosen = TRANSPORTS.includes(params.get('transport')) ? params.get('transport')
    : TRANSPORTS.includes(saved.transport) ? saved.transport : 'auto';
  const seen = new Set(items.map((i) => i.id));
  let received = 0;
  let dupes = 0;

  function save() {
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify(SIGNED_IN ? { transport: chosen } : { lastId, transport: chosen, items }));
    } catch (e) { /* storage full or disabled: the demo still works, it just forgets */ }
  }

  /* ------------------------------------------------------------------ herald.js */
  function fail(text) {
    el.error.hidden = false;
    el.error.textContent = text;
  }
  if (!H || typeof H.subscribe !== 'function') {
    fail('herald.js did not load (GET /herald.js): live updates are off. The chart and the form still work.');
  }

  // Anonymous: herald.unread keeps the count in localStorage (shared by tabs on this origin).
  // Signed in: the count is the server's (session.unread), the same on every device.
  const unread = H && typeof H.unread === 'function'
    ? H.unread(STORE_KEY + ':unread', { storage: SIGNED_IN ? null : localStorage })
    : (() => {
      const u = { count: 0, fns: [] };
      u.add = () => { u.count++; u.fns.forEach((f) => f(u.count)); };
      u.markRead = () => { u.count = 0; u.fns.forEach((f) => f(u.count)); };
      u.onChange = (f) => { u.fns.push(f); };
      return u;
    })();
  let sub = null; // the Subscription (anonymous) or the Session (signed in)

  /* The user's personal channel, once the server has said which it is. */
  function feed() {
    return (sub && sub.feed) || (CLAIMS.sub != null ? 'user/' + CLAIMS.sub : '@me');
  }
  // the server's counts as last told (kept across a transport switch until the new session's)
  let shownUnread = { total: 0, channels: {} };
  function serverUnread() {
    return shownUnread;
  }

  /* ------------------------------------------------------------------ inbox */
  const pad = (n) => String(n).padStart(2, '0');
  function clock(t) {
    const d = new Date(t);
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }
  function hue(s) {
    let h = 0;
    for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
    return h % 360;
  }

  function itemNode(item, fresh) {
    const li = document.createElement('li');
    li.className = 'msg' + (item.unread ? ' unread' : '') + (fresh ? ' fresh' : '');
    li.dataset.id = item.id;
    li.dataset.event = item.event;
    if (SIGNED_IN) {
      li.tabIndex = 0;
      li.title = 'Mark read (and everything older)';
    }

    const avatar = document.createElement('span');
    avatar.className = 'avatar';
    avatar.textContent = (item.event || '?').charAt(0);
    avatar.style.background = 'hsl(' + hue(item.event || '') + ' 55% 52%)';
    avatar.setAttribute('aria-hidden', 'true');

    const main = document.createElement('div');
    main.className = 'msg-main';
    const top = document.createElement('div');
    top.className = 'msg-top';
    const ev = document.createElement('span');
    ev.className = 'event';
    ev.textContent = item.event;
    top.append(ev);
    const text = document.createElement('p');
    text.className = 'text';
    text.textContent = item.data; // never innerHTML: the payload is untrusted
    main.append(top, text);

    const meta = document.createElement('div');
    meta.className = 'msg-meta';
    const time = document.createElement('time');
    time.dateTime = new Date(item.time).toISOString();
    time.title = new Date(item.time).toLocaleString();
    time.textContent = clock(item.time);
    const id = document.createElement('div');
    id.className = 'id';
    id.textContent = '#' + item.id;
    meta.append(time, id);

    li.append(avatar, main, meta);
    return li;
  }

  function renderList() {
    el.list.replaceChildren(...items.map((i) => itemNode(i, false)));
    renderEmpty();
  }
  function renderEmpty() {
    el.empty.hidden = el.list.children.length > 0;
  }

  function badgeCount() {
    return SIGNED_IN ? serverUnread().total : unread.count | 0;
  }

  function renderBadge() {
    const n = badgeCount();
    el.badge.textContent = n > 99 ? '99+' : String(n);
    el.badge.dataset.count = String(n);
    el.badge.classList.toggle('unread', n > 0);
    el.bell.setAttribute('aria-label', n ? n + ' unread notifications' : 'Notifications');
    el.unreadLabel.textContent = n ? n + ' unread' : 'No unread notifications';
    document.title = (n ? '(' + n + ') ' : '') + 'herald — notification center';
    if (SIGNED_IN) {
      // where the unread ones are: the personal channel and any other channel the user tracks
      const chans = Object.entries(serverUnread().channels).filter(([, k]) => k > 0);
      el.unreadChannels.replaceChildren(...chans.map(([c, k]) => {
        const s = document.createElement('span');
        s.className = 'unread-chan';
        s.dataset.channel = c;
        s.textContent = '#' + c + ' ' + k;
        return s;
      }));
    }
  }

  /* Signed in, a notification is unread while it is among the newest the server counts unread on
   * the feed (read state is a cursor: everything up to it is read). */
  let rowsTimer = 0;
  function renderUnreadRows() {
    if (!SIGNED_IN) return;
    clearTimeout(rowsTimer);
    const k = serverUnread().channels[feed()] || 0;
    items.forEach((item, i) => { item.unread = i < k; });
    el.list.querySelectorAll('li.msg[data-id]').forEach((li) => {
      const item = items.find((x) => x.id === li.dataset.id);
      li.classList.toggle('unread', !!(item && item.unread));
    });
  }

  function renderStats() {
    el.lastId.textContent = lastId == null ? '—' : lastId;
    el.received.textContent = String(received);
    el.dupes.textContent = String(dupes);
    el.dupes.dataset.count = String(dupes);
  }

  function ring() {
    el.bell.classList.remove('ring');
    void el.bell.offsetWidth; // restart the animation
    el.bell.classList.add('ring');
  }

  function onMessage(msg) {
    received++;
    const id = String(msg.id);
    if (seen.has(id)) {
      // A transport that hands a message twice is a bug; count it where it can be seen.
      dupes++;
      logLine('duplicate message #' + id + ' dropped', 'bad');
      renderStats();
      return;
    }
    seen.add(id);
    lastId = id;
    const item = {
      id,
      event: msg.event || 'message',
      data: typeof msg.data === 'string' ? msg.data : String(msg.data),
      time: typeof msg.time === 'number' ? msg.time : Date.now(),
      unread: true,
    };
    items.unshift(item);
    if (items.length > MAX_ITEMS) {
      items.length = MAX_ITEMS;
      while (el.list.children.length >= MAX_ITEMS) el.list.lastChild.remove();
    }
    el.list.prepend(itemNode(item, true));
    if (SIGNED_IN) {
      // shown unread at once; the server's count decides (its unread event follows the message,
      // and a count that did not change brings no event: look again in a moment)
      clearTimeout(rowsTimer);
      rowsTimer = setTimeout(renderUnreadRows, 300);
    } else {
      // herald.js has already counted it (subscribe's `unread` option); add() ignores a repeat
      unread.add(msg);
      renderBadge();
      ring();
    }
    renderEmpty();
    renderStats();
    save();
  }

  function onWithdrawn(info) {
    const id = info && info.id != null ? String(info.id) : null;
    if (id === null) return;
    items = items.filter((i) => i.id !== id);
    const li = el.list.querySelector('li.msg[data-id="' + CSS.escape(id) + '"]');
    if (li) li.remove();
    logLine('notification #' + id + ' withdrawn by the backend', 'warn');
    renderUnreadRows();
    renderEmpty();
  }

  function onGap(info) {
    info = info || {};
    const requested = info.requested != null ? String(info.requested) : null;
    const first = info.first_available != null ? String(info.first_available) : null;
    let text;
    if (info.dropped != null) {
      text = info.dropped + ' notification(s) were dropped by the server (slow connection).';
    } else if (info.reset || (requested && first && Number(requested) >= Number(first))) {
      // Our cursor is ahead of the channel: the server restarted and ids start again.
      seen.clear();
      text = 'The server lost its history (restart?): ids start again from #' + first + '.';
    } else {
      text = 'Some notifications are no longer in the server history' +
        (first ? ' (it now starts at #' + first + ').' : '.');
    }
    // a first visit replays the feed's history from the start: older ones being gone is normal
    if (SIGNED_IN && requested === '0' && !info.reset) return;
    const li = document.createElement('li');
    li.className = 'notice';
    li.textContent = text;
    el.list.prepend(li);
    renderEmpty();
    logLine('gap: ' + (requested ? 'after #' + requested : '') + (first ? ', history from #' + first : ''), 'warn');
  }

  /* Signed in: marks read on the server; the badge follows the server's answer and its unread
   * event, here and on the user's other devices. */
  function markRead(id) {
    const done = id == null ? sub.markAllRead() : sub.markRead(sub.feed, id);
    return Promise.resolve(done).then(() => renderBadge(), (e) => {
      logLine('mark read failed: ' + (e && e.message ? e.message : e), 'bad');
    });
  }

  function markAllRead() {
    if (SIGNED_IN) {
      if (sub) markRead(null);
      return;
    }
    unread.markRead();
    items.forEach((i) => { i.unread = false; });
    el.list.querySelectorAll('.msg.unread').forEach((li) => li.classList.remove('unread'));
    renderBadge();
    save();
  }

  $('#mark-read').addEventListener('click', markAllRead);
  $('#clear').addEventListener('click', () => {
    markAllRead();
    items = [];
    el.list.replaceChildren();
    renderEmpty();
    save();
  });
  if (SIGNED_IN) {
    // reading a notification: a click (or Enter) on an unread one moves the read cursor to it
    const read = (e) => {
      const li = e.target.closest('li.msg[data-id]');
      if (li && li.classList.contains('unread') && sub) markRead(li.dataset.id);
    };
    el.list.addEventListener('click', read);
    el.list.addEventListener('keydown', (e) => { if (e.key === 'Enter') read(e); });
  }
  el.bell.addEventListener('click', () => {
    $('#inbox').scrollIntoView({ behavior: 'smooth', block: 'start' });
  });
  if (typeof unread.onChange === 'function') unread.onChange(() => renderBadge());

  /* ------------------------------------------------------------------ connection log */
  function logLine(text, cls) {
    const li = document.createElement('li');
    if (cls) li.className = cls;
    const t = document.createElement('time');
    t.textContent = clock(Date.now());
    li.append(t, document.createTextNode(text));
    el.log.prepend(li);
    while (el.log.children.length > 5) el.log.lastChild.remove();
  }

  /* ------------------------------------------------------------------ subscription */
  let generation = 0;

  function showState(state) {
    const s = state || (sub && sub.state) || 'idle';
    el.state.textContent = s;
    el.conn.dataset.state = s;
    const t = sub && sub.transport;
    el.active.textContent = t ? (NAMES[t] || t) : '—';
    el.active.dataset.transport = t || '';
    el.switcher.querySelectorAll('button').forEach((b) => {
      b.setAttribute('aria-checked', String(b.dataset.transport === chosen));
      b.classList.toggle('live', s === 'open' && (b.dataset.transport === t));
    });
  }

  async function currentCursor() {
    // No saved cursor: start at the channel's newest id, so that the first transport switch
    // already has a cursor to resume from (a subscription without one only sees new messages).
    try {
      const r = await fetch('/channels/' + CHANNEL.split('/').map(encodeURIComponent).join('/'), { cache: 'no-store' });
      if (r.ok) {
        const j = await r.json();
        if (j && j.last_id != null) return String(j.last_id);
      }
    } catch (e) { /* fall through */ }
    return null;
  }

  /* The options both modes share: state and gap reports for the page. */
  function commonOptions(gen, transport) {
    return {
      transport,
      onState: (state, info) => {
        if (gen !== generation) return;
        showState(state);
        const via = sub && sub.transport ? NAMES[sub.transport] || sub.transport : NAMES[transport];
        const why = info && (info.message || info.reason);
        logLine(via + ' · ' + state + (why ? ' (' + why + ')' : ''), state === 'open' ? 'good' : state === 'closed' || state === 'error' ? 'bad' : '');
      },
      onGap: (info) => { if (gen === generation) onGap(info); },
    };
  }

  function watchFallback(s, gen) {
    if (typeof s.on !== 'function') return;
    s.on('fallback', (info) => {
      if (gen !== generation) return;
      const from = info && (info.from || info.previous);
      const to = info && (info.to || info.transport) || s.transport;
      logLine('fallback ' + (from ? (NAMES[from] || from) + ' → ' : '→ ') + (NAMES[to] || to), 'warn');
      showState();
    });
  }

  async function connect(transport) {
    const gen = ++generation;
    chosen = transport;
    if (sub) {
      if (sub.lastId != null && sub.lastId !== '') lastId = String(sub.lastId);
      try { sub.close(); } catch (e) { /* already closed */ }
      sub = null;
    }
    save();
    showState('connecting');
    if (!H || typeof H.subscribe !== 'function') return;
    if (SIGNED_IN) {
      connectSession(gen, transport);
      return;
    }
    if (lastId == null) {
      const c = await currentCursor();
      if (gen !== generation) return;
      if (c != null && lastId == null) lastId = c;
      renderStats();
    }
    logLine('subscribe #' + CHANNEL + ' via ' + NAMES[transport] + (lastId != null ? ', resume after #' + lastId : ''));
    const opts = commonOptions(gen, transport);
    opts.unread = unread; // counted by herald.js, which also rebases it when the server's ids restart
    if (lastId != null) opts.lastId = lastId;
    let s;
    try {
      s = H.subscribe('', CHANNEL, (m) => { if (gen === generation) onMessage(m); }, opts);
    } catch (e) {
      fail('subscribe failed: ' + e.message);
      return;
    }
    sub = s;
    watchFallback(s, gen);
    if (typeof s.on === 'function') {
      s.on('error', (info) => {
        if (gen === generation && info && info.reason === 'unauthorized') {
          fail('This server has access control: anonymous visitors may not follow #' + CHANNEL + '. Sign in (top right) to see your own notifications.');
        }
      });
    }
    showState(s.state || 'connecting');
  }

  /* Signed in: a herald.session on the personal feed. The first one replays the feed's history
   * (the notification list); a transport switch resumes after the last id. */
  function connectSession(gen, transport) {
    logLine('session for user ' + (CLAIMS.sub != null ? CLAIMS.sub : '?') + ' via ' + NAMES[transport] + (lastId != null ? ', resume after #' + lastId : ', from the start of the feed'));
    const opts = commonOptions(gen, transport);
    opts.token = TOKEN;
    opts.lastId = lastId == null ? 0 : lastId;
    opts.onMessage = (m) => { if (gen === generation) onMessage(m); };
    let s;
    try {
      s = H.session(opts);
    } catch (e) {
      fail('session failed: ' + e.message);
      return;
    }
    sub = s;
    watchFallback(s, gen);
    s.on('unread', (u) => {
      if (gen !== generation) return;
      if (u.total > shownUnread.total) ring();
      shownUnread = u;
      $('#channel-name').textContent = feed();
      renderBadge();
      renderUnreadRows();
    });
    s.on('withdrawn', (info) => { if (gen === generation) onWithdrawn(info); });
    s.on('open', () => {
      if (gen !== generation) return;
      $('#channel-name').textContent = feed();
      renderChannel();
    });
    s.on('disconnect', (info) => {
      if (gen !== generation) return;
      logLine('disconnected by the server: ' + info.reason + (info.reconnect ? ' (reconnecting)' : ''), info.reconnect ? 'warn' : 'bad');
      if (!info.reconnect) fail('The server ended this session: ' + info.reason + '. Reload the page to connect again.');
    });
    s.on('error', (info) => {
      if (gen !== generation || !info) return;
      if (info.reason === 'unauthorized' || info.reason === 'forbidden') {
        // a pasted token cannot be renewed: once refused (expired?), sign in again
        s.close();
        fail('The server refused your token (' + (info.message || info.reason) + '). It may have expired: sign in again.');
        showSignin(true);
      }
    });
    showState(s.state || 'connecting');
  }

  el.switcher.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-transport]');
    if (!b || (b.dataset.transport === chosen && sub && sub.state !== 'closed')) return;
    connect(b.dataset.transport);
  });
  window.addEventListener('pagehide', () => {
    if (!SIGNED_IN && sub && sub.lastId != null && sub.lastId !== '') { lastId = String(sub.lastId); save(); }
  });

  /* ------------------------------------------------------------------ sign-in form */
  function showSignin(open) {
    el.signin.hidden = !open;
    if (open) el.signinToken.focus();
  }
  $('#sign-in').addEventListener('click', () => showSignin(el.signin.hidden));
  $('#signin-cancel').addEventListener('click', () => showSignin(false));
  $('#sign-out').addEventListener('click', () => {
    try { localStorage.removeItem(TOKEN_KEY); } catch (e) { /* nothing kept */ }
    if (sub) sub.close();
    location.replace(location.pathname + location.search);
  });
  el.signinForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = el.signinToken.value.trim();
    if (!t) return;
    el.signinResult.classList.remove('bad');
    el.signinResult.textContent = 'Checking the token with the server…';
    let r;
    try {
      r = await fetch('/unread', { cache: 'no-store', headers: { Authorization: 'Bearer ' + t } });
    } catch (err) {
      el.signinResult.classList.add('bad');
      el.signinResult.textContent = 'The server cannot be reached: ' + err.message;
      return;
    }
    if (r.ok) {
      // the page starts again signed in (takeToken reads the fragment and keeps the token)
      location.hash = 'token=' + encodeURIComponent(t);
      location.reload();
      return;
    }
    let why = 'HTTP ' + r.status;
    try { why = (await r.json()).error || why; } catch (err) { /* not JSON */ }
    el.signinResult.classList.add('bad');
    el.signinResult.textContent = r.status === 400
      ? 'This server runs without access control (as `make run` does): it checks no tokens, so there is no user to sign in as. Start it with a token secret (see the README).'
      : 'Token refused: ' + why + '.';
  });

  /* ------------------------------------------------------------------ publish */
  const shq = (s) => "'" + s.replace(/'/g, "'\\''") + "'";
  /* The channel the form publishes to: the one followed, or the signed-in user's feed. */
  const pubChannel = () => (SIGNED_IN ? feed() : CHANNEL);
  const channelPath = (c) => c.split('/').map(encodeURIComponent).join('/');
  function pubUrl(event) {
    return location.origin + '/pub/' + channelPath(pubChannel()) + (event ? '?event=' + encodeURIComponent(event) : '');
  }
  function renderCurl() {
    const text = el.text.value || el.text.placeholder;
    const event = el.event.value.trim();
    const parts = [['c-cmd', 'curl']];
    // signed in, herald has access control: a backend publishes with its API key
    if (SIGNED_IN) parts.push([null, ' -H '], ['c-str', '"Authorization: Bearer $API_KEY"']);
    parts.push([null, ' -d '], ['c-str', shq(text)], [null, ' '], ['c-str', shq(pubUrl(event))]);
    el.curl.replaceChildren(...parts.map(([cls, t]) => {
      if (!cls) return document.createTextNode(t);
      const span = document.createElement('span');
      span.className = cls;
      span.textContent = t;
      return span;
    }));
  }
  const curlText = () => el.curl.textContent;

  /* The API key typed into the form (signed in), kept in memory only. */
  const apiKey = () => (SIGNED_IN && el.apiKey ? el.apiKey.value.trim() : '');

  async function publish(data, event) {
    const key = apiKey();
    if (H && typeof H.publish === 'function') {
      const o = event ? { event } : {};
      if (key) o.token = key;
      const r = await H.publish('', pubChannel(), data, o);
      if (r && typeof r.json === 'function') return r.json();
      return r;
    }
    const r = await fetch(pubUrl(event), { method: 'POST', body: data, headers: key ? { Authorization: 'Bearer ' + key } : {} });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    return r.json();
  }

  function showResult(text, bad) {
    el.result.textContent = text;
    el.result.classList.toggle('bad', !!bad);
  }

  el.form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = el.text.value;
    if (!data) return;
    const event = el.event.value.trim();
    const btn = $('#publish-submit');
    btn.disabled = true;
    try {
      const r = await publish(data, event);
      el.text.value = '';
      renderCurl();
      const n = r && r.subscribers != null ? r.subscribers : '?';
      showResult('Published #' + (r && r.id != null ? r.id : '?') + ' → delivered to ' + n + ' subscriber' + (n === 1 ? '' : 's') + '.');
    } catch (err) {
      const hint = SIGNED_IN && err && (err.status === 401 || err.status === 403) ? ' A backend publishes with an API key: type it above.' : '';
      showResult('Publish failed: ' + (err && err.message ? err.message : err) + hint, true);
    } finally {
      btn.disabled = false;
      el.text.focus();
    }
  });
  el.text.addEventListener('input', renderCurl);
  el.event.addEventListener('input', renderCurl);
  document.querySelectorAll('.presets .chip[data-text]').forEach((b) => {
    b.addEventListener('click', () => {
      el.event.value = b.dataset.event;
      el.text.value = b.dataset.text;
      renderCurl();
      el.text.focus();
    });
  });
  $('#burst').addEventListener('click', async () => {
    const n = 20;
    const stamp = clock(Date.now());
    try {
      await Promise.all(Array.from({ length: n }, (_, i) => publish('Burst ' + stamp + ' — ' + (i + 1) + '/' + n, 'burst')));
      showResult('Published ' + n + ' messages.');
    } catch (err) {
      showResult('Burst failed: ' + (err && err.message ? err.message : err), true);
    }
  });
  $('#copy-curl').addEventListener('click', async (e) => {
    try {
      await navigator.clipboard.writeText(curlText());
      e.target.textContent = 'copied';
    } catch (err) {
      e.target.textContent = 'select & copy';
    }
    setTimeout(() => { e.target.textContent = 'copy'; }, 1500);
  });

  /* ------------------------------------------------------------------ server figures */
  const COLORS = {
    sse: '#10b981', websocket: '#3b82f6', ws_json: '#06b6d4', iframe: '#a855f7', longpoll: '#ef4444',
    poll: '#f59e0b', stomp: '#ec4899', mqtt: '#84cc16', http: '#b6bccb',
  };
  const LABELS = {
    sse: 'SSE', websocket: 'WebSocket /sub', ws_json: 'WebSocket /ws', iframe: 'iframe', longpoll: 'long poll',
    poll: 'short poll', stomp: 'STOMP', mqtt: 'MQTT', http: 'other HTTP',
  };
  const ORDER = ['websocket', 'ws_json', 'sse', 'iframe', 'longpoll', 'poll', 'stomp', 'mqtt', 'http'];
  const SAMPLES = 60;
  const history = []; // {conns: {transport: n}, pub: per s, del: per s}
  let prev = null;

  /* Prometheus text format: `name{label="value",...} number` lines; # lines are comments. */
  function parseMetrics(text) {
    const out = [];
    for (const line of text.split('\n')) {
      if (!line || line[0] === '#') continue;
      const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const labels = {};
      if (m[2]) {
        const re = /(\w+)="((?:[^"\\]|\\.)*)"/g;
        let l;
        while ((l = re.exec(m[2]))) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      }
      out.push({ name: m[1], labels, value: Number(m[3]) });
    }
    return out;
  }

  function summarize(rows) {
    const conns = {};
    let published = 0;
    let delivered = 0;
    for (const r of rows) {
      if (r.name === 'herald_connections' && r.labels.transport) conns[r.labels.transport] = r.value;
      else if (r.name === 'herald_messages_published_total') published += r.value;
      else if (r.name === 'herald_messages_delivered_total') delivered += r.value;
    }
    return { t: performance.now(), conns, published, delivered };
  }

  async function sampleMetrics() {
    let s;
    try {
      const key = apiKey(); // with access control, /metrics wants an API key (or metrics_public)
      const r = await fetch('/metrics', { cache: 'no-store', headers: key ? { Authorization: 'Bearer ' + key } : {} });
      $('#metrics-hint').hidden = r.status !== 401 && r.status !== 403;
      if (!r.ok) throw new Error('HTTP ' + r.status);
      s = summarize(parseMetrics(await r.text()));
    } catch (e) {
      $('#fig-connections').textContent = '–';
      $('#server-title').dataset.error = 'unreachable';
      return;
    }
    delete $('#server-title').dataset.error;
    let pub = 0;
    let del = 0;
    if (prev) {
      const dt = Math.max((s.t - prev.t) / 1000, 0.001);
      // counters only grow; a drop means the server restarted
      pub = Math.max(0, s.published - prev.published) / dt;
      del = Math.max(0, s.delivered - prev.delivered) / dt;
    }
    prev = s;
    history.push({ conns: s.conns, pub, del });
    if (history.length > SAMPLES) history.shift();
    renderFigures(s, pub, del);
    drawCharts();
  }

  const fmtRate = (x) => (x >= 100 ? Math.round(x).toString() : x >= 10 ? x.toFixed(0) : x.toFixed(1));

  function transportsOf(conns) {
    const known = ORDER.filter((t) => t in conns);
    return known.concat(Object.keys(conns).filter((t) => !ORDER.includes(t)).sort());
  }

  function renderFigures(s, pub, del) {
    const ts = transportsOf(s.conns);
    const subs = ts.filter((t) => t !== 'http').reduce((a, t) => a + s.conns[t], 0);
    const figC = $('#fig-connections');
    figC.textContent = String(subs);
    figC.dataset.value = String(subs);
    $('#fig-in').textContent = fmtRate(pub);
    $('#fig-out').textContent = fmtRate(del);
    const legend = $('#legend');
    const nodes = ts.map((t) => {
      const li = document.createElement('li');
      li.dataset.transport = t;
      li.className = s.conns[t] ? '' : 'zero';
      const sw = document.createElement('i');
      sw.style.background = COLORS[t] || '#64748b';
      const name = document.createElement('span');
      name.textContent = LABELS[t] || t;
      const v = document.createElement('span');
      v.className = 'value';
      v.dataset.conn = t;
      v.textContent = String(s.conns[t]);
      li.append(sw, name, v);
      return li;
    });
    legend.replaceChildren(...nodes);
  }

  function niceMax(v, min) {
    const x = Math.max(v, min);
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
    return 10 * p;
  }

  function setupCanvas(c) {
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const ctx = c.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return { ctx, w, h };
  }

  /* Axes shared by both charts: horizontal grid with labels on the left, time runs to the right
   * edge (newest sample), one slot per second. */
  function frame(ctx, w, h, max, fmt) {
    const left = 34;
    const top = 8;
    const bottom = h - 18;
    ctx.font = '10.5px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    for (let i = 0; i <= 2; i++) {
      const y = bottom - (bottom - top) * (i / 2);
      ctx.strokeStyle = i === 0 ? '#d9dce6' : '#eef0f5';
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(left, Math.round(y) + 0.5);
      ctx.lineTo(w, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.fillStyle = '#9aa1b4';
      ctx.fillText(fmt((max * i) / 2), left - 6, y);
    }
    ctx.textAlign = 'left';
    ctx.textBaseline = 'alphabetic';
    ctx.fillText('−60 s', left, h - 3);
    ctx.textAlign = 'right';
    ctx.fillText('now', w, h - 3);
    const step = (w - left) / (SAMPLES - 1);
    const x = (i) => w - (history.length - 1 - i) * step;
    const y = (v) => bottom - (bottom - top) * (v / max);
    return { x, y, left, bottom };
  }

  function drawCharts() {
    /* connections: areas stacked by transport */
    {
      const { ctx, w, h } = setupCanvas($('#chart-connections'));
      const ts = [];
      for (const s of history) for (const t of Object.keys(s.conns)) if (!ts.includes(t)) ts.push(t);
      const order = transportsOf(Object.fromEntries(ts.map((t) => [t, 1])));
      let max = 0;
      for (const s of history) max = Math.max(max, order.reduce((a, t) => a + (s.conns[t] || 0), 0));
      max = max <= 10 ? Math.max(4, Math.ceil(max / 2) * 2) : niceMax(max, 10); // whole-number grid
      const f = frame(ctx, w, h, max, (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)));
      const base = history.map(() => 0);
      ctx.save();
      ctx.beginPath();
      ctx.rect(f.left, 0, w - f.left, h);
      ctx.clip();
      // draw "http" first (at the bottom) so subscriber transports sit on top of it
      for (const t of order.slice().reverse()) {
        if (!history.some((s) => s.conns[t])) continue;
        const top = history.map((s, i) => base[i] + (s.conns[t] || 0));
        ctx.beginPath();
        history.forEach((_, i) => (i ? ctx.lineTo(f.x(i), f.y(top[i])) : ctx.moveTo(f.x(i), f.y(top[i]))));
        for (let i = history.length - 1; i >= 0; i--) ctx.lineTo(f.x(i), f.y(base[i]));
        ctx.closePath();
        ctx.globalAlpha = t === 'http' ? 0.16 : 0.3;
        ctx.fillStyle = COLORS[t] || '#64748b';
        ctx.fill();
        ctx.globalAlpha = 1;
        ctx.beginPath();
        history.forEach((_, i) => (i ? ctx.lineTo(f.x(i), f.y(top[i])) : ctx.moveTo(f.x(i), f.y(top[i]))));
        ctx.strokeStyle = COLORS[t] || '#64748b';
        ctx.lineWidth = 1.6;
        ctx.stroke();
        top.forEach((v, i) => { base[i] = v; });
      }
      ctx.restore();
    }
    /* messages per second: published and delivered */
    {
      const { ctx, w, h } = setupCanvas($('#chart-rate'));
      let max = 0;
      for (const s of history) max = Math.max(max, s.pub, s.del);
      max = niceMax(max, 5);
      const f = frame(ctx, w, h, max, (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)));
      const line = (key, color, fill, dash) => {
        if (!history.length) return;
        ctx.beginPath();
        history.forEach((s, i) => (i ? ctx.lineTo(f.x(i), f.y(s[key])) : ctx.moveTo(f.x(i), f.y(s[key]))));
        if (fill) {
          ctx.save();
          ctx.lineTo(f.x(history.length - 1), f.bottom);
          ctx.lineTo(f.x(0), f.bottom);
          ctx.closePath();
          const g = ctx.createLinearGradient(0, 0, 0, f.bottom);
          g.addColorStop(0, 'rgba(79, 70, 229, .25)');
          g.addColorStop(1, 'rgba(79, 70, 229, 0)');
          ctx.fillStyle = g;
          ctx.fill();
          ctx.restore();
          ctx.beginPath();
          history.forEach((s, i) => (i ? ctx.lineTo(f.x(i), f.y(s[key])) : ctx.moveTo(f.x(i), f.y(s[key]))));
        }
        ctx.strokeStyle = color;
        ctx.lineWidth = dash ? 1.6 : 2.2;
        ctx.lineJoin = 'round';
        ctx.setLineDash(dash ? [4, 3] : []);
        ctx.stroke();
        ctx.setLineDash([]);
      };
      ctx.save();
      ctx.beginPath();
      ctx.rect(f.left, 0, w - f.left, h);
      ctx.clip();
      // delivered (filled) under published (dashed), so both show when they are equal
      line('del', '#4f46e5', true, false);
      line('pub', '#f59e0b', false, true);
      ctx.restore();
    }
  }
  window.addEventListener('resize', drawCharts);

  /* ------------------------------------------------------------------ start */
  /* The channel shown in the header, the publish card and the empty inbox. */
  function renderChannel() {
    const c = pubChannel();
    $('#channel-name').textContent = c;
    document.querySelectorAll('.chan').forEach((n) => { n.textContent = c; });
    $('#empty-curl').textContent = 'curl ' + (SIGNED_IN ? '-H "Authorization: Bearer $API_KEY" ' : '') +
      '-d ' + shq('You have mail') + ' ' + location.origin + '/pub/' + channelPath(c);
    renderCurl();
  }

  document.body.dataset.mode = SIGNED_IN ? 'session' : 'channel';
  $('#sign-in').hidden = SIGNED_IN;
  $('#account').hidden = !SIGNED_IN;
  $('#clear').hidden = SIGNED_IN; // signed in, the list is the server's
  if (el.apiKey) $('#publish-key-field').hidden = !SIGNED_IN;
  if (SIGNED_IN) {
    $('#user-name').textContent = CLAIMS.sub != null ? String(CLAIMS.sub) : '?';
    $('#channel-chip').title = "The signed-in user's personal channel";
    if (el.apiKey) el.apiKey.addEventListener('input', renderCurl);
  }
  if (TOKEN && !SIGNED_IN) fail('herald.js has no herald.session: signed-in mode is off.');
  renderChannel();
  renderList();
  renderBadge();
  renderStats();
  showState('idle');
  connect(chosen);
  sampleMetrics();
  setInterval(sampleMetrics, 1000);

  // For tests and the curious (read-only view of the demo's state).
  window.heraldDemo = {
    channel: CHANNEL,
    signedIn: SIGNED_IN,
    get user() { return SIGNED_IN ? (sub && sub.user) || (CLAIMS.sub != null ? String(CLAIMS.sub) : null) : null; },
    get sub() { return sub; },
    get chosen() { return chosen; },
    get lastId() { return lastId; },
    get received() { return received; },
    get duplicates() { return dupes; },
    get unread() { return SIGNED_IN ? serverUnread() : { total: unread.count | 0, channels: {} }; },
    parseMetrics,
  };
})();
