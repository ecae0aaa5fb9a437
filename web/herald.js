/* herald.js - the browser client of herald (served at /herald.js; /herald.mjs is the ES module).
 *
 *   <script src="/herald.js"></script>
 *   <script>
 *     const sub = herald.subscribe('', 'news', (msg) => console.log(msg.id, msg.data));
 *     herald.publish('', 'news', 'hello');
 *   </script>
 *
 * One subscription follows one channel over the best transport that works: WebSocket (/ws JSON
 * protocol) -> SSE -> iframe stream -> long polling -> short polling. A transport that fails
 * before it has ever received anything from the server (refused, blocked, closed early, or
 * silent past connectTimeout) hands over to the next one; a transport that has worked is
 * reconnected with exponential backoff and jitter. Every (re)connect resumes after the last
 * id the application saw, and messages at or below that id are dropped, so the application
 * gets each message once, in order.
 *
 * Ids restart at 1 when a server without a durable store restarts. The server reports a resume
 * cursor it has never reached as a gap whose "requested" id is at or past "first_available";
 * the client then moves its cursor back to first_available - 1 (a "reset" gap) instead of
 * discarding the new messages as already seen.
 *
 * Access control: options.token (a string, or a function returning one or a promise of one)
 * is fetched before every connection attempt and sent as ?token= on SSE, iframe and polls, and
 * as the first /ws op ({"op":"auth"}); /ws refreshes it in place before the token's exp, the
 * other transports reconnect at once with a fresh token when the server ends them as expired
 * (or answers 401), resuming from the last id. A refusal to subscribe (403, "forbidden") closes
 * the subscription with an error event instead of retrying. An admin's disconnect ends the
 * subscription when it says reconnect: false (browsers' EventSource would reconnect anyway).
 *
 * User sessions: herald.session({url, token, transport}) follows the token user's personal feed
 * ("@me": /sub/@me, or the feed the /ws auth reply names) with the same machinery, keeps the
 * server's unread counts (pushed by the server as "unread" notices, or asked with GET /unread
 * where it does not push) and marks channels read (POST /read/{channel}), so every device of
 * the user shows the same badge.
 *
 * No dependencies. A classic script that defines globalThis.herald; herald.mjs imports it and
 * re-exports it for `import herald, {subscribe} from '/herald.mjs'`. */
(function (root) {
  'use strict';

  const TRANSPORTS = ['websocket', 'sse', 'iframe', 'longpoll', 'poll'];
  const FEED = '@me'; /* the channel name that stands for the token user's personal feed */
  /* An id past every channel's last one: the server clamps a read cursor to the channel's newest
   * message, so this marks a channel read up to what it holds. */
  const ID_MAX = '18446744073709551615';
  const STREAMS = ['websocket', 'sse', 'iframe']; /* connections that stay open: watched for silence */
  /* the notices of the iframe stream, {"<name>":true, ...}; the others are messages */
  const IFRAME_NOTICES = ['gap', 'disconnect', 'unsubscribed', 'unread', 'withdrawn', 'join', 'leave'];
  const DEFAULTS = {
    transport: 'auto',
    lastId: null,
    pollInterval: 2000, /* ms between short polls */
    connectTimeout: 5000, /* ms a connection may take to show the server answers */
    longpollTimeout: 45000, /* ms a long poll may stay unanswered (the server answers within 25 s) */
    idleTimeout: 45000, /* ms a stream may stay silent: herald's heartbeats come every 15 s */
    backoff: { min: 500, max: 30000 },
    unread: null,
    token: null, /* string, or function returning a string or a promise of one */
    unreadWait: 1000, /* session: ms to wait for the server's first unread push before asking */
    unreadPoll: 15000, /* session: ms between GET /unread while the server does not push */
    onState: null,
    onGap: null,
  };
  /* A long poll is held by the server until something happens, so it counts as open once it
   * has been pending this long without failing. */
  const LONGPOLL_GRACE = 1000;
  /* A token is refreshed this long before its exp: 10 % of its lifetime, at most 30 s, at
   * least 1 s. */
  const REFRESH_MAX = 30000;
  const REFRESH_MIN = 1000;

  let callbackSeq = 0;

  /* ------------------------------------------------------------------ helpers */

  /* Ids are decimal strings that may exceed 2^53: compare them exactly. */
  function idAfter(a, b) {
    return BigInt(a) > BigInt(b);
  }

  function normId(id) {
    const s = String(id);
    if (!/^\d+$/.test(s)) throw new TypeError(`herald: invalid message id ${JSON.stringify(id)}`);
    return String(BigInt(s));
  }

  /* 'http://host:8080/' -> 'http://host:8080'; '' stays '' (same origin). */
  function httpBase(url) {
    return String(url || '').replace(/\/+$/, '');
  }

  function wsBase(url) {
    const base = httpBase(url);
    if (base) return base.replace(/^http/i, 'ws');
    return (root.location.protocol === 'https:' ? 'wss://' : 'ws://') + root.location.host;
  }

  function sameOrigin(url) {
    if (!httpBase(url)) return true;
    try {
      return new URL(url, root.location.href).origin === root.location.origin;
    } catch (e) {
      return false;
    }
  }

  /* Channel names use "/" between segments: encode each segment, keep the slashes. */
  function channelPath(channel) {
    return String(channel).split('/').map(encodeURIComponent).join('/');
  }

  /* The token option's current value: a function is called (it may return a promise); no
   * string, an empty one or a rejection is an error. */
  async function resolveToken(token) {
    const t = typeof token === 'function' ? await token() : token;
    if (typeof t !== 'string' || !t) throw new Error('no token (the token option gave ' + (t === '' ? 'an empty string' : typeof t) + ')');
    return t;
  }

  /* {exp, iat} (seconds) from a JWT's payload, not verified (the server does that), or null. */
  function tokenClaims(token) {
    const parts = String(token).split('.');
    if (parts.length !== 3) return null;
    try {
      let b = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      b += '==='.slice((b.length + 3) % 4);
      const bin = root.atob(b);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      const c = JSON.parse(new TextDecoder().decode(bytes));
      if (!c || typeof c !== 'object') return null;
      return { exp: typeof c.exp === 'number' ? c.exp : null, iat: typeof c.iat === 'number' ? c.iat : null };
    } catch (e) {
      return null;
    }
  }

  /* An HTTP error answer as an Error with .status (401/403 are told apart by the subscription). */
  async function httpError(what, res) {
    let detail = '';
    try {
      const body = await res.text();
      const j = JSON.parse(body);
      if (j && j.error) detail = ` ${j.error}`;
    } catch (e) {
      /* no JSON error body */
    }
    const err = new Error(`${what}: HTTP ${res.status}${detail}`);
    err.status = res.status;
    return err;
  }

  /* Reports an exception thrown by application code without breaking the client. */
  function report(err) {
    if (typeof root.reportError === 'function') root.reportError(err);
    else setTimeout(() => { throw err; });
  }

  /* The message as the application sees it, whatever transport carried it. */
  function message(m, channel) {
    const out = { id: String(m.id), channel: m.channel || channel, event: m.event || 'message', data: m.data };
    if (m.encoding) out.encoding = m.encoding; /* "base64": the payload was not UTF-8 */
    return out;
  }

  function supported(transport, url) {
    switch (transport) {
      case 'websocket':
        return typeof root.WebSocket === 'function';
      case 'sse':
        return typeof root.fetch === 'function' && typeof root.ReadableStream === 'function' && typeof root.TextDecoder === 'function';
      case 'iframe':
        /* the frame calls parent.<callback>(), which only a same-origin parent allows */
        return typeof root.document !== 'undefined' && sameOrigin(url);
      default:
        return typeof root.fetch === 'function';
    }
  }

  /* Resolves after ms, or rejects when signal aborts. */
  function delay(ms, signal) {
    return new Promise((resolve, reject) => {
      const abort = () => {
        clearTimeout(t);
        reject(new Error('aborted'));
      };
      const t = setTimeout(() => {
        signal.removeEventListener('abort', abort);
        resolve();
      }, ms);
      signal.addEventListener('abort', abort, { once: true });
    });
  }

  /* ------------------------------------------------------------------ events */

  class Emitter {
    constructor() {
      this._listeners = {};
    }

    on(event, fn) {
      (this._listeners[event] || (this._listeners[event] = [])).push(fn);
      return this;
    }

    off(event, fn) {
      const l = this._listeners[event];
      if (l) this._listeners[event] = l.filter((f) => f !== fn);
      return this;
    }

    _emit(event, ...args) {
      for (const fn of (this._listeners[event] || []).slice()) {
        try {
          fn.apply(this, args);
        } catch (e) {
          report(e);
        }
      }
    }
  }

  /* ------------------------------------------------------------------ transports
   *
   * Each opener starts one connection for sub and returns a function that tears it down. It
   * reports through sub._open(conn), sub._alive(conn) (the server has answered), sub._message,
   * sub._gap, sub._cursor and sub._fail(conn, reason); calls for a connection that is no
   * longer current are ignored by the subscription. */

  /* The /ws JSON protocol: welcome, then (with a token, on a server with access control) auth
   * {token} and its reply, then subscribe {channel, last_id}; the subscribe reply opens. The
   * token is never put in the URL. Before the token's exp a fresh one is sent as another auth
   * op on the same connection; a close with 3000 (token expired) reconnects with a fresh one.
   * The personal feed ("@me") is the channel the auth reply names ("feed"): subscribing to it by
   * name with our last_id takes over the subscription the server made. An authenticated
   * connection also carries the server's own feed subscription: frames of other channels are
   * not this subscription's and are ignored. */
  function openWebSocket(sub, conn) {
    const ws = new root.WebSocket(wsBase(sub.url) + '/ws', 'herald.v1');
    /* herald's WebSocket pings are invisible to scripts: ask for a reply when it is quiet */
    conn.ping = () => ws.send('{"op":"ping","ref":"ping"}');
    let subscribed = false;
    let name = sub._isFeed ? null : sub.channel; /* the channel subscribed to, once known */
    const subscribe = () => {
      if (name === null) {
        /* "@me" without a user: the server has no access control, or the token has no sub */
        sub._fail(conn, 'websocket: the personal feed needs a user token', 'auth');
        return;
      }
      const req = { op: 'subscribe', channel: name, ref: 1 };
      if (sub.lastId !== null) req.last_id = sub.lastId;
      ws.send(JSON.stringify(req));
    };
    const ours = (f) => !f.channel || f.channel === name;
    conn.auth = (token) => ws.send(JSON.stringify({ op: 'auth', token, ref: 'auth' }));
    ws.onmessage = (ev) => {
      sub._heard(conn);
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch (e) {
        sub._fail(conn, 'websocket: a frame is not JSON');
        return;
      }
      if (f.op === 'welcome') {
        /* the token goes first, and subscribing waits for its reply */
        if (conn.token && f.auth === true) {
          conn.auth(conn.token);
        } else {
          if (sub._isFeed && typeof f.feed === 'string') name = sub._setFeed(f.feed);
          subscribe();
        }
      } else if (f.op === 'reply' && f.ref === 'auth') {
        if (f.ok) {
          if (sub._isFeed && name === null && typeof f.feed === 'string') name = sub._setFeed(f.feed);
          sub._authenticated(conn, f);
          if (!subscribed) {
            subscribed = true;
            subscribe();
          }
          return;
        }
        const code = f.error && f.error.code;
        const msg = `websocket: token refused: ${code}${f.error && f.error.message ? ' (' + f.error.message + ')' : ''}`;
        if (!subscribed) sub._fail(conn, msg, code === 'forbidden' ? 'forbidden' : 'auth');
        else sub._refreshFailed(conn, msg, code);
      } else if (f.op === 'reply' && f.ref === 1) {
        if (!f.ok) {
          const code = f.error && f.error.code;
          const msg = `websocket: subscribe refused: ${code}${f.error && f.error.message ? ' (' + f.error.message + ')' : ''}`;
          sub._fail(conn, msg, code === 'forbidden' ? 'forbidden' : code === 'unauthorized' ? 'auth' : undefined);
          return;
        }
        subscribed = true;
        sub._alive(conn);
        sub._cursor(conn, f.last_id);
      } else if (f.op === 'message') {
        if (ours(f)) sub._message(conn, f);
      } else if (f.op === 'gap') {
        if (ours(f)) sub._gap(conn, f);
      } else if (f.op === 'unsubscribed' && ours(f)) {
        /* a refreshed token no longer allows the channel, or an admin ended the subscription */
        sub._fail(conn, `websocket: unsubscribed by the server: ${f.reason || 'no reason given'}`, f.reason === 'forbidden' ? 'forbidden' : undefined);
      } else if (f.op === 'disconnect') {
        /* an admin ended the user's connections; a close 4001 (or 4002) follows */
        sub._disconnected(conn, f);
      } else if (f.op === 'unread' || f.op === 'withdrawn') {
        if (f.op === 'unread' || ours(f)) sub._notice(conn, f.op, f);
      }
    };
    ws.onclose = (ev) => {
      const reason = `websocket closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`;
      if (ev.code === 4001 || ev.code === 4002) sub._disconnected(conn, { reason: ev.reason || 'disconnected', reconnect: ev.code === 4002 });
      else sub._fail(conn, reason, ev.code === 3000 ? 'expired' : undefined);
    };
    return () => {
      ws.onmessage = ws.onclose = null;
      ws.close();
    };
  }

  /* A payload that came base64-encoded: text again when it is valid UTF-8 (the exact SSE form
   * sends text with CR that way), else left base64 with encoding "base64", as on every other
   * transport. */
  function fromBase64(m) {
    try {
      const bin = root.atob(m.data);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      m.data = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
    } catch (e) {
      m.encoding = 'base64';
    }
    return m;
  }

  /* Server-sent events read with fetch (not EventSource, which only reports events whose names
   * it was told in advance and reconnects on its own schedule). "exact=1" asks for the exact
   * form: plain SSE text turns CR and CRLF into LF (every event-stream parser ends lines at
   * them), so there a payload with CR comes as EVENT@base64 and is decoded back here. */
  function openSSE(sub, conn) {
    const ctl = new AbortController();
    (async () => {
      await sub._initialCursor(conn, ctl.signal);
      const res = await root.fetch(sub._subUrl('sse', '&exact=1'), { headers: { Accept: 'text/event-stream' }, cache: 'no-store', signal: ctl.signal });
      if (!res.ok) throw await httpError('sse', res);
      if (!/^text\/event-stream/.test(res.headers.get('Content-Type') || '')) throw new Error(`sse: HTTP ${res.status}`);
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      const parse = sseParser((ev) => {
        if (ev.hasId) {
          /* a message (whatever its event name): only messages have an id line */
          const b64 = /@base64$/.test(ev.event);
          const m = { id: ev.id, event: b64 ? ev.event.slice(0, -7) : ev.event, data: ev.data };
          sub._message(conn, b64 ? fromBase64(m) : m);
        } else if (ev.event === 'expired') {
          /* the token expired: the server ends the stream; reconnect with a fresh one */
          sub._fail(conn, 'sse: token expired', 'expired');
        } else {
          /* a notice: gap, disconnect, unsubscribed, unread, withdrawn, ... */
          let info;
          try {
            info = JSON.parse(ev.data);
          } catch (e) {
            return; /* not one of herald's notices */
          }
          sub._streamNotice(conn, ev.event, info);
        }
      });
      for (;;) {
        const { done, value } = await reader.read();
        if (done) throw new Error('sse: stream ended');
        sub._alive(conn); /* the stream starts with "retry:", so this comes before any event */
        sub._heard(conn); /* events and heartbeat comments */
        parse(decoder.decode(value, { stream: true }));
      }
    })().catch((e) => sub._failWith(conn, e));
    return () => ctl.abort();
  }

  /* An incremental text/event-stream parser (WHATWG HTML, "Server-sent events"): feed it text,
   * it calls onEvent({id, hasId, event, data}) for each dispatched event; hasId says whether the
   * event had an id line of its own (herald's messages do, its notices do not). */
  function sseParser(onEvent) {
    let buf = '';
    let data = [];
    let event = '';
    let id = '';
    let hasId = false;
    return (text) => {
      buf += text;
      /* a CR at the very end may be the first half of a CRLF: keep it for the next chunk */
      const end = buf.endsWith('\r') ? buf.length - 1 : buf.length;
      const lines = buf.slice(0, end).split(/\r\n|\r|\n/);
      buf = lines.pop() + buf.slice(end);
      for (const line of lines) {
        if (line === '') {
          if (data.length) onEvent({ id, hasId, event: event || 'message', data: data.join('\n') });
          data = [];
          event = '';
          hasId = false;
          continue;
        }
        if (line[0] === ':') continue; /* comment: heartbeat */
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        let value = i < 0 ? '' : line.slice(i + 1);
        if (value[0] === ' ') value = value.slice(1);
        if (field === 'data') data.push(value);
        else if (field === 'event') event = value;
        else if (field === 'id') {
          id = value;
          hasId = true;
        }
      }
    };
  }

  /* The forever frame: a hidden same-origin iframe whose scripts call a global callback. The
   * frame's load event means the stream ended, but a stream cut off mid-way leaves the document
   * loading forever, so liveness comes from its growth: every message and keepalive adds nodes
   * (which are then removed, so that a long-lived frame does not grow). */
  function openIframe(sub, conn) {
    const name = `__herald_cb${++callbackSeq}`;
    const ctl = new AbortController();
    let frame = null;
    let watch = 0;
    root[name] = (m) => {
      if (!m || typeof m !== 'object') return;
      if (m.expired === true) {
        sub._fail(conn, 'iframe: token expired', 'expired');
        return;
      }
      /* a notice is {"<name>":true, ...}: gap, disconnect, unsubscribed, unread, withdrawn, ... */
      const notice = IFRAME_NOTICES.find((k) => m[k] === true);
      if (notice) {
        const info = Object.assign({}, m);
        delete info[notice];
        sub._streamNotice(conn, notice, info);
      } else if (m.id !== undefined) {
        sub._message(conn, m);
      }
    };
    sub._initialCursor(conn, ctl.signal).then(() => {
      frame = root.document.createElement('iframe');
      frame.style.display = 'none';
      frame.setAttribute('aria-hidden', 'true');
      frame.tabIndex = -1;
      frame.src = sub._subUrl('iframe', `&callback=${name}`);
      frame.onload = () => {
        /* an answer that never streamed is an error page, whose status the frame hides: ask
         * again with a short poll to tell a refused token (401) or channel (403) apart */
        if (conn.opened) sub._fail(conn, 'iframe: stream ended');
        else sub._diagnose(conn, ctl.signal, 'iframe: stream ended');
      };
      (root.document.body || root.document.documentElement).appendChild(frame);
      watch = setInterval(() => {
        let body = null;
        try {
          /* the stream's first script defines h(): once it exists the server is streaming */
          if (typeof frame.contentWindow.h === 'function') body = frame.contentDocument.body;
        } catch (e) {
          /* an error page is cross-origin: not streaming */
        }
        if (!body) return;
        if (!conn.opened) sub._alive(conn);
        const nodes = body.childNodes;
        if (nodes.length > 1) {
          sub._heard(conn);
          while (nodes.length > 1) nodes[0].remove(); /* the last one may still be parsing */
        }
      }, 100);
    }, (e) => sub._failWith(conn, e));
    return () => {
      ctl.abort();
      clearInterval(watch);
      delete root[name];
      if (frame) {
        frame.onload = null;
        frame.remove(); /* stops the request */
      }
    };
  }

  /* Long polling: each answer brings what is after the cursor (at once if anything is). */
  function openLongpoll(sub, conn) {
    const ctl = new AbortController();
    (async () => {
      await sub._initialCursor(conn, ctl.signal);
      for (;;) {
        const grace = setTimeout(() => sub._open(conn), Math.min(LONGPOLL_GRACE, sub.options.connectTimeout / 2));
        try {
          await sub._poll(conn, 'longpoll', ctl.signal, sub.options.longpollTimeout);
        } finally {
          clearTimeout(grace);
        }
      }
    })().catch((e) => sub._failWith(conn, e));
    return () => ctl.abort();
  }

  /* Short polling every pollInterval; at once again while answers bring messages (an answer
   * holds at most poll_max_messages). */
  function openPoll(sub, conn) {
    const ctl = new AbortController();
    (async () => {
      for (;;) {
        const answer = await sub._poll(conn, 'poll', ctl.signal, sub.options.connectTimeout);
        if (!answer.count) await delay(sub.options.pollInterval, ctl.signal);
      }
    })().catch((e) => sub._failWith(conn, e));
    return () => ctl.abort();
  }

  const OPENERS = { websocket: openWebSocket, sse: openSSE, iframe: openIframe, longpoll: openLongpoll, poll: openPoll };

  /* ------------------------------------------------------------------ subscription */

  class Subscription extends Emitter {
    constructor(url, channel, onMessage, options) {
      super();
      const o = Object.assign({}, DEFAULTS, options || {});
      o.backoff = Object.assign({}, DEFAULTS.backoff, (options && options.backoff) || {});
      if (o.transport !== 'auto' && !OPENERS[o.transport]) throw new TypeError(`herald: unknown transport ${JSON.stringify(o.transport)}`);
      if (!channel) throw new TypeError('herald: a channel is required');
      this.url = httpBase(url);
      this.channel = String(channel);
      /* "@me": the token user's personal feed, whose name the server tells (this.feed) */
      this._isFeed = this.channel === FEED;
      this._feed = null;
      this.options = o;
      this.state = 'connecting';
      this.transport = null;
      this._onMessage = onMessage;
      const start = o.lastId !== null && o.lastId !== undefined ? o.lastId : o.unread && o.unread.lastSeenId;
      this._lastId = start !== null && start !== undefined ? normId(start) : null;
      /* auto: every transport this browser supports, best first; otherwise the one asked for */
      this._chain = o.transport === 'auto' ? TRANSPORTS.filter((t) => supported(t, this.url)) : [o.transport];
      this._index = 0;
      this._proven = new Set(); /* transports that have received something from the server */
      this._retries = 0; /* failed attempts since the last open: drives the backoff */
      this._authRetries = 0; /* tokens refused since the last open: the first retry is at once */
      this._token = null; /* the token in use (options.token), and its claims {exp, iat} */
      this._claims = null;
      this._conn = null;
      this._timer = 0;
      if (o.onState) this.on('state', o.onState);
      if (o.onGap) this.on('gap', o.onGap);
      /* start after the caller had a chance to add listeners */
      this._timer = setTimeout(() => this._connect(), 0);
    }

    /* The id of the last message delivered (the resume cursor), a string, or null. */
    get lastId() {
      return this._lastId;
    }

    /* The channel followed: for "@me", the personal feed's name once the server has told it
     * ("user/42"), null before. */
    get feed() {
      return this._isFeed ? this._feed : this.channel;
    }

    /* Stops every connection and timer; nothing is delivered afterwards. */
    close() {
      if (this.state === 'closed') return;
      clearTimeout(this._timer);
      if (this._conn) this._stop(this._conn);
      this._conn = null;
      this._setState('closed', { reason: 'closed by the application' });
      this._emit('closed', { reason: 'closed by the application' });
    }

    /* Ends the subscription for a reason of the server's ('forbidden', or 'disconnected' with
     * the admin's message): no retry. */
    _end(conn, reason, message) {
      if (!conn.dead) this._stop(conn);
      clearTimeout(this._timer);
      this._conn = null;
      if (this.state === 'closed') return; /* a listener closed it already */
      const info = message === undefined ? { reason } : { reason, message };
      this._setState('closed', Object.assign({ transport: conn.transport }, info));
      this._emit('closed', info);
    }

    _setState(state, info) {
      if (state === this.state) return;
      this.state = state;
      this._emit('state', state, info);
    }

    _connect() {
      if (this.state === 'closed') return;
      const transport = this._chain[this._index];
      if (!transport) {
        this._emit('error', { transport: this.options.transport, reason: 'no transport is supported here' });
        return;
      }
      const conn = {
        transport, opened: false, dead: false, stop: null, timer: 0, watch: 0, refresh: 0, heard: Date.now(), pinged: 0, ping: null, token: null, claims: null, auth: null,
        pushing: false, fallback: false, unreadWait: 0, unreadPoll: 0, /* sessions: where the unread counts come from */
      };
      this._conn = conn;
      this.transport = transport;
      this._setState('connecting', { transport });
      this._emit('connecting', { transport, attempt: this._retries + 1 });
      if (!this._usesToken()) {
        this._start(conn);
        return;
      }
      /* a fresh token for every attempt; its time counts against connectTimeout too, but a
       * token that does not come is the token's failure, not the transport's */
      const limit = this.options.connectTimeout;
      conn.timer = setTimeout(() => this._fail(conn, `token: none within ${limit} ms`, 'token'), limit);
      this._newToken().then(
        (token) => {
          if (!this._current(conn)) return;
          clearTimeout(conn.timer);
          conn.token = token;
          this._start(conn);
        },
        (e) => this._fail(conn, `token: ${e && e.message ? e.message : e}`, 'token'),
      );
    }

    _start(conn) {
      const transport = conn.transport;
      conn.timer = setTimeout(() => this._fail(conn, `${transport}: no answer within ${this.options.connectTimeout} ms`), this.options.connectTimeout);
      try {
        conn.stop = OPENERS[transport](this, conn);
      } catch (e) {
        this._fail(conn, `${transport}: ${e.message}`);
      }
      if (conn.dead && conn.stop) conn.stop(); /* failed while starting */
    }

    _stop(conn) {
      conn.dead = true;
      clearTimeout(conn.timer);
      clearTimeout(conn.refresh);
      clearInterval(conn.watch);
      if (conn.stop) conn.stop();
    }

    /* ---------------------------------------------------------------- tokens */

    _usesToken() {
      const t = this.options.token;
      return t !== null && t !== undefined && t !== '';
    }

    /* Calls the token option; the result becomes the token in use. */
    async _newToken() {
      const token = await resolveToken(this.options.token);
      this._token = token;
      this._claims = tokenClaims(token);
      return token;
    }

    /* The time (ms) at which a token with these claims (default: the token in use) is to be
     * replaced, or null when it has no exp. */
    _refreshAt(c = this._claims) {
      if (!c || c.exp === null) return null;
      const exp = c.exp * 1000;
      const life = c.iat !== null ? exp - c.iat * 1000 : exp - Date.now();
      return exp - Math.max(REFRESH_MIN, Math.min(REFRESH_MAX, life / 10));
    }

    /* Polls take a fresh token (when the option is a function) once the one in use is due for
     * refresh, so that they do not run into 401s. */
    async _freshToken() {
      if (!this._usesToken() || typeof this.options.token !== 'function') return;
      const at = this._refreshAt();
      if (at !== null && Date.now() >= at) {
        try {
          await this._newToken();
        } catch (e) {
          const err = new Error(`token: ${e && e.message ? e.message : e}`);
          err.token = true;
          throw err;
        }
      }
    }

    /* /ws accepted a token (the first one or a refresh): report it and plan the next refresh. */
    _authenticated(conn, reply) {
      if (!this._current(conn)) return;
      this._emit('auth', { transport: conn.transport, user: reply.user === undefined ? null : reply.user, expires: reply.expires === undefined ? null : reply.expires });
      clearTimeout(conn.refresh);
      /* the claims of the token this connection now lives on (the server's exp if unreadable) */
      const c = tokenClaims(conn.token) || { exp: null, iat: null };
      if (c.exp === null && typeof reply.expires === 'number' && reply.expires > 0) c.exp = reply.expires;
      conn.claims = c;
      if (typeof this.options.token !== 'function') return; /* a fixed string cannot be renewed */
      const at = this._refreshAt(c);
      if (at === null) return;
      conn.refresh = setTimeout(() => this._refresh(conn), Math.max(0, at - Date.now()));
    }

    /* Sends a fresh token on the open /ws connection. */
    _refresh(conn) {
      if (!this._current(conn)) return;
      this._newToken().then(
        (token) => {
          if (!this._current(conn)) return;
          conn.token = token;
          conn.auth(token);
        },
        (e) => this._refreshFailed(conn, `token: ${e && e.message ? e.message : e}`, 'token'),
      );
    }

    /* A refresh did not work: the connection lasts until exp (then 3000 reconnects); try again
     * in a second while there is time. A token for another user needs a new connection. */
    _refreshFailed(conn, reason, code) {
      if (!this._current(conn)) return;
      if (code === 'forbidden') {
        this._fail(conn, reason, 'auth');
        return;
      }
      this._emit('error', { transport: conn.transport, reason: code === 'token' ? 'token' : 'unauthorized', message: reason });
      const c = conn.claims; /* the token the connection still lives on */
      if (c && c.exp !== null && Date.now() + REFRESH_MIN < c.exp * 1000) {
        clearTimeout(conn.refresh);
        conn.refresh = setTimeout(() => this._refresh(conn), REFRESH_MIN);
      }
    }

    /* ---------------------------------------------------------------- */

    _current(conn) {
      return conn === this._conn && !conn.dead;
    }

    _open(conn) {
      if (!this._current(conn) || conn.opened) return;
      conn.opened = true;
      clearTimeout(conn.timer);
      this._retries = 0;
      this._authRetries = 0;
      if (STREAMS.includes(conn.transport)) this._watch(conn);
      this._setState('open', { transport: conn.transport });
      this._emit('open', { transport: conn.transport });
    }

    /* Fails a stream that stays silent for idleTimeout (a half-open TCP connection, a cut-off
     * iframe); a quiet WebSocket is pinged first. */
    _watch(conn) {
      const limit = this.options.idleTimeout;
      conn.watch = setInterval(() => {
        const quiet = Date.now() - conn.heard;
        if (quiet > limit) {
          this._fail(conn, `${conn.transport}: nothing heard for ${limit} ms`);
        } else if (conn.ping && quiet > limit / 3 && conn.pinged < conn.heard) {
          conn.pinged = Date.now();
          conn.ping();
        }
      }, Math.max(50, Math.min(1000, limit / 6)));
    }

    _heard(conn) {
      if (this._current(conn)) conn.heard = Date.now();
    }

    /* The server has answered on conn: the connection is open and its transport works here. */
    _alive(conn) {
      if (!this._current(conn)) return;
      this._proven.add(conn.transport);
      this._open(conn);
    }

    /* conn failed. how: undefined (the transport failed: fallback or backoff), 'token' (the
     * token option failed: backoff), 'auth' (the token was refused, 401: the first retry at once,
     * then backoff), 'expired' (the server ended a connection whose token expired: reconnect at
     * once with a fresh token), 'disconnect' (an admin ended it, reconnecting allowed: backoff,
     * no error event) or 'forbidden' (not allowed to subscribe: closed, no retry). */
    _fail(conn, reason, how) {
      if (!this._current(conn)) return;
      this._stop(conn);
      const transport = conn.transport;
      if (how === 'expired' && !conn.opened) how = 'auth'; /* expired at once: not a refresh */
      if (how === 'auth' || how === 'forbidden' || how === 'expired') this._proven.add(transport); /* the server answered */
      if (how === 'disconnect') this._proven.add(transport);
      if (how === 'forbidden') {
        this._emit('error', { transport, reason: 'forbidden', message: reason });
        this._end(conn, 'forbidden');
        return;
      }
      if (how === 'expired') {
        this._emit('expired', { transport, reason });
        if (this.state === 'closed') return; /* a listener closed it */
        this._setState('connecting', { transport, reason, retryIn: 0 });
        this._timer = setTimeout(() => this._connect(), 0);
        return;
      }
      if (how === 'auth') this._emit('error', { transport, reason: 'unauthorized', message: reason });
      else if (how === 'token') this._emit('error', { transport, reason: 'token', message: reason });
      else if (how !== 'disconnect') this._emit('error', { transport, reason });
      if (this.state === 'closed') return; /* a listener closed it */
      if (how === 'auth' && this._authRetries++ === 0) {
        this._setState('connecting', { transport, reason, retryIn: 0 });
        this._timer = setTimeout(() => this._connect(), 0);
        return;
      }
      const auto = this.options.transport === 'auto';
      if (!how && auto && !this._proven.has(transport)) {
        if (this._index + 1 < this._chain.length) {
          const to = this._chain[++this._index];
          this._emit('fallback', { from: transport, to, reason });
          this._connect();
          return;
        }
        this._index = 0; /* nothing worked (server down?): start over after a pause */
      }
      const b = this.options.backoff;
      const cap = Math.min(b.max, b.min * 2 ** this._retries++);
      const wait = Math.round(cap / 2 + (Math.random() * cap) / 2);
      this._setState('connecting', { transport, reason, retryIn: wait });
      this._timer = setTimeout(() => this._connect(), wait);
    }

    /* A notice of a stream (SSE event or iframe object without an id): info is its JSON. */
    _streamNotice(conn, name, info) {
      if (name === 'gap') this._gap(conn, info);
      else if (name === 'disconnect') this._disconnected(conn, info);
      else if (name === 'unsubscribed') {
        if (!this._current(conn) || (info.channel && info.channel !== this.feed)) return;
        /* an admin ended the subscription (the stream ends too), or a token no longer allows it */
        this._fail(conn, `${conn.transport}: unsubscribed by the server: ${info.reason || 'no reason given'}`, info.reason === 'forbidden' ? 'forbidden' : undefined);
      } else this._notice(conn, name, info);
    }

    /* A channel event from the server: 'unread' {user, total, channels} (on the personal feed,
     * when the user's unread counts change), 'withdrawn' {channel, id}. */
    _notice(conn, name, info) {
      /* (not a sign of life of the subscription: on /ws the server-side feed's notices come
       * before the subscribe reply, which may still refuse) */
      if (!this._current(conn) || !info || typeof info !== 'object') return;
      if (name === 'unread') {
        conn.pushing = true;
        this._unreadPushed(conn, { user: info.user === undefined ? null : String(info.user), total: Number(info.total) || 0, channels: Object.assign({}, info.channels) });
      } else if (name === 'withdrawn') {
        this._emit('withdrawn', { channel: info.channel || this.feed, id: info.id === undefined ? null : String(info.id) });
      }
      /* others (presence's join and leave) are not surfaced yet */
    }

    _unreadPushed(conn, unread) {
      this._emit('unread', unread);
    }

    /* An admin disconnected the user ({reason, reconnect}): with reconnect false the subscription
     * ends (whatever the transport would do by itself), otherwise it reconnects after a backoff
     * pause. */
    _disconnected(conn, info) {
      if (!this._current(conn)) return;
      const reconnect = !!(info && info.reconnect === true);
      const reason = info && typeof info.reason === 'string' ? info.reason : 'disconnected';
      this._emit('disconnect', { transport: conn.transport, reason, reconnect });
      if (!this._current(conn)) return; /* a listener closed it */
      if (reconnect) this._fail(conn, `${conn.transport}: disconnected by the server (${reason})`, 'disconnect');
      else this._end(conn, 'disconnected', reason);
    }

    _setFeed(name) {
      if (this._isFeed && name) this._feed = String(name);
      return this._feed;
    }

    /* An opener's exception: HTTP 401 and 403 are the token's and the channel's, not the
     * transport's. */
    _failWith(conn, e) {
      const how = e && e.token ? 'token' : e && e.status === 401 ? 'auth' : e && e.status === 403 ? 'forbidden' : undefined;
      this._fail(conn, e && e.message ? e.message : String(e), how);
    }

    /* A stream that ended before it streamed: a short poll of the same request tells a refused
     * token or channel (401/403) from a failing transport. */
    _diagnose(conn, signal, reason) {
      if (!this._current(conn)) return;
      root.fetch(this._subUrl('poll'), { cache: 'no-store', signal }).then(
        (res) => {
          if (res.status === 401 || res.status === 403) return httpError(reason, res).then((e) => this._failWith(conn, e));
          this._fail(conn, reason);
        },
        () => this._fail(conn, reason),
      );
    }

    /* The channel's cursor from the server (poll answers, the /ws subscribe reply): the resume
     * point when we had none. An existing cursor only moves with messages and reset gaps (the
     * /ws reply names the newest id before the replay of what we missed). */
    _cursor(conn, id) {
      if (this._current(conn) && this._lastId === null && id !== undefined && id !== null) this._lastId = String(id);
    }

    _message(conn, m) {
      if (!this._current(conn)) return;
      this._alive(conn);
      if (this._lastId !== null && !idAfter(m.id, this._lastId)) return; /* already delivered */
      this._lastId = String(m.id);
      if (this._isFeed && this._feed === null && m.channel) this._setFeed(m.channel);
      const msg = message(m, this.feed || this.channel);
      if (this.options.unread) this.options.unread.add(msg);
      if (this._onMessage) {
        try {
          this._onMessage(msg);
        } catch (e) {
          report(e);
        }
      }
      this._emit('message', msg);
    }

    /* A gap notice: a resume the history could not cover ({requested, first_available}) or
     * messages dropped for a slow connection ({dropped, from, to}). */
    _gap(conn, g) {
      if (!this._current(conn)) return;
      this._alive(conn);
      if (this._isFeed && this._feed === null && g.channel) this._setFeed(g.channel);
      const info = Object.assign({}, g, { channel: g.channel || this.feed || this.channel });
      delete info.gap;
      delete info.op;
      info.reset = g.requested !== undefined && !idAfter(g.first_available, g.requested);
      if (info.reset) {
        /* the server has never reached our cursor: it restarted and its ids begin again */
        this._lastId = String(BigInt(g.first_available) - 1n);
        if (this.options.unread) this.options.unread.rebase(this._lastId);
      }
      this._emit('gap', info);
    }

    /* The /sub URL of this subscription ("@me" stays "@me": the server resolves it per token);
     * noCursor leaves out last_id (an answer with the newest id and no messages). */
    _subUrl(mode, extra, noCursor) {
      let u = `${this.url}/sub/${channelPath(this.channel)}?mode=${mode}`;
      if (this._lastId !== null && !noCursor) u += `&last_id=${this._lastId}`;
      if (this._token !== null && this._usesToken()) u += `&token=${encodeURIComponent(this._token)}`;
      return u + (extra || '');
    }

    /* Streams and long polls need a cursor, or a reconnect could not resume: without one, a
     * short poll gives the channel's newest id ("from now on"). The same poll tells the personal
     * feed's name ("@me"), which SSE events do not carry; with a cursor it is asked without. */
    async _initialCursor(conn, signal) {
      if (this._lastId === null) await this._poll(conn, 'poll', signal, this.options.connectTimeout);
      else if (this._isFeed && this._feed === null) await this._poll(conn, 'poll', signal, this.options.connectTimeout, true);
    }

    /* One poll or long poll; delivers its gap notices and messages, adopts its cursor and
     * resolves with the answer. Rejects on network errors, HTTP errors and timeouts. */
    async _poll(conn, mode, signal, timeout, noCursor) {
      const ctl = new AbortController();
      const abort = () => ctl.abort();
      signal.addEventListener('abort', abort, { once: true });
      let t = 0;
      try {
        await this._freshToken();
        t = setTimeout(abort, timeout);
        const res = await root.fetch(this._subUrl(mode, '', noCursor), { cache: 'no-store', signal: ctl.signal });
        if (!res.ok) throw await httpError(mode, res);
        const answer = await res.json();
        if (!this._current(conn)) return answer;
        if (this._isFeed && typeof answer.channel === 'string' && answer.channel) this._setFeed(answer.channel);
        if (noCursor) return answer; /* asked for the feed's name only */
        if (mode === conn.transport) this._alive(conn); /* not the cursor poll of a stream */
        for (const g of answer.gap_info || []) this._gap(conn, g);
        for (const m of answer.messages || []) this._message(conn, m);
        this._cursor(conn, answer.last_id);
        return answer;
      } catch (e) {
        throw ctl.signal.aborted && !signal.aborted ? new Error(`${mode}: no answer within ${timeout} ms`) : e;
      } finally {
        clearTimeout(t);
        signal.removeEventListener('abort', abort);
      }
    }
  }


  /* ------------------------------------------------------------------ user session
   *
   * A signed-in user's view: the personal feed ("@me": user/42) over the usual transports, with
   * the same fallback, reconnects and resume, and the server's unread counts (every device of the
   * user shows the same badge). The server pushes the counts on the feed's stream ("unread"
   * notices on SSE, iframe and /ws) once when it starts and whenever they change; where it does
   * not (polls, or a server without the push) the session asks GET /unread when it opens, after
   * new messages and every unreadPoll ms. */
  class Session extends Subscription {
    constructor(options) {
      const o = Object.assign({}, options || {});
      const url = o.url || '';
      const onMessage = o.onMessage || null;
      delete o.url;
      delete o.onMessage;
      delete o.unread; /* the local counter is for anonymous use: a session has the server's */
      if (o.token === undefined || o.token === null || o.token === '') o.token = o.getToken;
      delete o.getToken;
      if (o.token === undefined || o.token === null || o.token === '') throw new TypeError('herald: a session needs a token (token or getToken)');
      super(url, FEED, onMessage, o);
      this.user = null;
      this._unread = { total: 0, channels: {} };
      this._known = false; /* whether a count came from the server yet */
      this._pushes = 0; /* counts applied from the server: a snapshot older than one is dropped */
      this._soon = 0;
      this.on('closed', () => clearTimeout(this._soon));
    }

    /* The server's unread counts for this user: {total, channels: {"user/42": 2, "news": 1}}
     * ({total: 0, channels: {}} until the first answer; see unreadKnown). */
    get unread() {
      return { total: this._unread.total, channels: Object.assign({}, this._unread.channels) };
    }

    get unreadKnown() {
      return this._known;
    }

    /* ------------------------------------------------------------ read state */

    /* Moves the user's read cursor of channel (default: the personal feed) to id (default, for
     * the feed: the last message delivered); every device of the user gets the new count.
     * Resolves with the server's answer {channel, read, unread, total}. */
    async markRead(channel, id) {
      const ch = channel === undefined || channel === null || channel === FEED ? this.feed : String(channel);
      if (!ch) throw new Error('herald: the personal feed is not known yet (the session has not connected)');
      let upto = id;
      if (upto === undefined || upto === null) {
        if (ch !== this.feed) throw new TypeError('herald: markRead needs the id read up to (for channels other than the feed)');
        upto = this._lastId;
        if (upto === null) return { channel: ch, read: null, unread: this._unread.channels[ch] || 0, total: this._unread.total };
      }
      const body = JSON.stringify({ id: normId(upto) });
      const seen = this._pushes;
      const answer = await this._api('POST', `/read/${channelPath(ch)}`, body);
      if (seen === this._pushes && answer && typeof answer.unread === 'number') {
        const channels = Object.assign({}, this._unread.channels);
        channels[answer.channel || ch] = answer.unread;
        this._applyUnread({ total: typeof answer.total === 'number' ? answer.total : this._unread.total, channels });
      }
      return answer;
    }

    /* Marks every channel with unread messages read: the feed up to the last message delivered,
     * the others up to their newest message. Resolves with the answers. */
    async markAllRead() {
      if (!this._known) await this.refreshUnread();
      const jobs = [];
      for (const [ch, n] of Object.entries(this._unread.channels)) {
        if (!n) continue;
        if (ch === this.feed) {
          if (this._lastId !== null) jobs.push(this.markRead(ch, this._lastId));
        } else {
          jobs.push(this.markRead(ch, ID_MAX));
        }
      }
      return Promise.all(jobs);
    }

    /* GET /unread: the counts as the server has them now; resolves with this.unread. */
    async refreshUnread() {
      const seen = this._pushes;
      const answer = await this._api('GET', '/unread');
      if (answer && answer.user !== undefined) this.user = String(answer.user);
      if (seen === this._pushes && answer) this._applyUnread({ total: Number(answer.total) || 0, channels: answer.channels || {} });
      return this.unread;
    }

    /* One call of the read-state API with the session's token as Authorization: Bearer (a
     * refused token is replaced once). Rejects with an Error whose .status is the HTTP status. */
    async _api(method, path, body) {
      for (let attempt = 0; ; attempt++) {
        let token;
        try {
          token = await this._bearer(attempt > 0);
        } catch (e) {
          throw new Error(`herald: token: ${e && e.message ? e.message : e}`);
        }
        const init = { method, cache: 'no-store', headers: { Authorization: `Bearer ${token}` } };
        if (body !== undefined) {
          init.body = body;
          init.headers['Content-Type'] = 'application/json';
        }
        const res = await root.fetch(this.url + path, init);
        if (res.status === 401 && attempt === 0 && typeof this.options.token === 'function') continue;
        if (!res.ok) throw await httpError(`herald: ${method} ${path}`, res);
        return res.json();
      }
    }

    /* The token in use, or a new one when there is none yet, it is due for renewal or fresh. */
    async _bearer(fresh) {
      const renew = typeof this.options.token === 'function' && this._refreshAt() !== null && Date.now() >= this._refreshAt();
      if (fresh || this._token === null || renew) return this._newToken();
      return this._token;
    }

    _applyUnread(u) {
      const channels = {};
      for (const [k, v] of Object.entries(u.channels || {})) channels[k] = Number(v) || 0;
      const next = { total: Number(u.total) || 0, channels };
      const same = this._known && next.total === this._unread.total && JSON.stringify(next.channels) === JSON.stringify(this._unread.channels);
      this._known = true;
      if (same) return;
      this._unread = next;
      this._emit('unread', this.unread);
    }

    /* ------------------------------------------------------------ the counts' two sources */

    /* The server pushed the counts on the current connection. */
    _unreadPushed(conn, u) {
      this._pushes++;
      if (u.user !== null) this.user = u.user;
      if (conn.unreadPoll) {
        clearInterval(conn.unreadPoll); /* it does push after all */
        conn.unreadPoll = 0;
      }
      conn.fallback = false;
      this._applyUnread(u);
    }

    /* A connection opened: the server pushes the counts right after a stream's subscription
     * starts; a poll, or a stream that stays quiet about them, makes the session ask instead. */
    _open(conn) {
      const was = conn.opened;
      super._open(conn);
      if (was || !conn.opened || !this._current(conn) || conn.pushing) return;
      if (!STREAMS.includes(conn.transport)) this._askInstead(conn);
      else conn.unreadWait = setTimeout(() => this._current(conn) && !conn.pushing && this._askInstead(conn), this.options.unreadWait);
    }

    _askInstead(conn) {
      conn.fallback = true;
      this._refreshSoon(0);
      const every = this.options.unreadPoll;
      if (every > 0 && every !== Infinity) conn.unreadPoll = setInterval(() => this._current(conn) && this._refreshSoon(0), every);
    }

    _refreshSoon(ms) {
      clearTimeout(this._soon);
      this._soon = setTimeout(() => {
        if (this.state === 'closed') return;
        this.refreshUnread().catch((e) => this._emit('error', { transport: null, reason: 'unread', message: e && e.message ? e.message : String(e) }));
      }, ms);
    }

    _message(conn, m) {
      const before = this._lastId;
      super._message(conn, m);
      /* without the push, a new message means a new count: ask (once for a burst) */
      if (this._lastId !== before && this._current(conn) && conn.fallback) this._refreshSoon(100);
    }

    _stop(conn) {
      clearTimeout(conn.unreadWait);
      clearInterval(conn.unreadPoll);
      super._stop(conn);
    }
  }

  /* ------------------------------------------------------------------ API */

  function subscribe(url, channel, onMessage, options) {
    return new Subscription(url, channel, onMessage, options);
  }

  /* A signed-in user's session: session({url, token | getToken, transport, onMessage, ...}) (any
   * option of subscribe), following the personal feed with the server's unread counts. */
  function session(options) {
    return new Session(options);
  }

  /* POST /pub/{channel}; resolves with the server's answer {id, channel, subscribers}. With
   * options.token (a string, or a function returning one or a promise of one) the request
   * carries Authorization: Bearer. Rejects with an Error whose .status is the HTTP status. */
  async function publish(url, channel, data, options) {
    const event = options && options.event;
    const token = options && options.token;
    const u = `${httpBase(url)}/pub/${channelPath(channel)}${event ? `?event=${encodeURIComponent(event)}` : ''}`;
    const init = { method: 'POST', body: data === undefined || data === null ? '' : data };
    if (token !== undefined && token !== null && token !== '') init.headers = { Authorization: `Bearer ${await resolveToken(token)}` };
    const res = await root.fetch(u, init);
    const text = await res.text();
    let answer = null;
    try {
      answer = JSON.parse(text);
    } catch (e) {
      /* not JSON: reported below */
    }
    if (!res.ok || !answer) {
      const err = new Error(`herald: publish failed: HTTP ${res.status} ${(answer && answer.error) || text}`);
      err.status = res.status;
      throw err;
    }
    return answer;
  }

  /* An unread counter for a badge, persisted in storage (localStorage by default; null keeps it
   * in memory) under "herald.unread.<key>": add(msg) counts a message once (ids at or below the
   * last one counted are ignored), markRead() sets the count to 0 and remembers the last id read.
   * Pass it as subscribe(..., {unread: counter}) to count every message delivered and to resume
   * after the last message counted, so messages published while the page was closed count too. */
  function unread(key, options) {
    let storage = options && 'storage' in options ? options.storage : null;
    if (!options || !('storage' in options)) {
      try {
        storage = root.localStorage; /* may throw (disabled storage, sandboxed frames) */
      } catch (e) {
        storage = null;
      }
    }
    const skey = `herald.unread.${key}`;
    let st = { read: null, seen: null, count: 0 };
    try {
      Object.assign(st, JSON.parse((storage && storage.getItem(skey)) || '{}'));
    } catch (e) {
      /* unreadable: start from zero */
    }
    const listeners = [];
    const save = () => {
      try {
        if (storage) storage.setItem(skey, JSON.stringify(st));
      } catch (e) {
        /* full or disabled: the count stays in memory */
      }
    };
    const changed = () => {
      save();
      for (const fn of listeners.slice()) {
        try {
          fn(st.count, counter);
        } catch (e) {
          report(e);
        }
      }
    };
    const counter = {
      get count() {
        return st.count;
      },
      /* id of the last message counted (a subscription resumes after it), or null */
      get lastSeenId() {
        return st.seen;
      },
      /* id of the last message seen when markRead() was called, or null */
      get lastReadId() {
        return st.read;
      },
      add(msg) {
        if (st.seen !== null && !idAfter(msg.id, st.seen)) return false;
        st.seen = String(msg.id);
        st.count++;
        changed();
        return true;
      },
      markRead() {
        st.read = st.seen;
        st.count = 0;
        changed();
      },
      /* The server's ids restarted: count ids after `id` again (the count is kept). */
      rebase(id) {
        st.seen = id === null ? null : normId(id);
        save();
      },
      /* fn(count, counter) after every change; returns a function that removes fn */
      onChange(fn) {
        listeners.push(fn);
        return () => {
          const i = listeners.indexOf(fn);
          if (i >= 0) listeners.splice(i, 1);
        };
      },
    };
    return counter;
  }

  root.herald = { subscribe, session, publish, unread, Subscription, Session, transports: TRANSPORTS.slice() };
})(typeof globalThis !== 'undefined' ? globalThis : self);
