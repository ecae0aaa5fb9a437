// tests/lib/mqttjs.mjs - MQTT.js wrapped for tests: bounded waits, a message queue, the CONNACK
// and the server's DISCONNECTs recorded.
import mqtt from 'mqtt';
import { boundedQueue, withTimeout, SCALE } from './herald.mjs';

/* Connects MQTT.js (no reconnects); resolves once CONNACK arrived. Messages queue as
 * {topic, payload (string), packet}; next(ms) bounded. Also records server DISCONNECTs and close. */
export function mq(url, opts = {}) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, {
      reconnectPeriod: 0,
      connectTimeout: 5000 * SCALE,
      protocolVersion: 4,
      clean: true,
      ...opts,
    });
    const q = boundedQueue(`MQTT ${opts.clientId ?? ''} ${url}`);
    const w = {
      c,
      q,
      connack: null,
      disconnects: [],
      closed: false,
      next: (ms) => q.next(ms),
      pending: () => q.items.length,
      async sub(filter, o = { qos: 0 }) {
        const g = await withTimeout(c.subscribeAsync(filter, o), 5000 * SCALE, `subscribe ${JSON.stringify(filter)}`);
        return g;
      },
      pub(topic, msg, o = {}) {
        return withTimeout(c.publishAsync(topic, msg, o), 5000 * SCALE, `publish ${topic}`);
      },
      async end() {
        if (!w.closed) await withTimeout(c.endAsync(), 5000 * SCALE, 'MQTT.js end').catch(() => c.end(true));
      },
    };
    c.on('message', (topic, payload, packet) => q.push({ topic, payload: payload.toString(), raw: payload, packet }));
    c.on('disconnect', (p) => w.disconnects.push(p));
    c.on('close', () => {
      w.closed = true;
    });
    c.once('connect', (p) => {
      w.connack = p;
      resolve(w);
    });
    c.once('error', (e) => {
      if (!w.connack) {
        c.end(true);
        reject(e);
      }
    });
  });
}
export const tcpURL = (h) => `mqtt://127.0.0.1:${h.mqttPort}`;
export const wsMqttURL = (h) => `ws://127.0.0.1:${h.port}/mqtt`;

