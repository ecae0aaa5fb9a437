#!/usr/bin/env python3
"""mqtt_corners.py - paho-mqtt 1.6.1 against herald's MQTT corners, for
tests/integration/45-mqtt-corners.test.mjs. Prints one JSON object on its last line.

  mqtt_corners.py keepalive HOST PORT KEEPALIVE
      MQTT 5 CONNECT asking for KEEPALIVE seconds; prints {"rc", "server_keep_alive"} from CONNACK.
  mqtt_corners.py dollar HOST PORT 311|5
      connects, publishes "x" at QoS 1 to $x/paho (acknowledged, not delivered), then "ok" at
      QoS 1 to paho/after on the same connection, which it subscribed to; prints
      {"published": [bool, bool], "received": [topics], "connected": bool}.
Exit 0 on success; 2 on a timeout (with what was seen so far).
"""
import json
import sys
import threading

import paho.mqtt.client as mqtt


def keepalive(host, port, ka):
    c = mqtt.Client(client_id="paho-ka", protocol=mqtt.MQTTv5)
    state = {"rc": None, "server_keep_alive": None}
    done = threading.Event()

    def on_connect(client, userdata, flags, rc, properties=None):
        state["rc"] = rc.value if hasattr(rc, "value") else rc
        state["server_keep_alive"] = getattr(properties, "ServerKeepAlive", None)
        done.set()

    c.on_connect = on_connect
    c.connect(host, port, keepalive=ka, clean_start=True)
    c.loop_start()
    ok = done.wait(10)
    c.disconnect()
    c.loop_stop()
    print(json.dumps(state), flush=True)
    return 0 if ok else 2


def dollar(host, port, ver):
    v5 = ver == "5"
    c = mqtt.Client(client_id="paho-dollar-" + ver, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    state = {"published": [False, False], "received": [], "connected": False}
    connected, subscribed, got = threading.Event(), threading.Event(), threading.Event()
    acked = [threading.Event(), threading.Event()]
    mids = {}

    def on_connect(client, userdata, flags, rc, properties=None):
        connected.set()

    def on_subscribe(client, userdata, mid, granted, properties=None):
        subscribed.set()

    def on_publish(client, userdata, mid):
        if mid in mids:
            state["published"][mids[mid]] = True
            acked[mids[mid]].set()

    def on_message(client, userdata, msg):
        state["received"].append(msg.topic)
        if msg.topic == "paho/after":
            got.set()

    c.on_connect, c.on_subscribe, c.on_publish, c.on_message = on_connect, on_subscribe, on_publish, on_message
    c.connect(host, port, keepalive=30)
    c.loop_start()
    ok = False
    try:
        if not connected.wait(10):
            return 2
        c.subscribe("#", qos=1)
        if not subscribed.wait(10):
            return 2
        mids[c.publish("$x/paho", "x", qos=1).mid] = 0
        if not acked[0].wait(10):
            return 2
        mids[c.publish("paho/after", "ok", qos=1).mid] = 1
        if not acked[1].wait(10) or not got.wait(10):
            return 2
        state["connected"] = c.is_connected()
        ok = True
        return 0
    finally:
        c.disconnect()
        c.loop_stop()
        print(json.dumps(state), flush=True)
        if not ok:
            print("timeout", file=sys.stderr)


def main():
    cmd, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if cmd == "keepalive":
        return keepalive(host, port, int(sys.argv[4]))
    if cmd == "dollar":
        return dollar(host, port, sys.argv[4])
    return 1


if __name__ == "__main__":
    sys.exit(main())
