#!/usr/bin/env python3
"""mqtt_client.py - drives herald's MQTT listener with paho-mqtt 1.6.1, for
tests/integration/17-mqtt.test.mjs. Prints one JSON object on its last line.

  mqtt_client.py roundtrip HOST PORT 311|5
      connects (clean), subscribes to paho/t at QoS 2, publishes "q1" at QoS 1 and "q2" at
      QoS 2 to it, waits (bounded) until both publishes completed and both messages arrived,
      waits a little more for duplicates, disconnects and prints
      {"connack", "granted", "published": [bool, bool], "received": [{topic, payload, qos}]}.
  mqtt_client.py session HOST PORT 311|5 CLIENT_ID N
      connects with a persistent session (3.1.1: clean_session False; 5: clean_start False and
      session expiry 300 s), prints {"present": bool} right after CONNACK, subscribes to paho/s/#
      at QoS 1 when N is 0 and disconnects; otherwise waits (bounded) for N messages without
      subscribing and prints {"present", "received": [payloads]} after a short wait for extras.
Exit 0 on success; 2 on a timeout (with what was seen so far).
"""
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt


def finish(c, state, ok):
    """Disconnects, prints the state as the last line (the test reads it), notes a timeout."""
    c.disconnect()
    c.loop_stop()
    print(json.dumps(state), flush=True)
    if not ok:
        print("timeout", file=sys.stderr)


def session(host, port, ver, cid, n):
    v5 = ver == "5"
    if v5:
        from paho.mqtt.properties import Properties
        from paho.mqtt.packettypes import PacketTypes

        c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        kw = {"clean_start": False, "properties": props}
    else:
        c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv311, clean_session=False)
        kw = {}
    state = {"present": None, "received": []}
    connected = threading.Event()
    subscribed = threading.Event()
    done = threading.Event()

    def on_subscribe(client, userdata, mid, granted, properties=None):
        subscribed.set()

    def on_connect(client, userdata, flags, rc, properties=None):
        state["present"] = bool(flags.get("session present") if isinstance(flags, dict) else flags.session_present)
        connected.set()

    def on_message(client, userdata, msg):
        state["received"].append(msg.payload.decode())
        if len(state["received"]) >= n:
            done.set()

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    c.connect(host, port, keepalive=30, **kw)
    c.loop_start()
    ok = False
    try:
        if not connected.wait(10):
            return 2
        if n == 0:
            c.subscribe("paho/s/#", qos=1)
            if not subscribed.wait(10):
                return 2
            ok = True
            return 0
        if not done.wait(10):
            return 2
        time.sleep(0.3)
        ok = True
        return 0
    finally:
        finish(c, state, ok)


def main():
    mode, host, port, ver = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if mode == "session":
        return session(host, port, ver, sys.argv[5], int(sys.argv[6]))
    assert mode == "roundtrip"
    v5 = ver == "5"
    proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    kw = {} if v5 else {"clean_session": True}
    c = mqtt.Client(client_id="paho-" + ver, protocol=proto, **kw)
    state = {"connack": None, "granted": None, "received": [], "published": [False, False]}
    connected = threading.Event()
    subscribed = threading.Event()
    got2 = threading.Event()

    def on_connect(client, userdata, flags, rc, properties=None):
        state["connack"] = rc.value if hasattr(rc, "value") else rc
        connected.set()

    def on_subscribe(client, userdata, mid, granted, properties=None):
        state["granted"] = [g.value if hasattr(g, "value") else g for g in granted]
        subscribed.set()

    def on_message(client, userdata, msg):
        state["received"].append({"topic": msg.topic, "payload": msg.payload.decode(), "qos": msg.qos})
        if len(state["received"]) >= 2:
            got2.set()

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    c.connect(host, port, keepalive=30)
    c.loop_start()
    ok = False
    try:
        if not connected.wait(10) or state["connack"] != 0:
            return 2
        c.subscribe("paho/t", qos=2)
        if not subscribed.wait(10):
            return 2
        i1 = c.publish("paho/t", "q1", qos=1)
        i2 = c.publish("paho/t", "q2", qos=2)
        i1.wait_for_publish(10)
        i2.wait_for_publish(10)
        state["published"] = [i1.is_published(), i2.is_published()]
        if not got2.wait(10):
            return 2
        # a duplicate would come right behind: give it a bounded chance to show up
        deadline = time.time() + 0.3
        while time.time() < deadline and len(state["received"]) == 2:
            time.sleep(0.02)
        ok = True
        return 0
    finally:
        finish(c, state, ok)


if __name__ == "__main__":
    sys.exit(main())
