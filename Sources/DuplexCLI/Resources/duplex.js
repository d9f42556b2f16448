// duplex.js: a browser client for Duplex endpoints that falls back to HTTP when a WebSocket
// cannot get through. Plain JavaScript, no build step; `duplex serve` serves it at /duplex.js.
//
//   const socket = new DuplexSocket("/topics/chat.lobby");       // or a ws://, wss://, http(s):// URL
//   socket.onopen = () => socket.send("hello");
//   socket.onmessage = (event) => console.log(event.data, socket.transport);
//   socket.onclose = (event) => console.log(event.code, event.reason, event.wasClean);
//
// The object has the browser WebSocket's shape: onopen, onmessage, onclose, onerror, send(),
// close(code, reason), readyState (CONNECTING 0, OPEN 1, CLOSING 2, CLOSED 3), url, binaryType
// ("arraybuffer" or "blob"), protocol, extensions; plus `transport` ("websocket", "sse" or
// "longpoll") and onlost(first, last) when the server could not replay messages first...last.
//
// Transports are tried in order (options.transports, default websocket, sse, longpoll): the
// next one when a transport does not open within options.openTimeout ms (default 4000) or
// closes before it opened. With options.reconnect (default true) a connection that closed
// uncleanly opens again after 0.5 s, 1 s, 2 s, ... (capped at options.maxDelay, 10 s by
// default, jittered), starting with the transport that worked last; onopen fires again.
//
// The HTTP transports speak the server's fallback scheme (docs/fallbacks.md): POST
// ENDPOINT?transport=sse|longpoll opens a session, GET ENDPOINT?session=ID carries events down
// (an EventSource, or one long poll at a time), POST ENDPOINT?session=ID carries them up.
"use strict";

(function (global) {
  const CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;
  const TRANSPORTS = ["websocket", "sse", "longpoll"];
  const encoder = new TextEncoder(), decoder = new TextDecoder();

  // ---- The text format of the HTTP transports --------------------------------------------

  function toBase64(bytes) {
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return binary.length ? btoa(binary) : "=";
  }

  function fromBase64(text) {
    if (text === "=") return new Uint8Array(0);
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  /// One upstream event: text as data lines (base64 when it has a carriage return or is
  /// empty), binary as base64.
  function encodeEvent(data) {
    if (typeof data === "string") {
      if (data === "" || data.includes("\r")) return "event: text64\ndata: " + toBase64(encoder.encode(data)) + "\n\n";
      return data.split("\n").map((line) => "data: " + line).join("\n") + "\n\n";
    }
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return "event: binary\ndata: " + toBase64(bytes) + "\n\n";
  }

  /// The events of a long poll's body: [{id, type, data}].
  function parseEvents(text) {
    const events = [];
    for (const block of text.split("\n\n")) {
      if (!block) continue;
      const event = { id: null, type: "message", data: null };
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (name === "id") event.id = value;
        else if (name === "event") event.type = value;
        else if (name === "data") data.push(value);
      }
      if (data.length) {
        event.data = data.join("\n");
        events.push(event);
      }
    }
    return events;
  }

  // ---- HTTP sessions (SSE and long-polling) ----------------------------------------------

  /// One fallback session: opens, carries events both ways, reports to `owner` (its `deliver`,
  /// `opened`, `ended`, `lost`).
  class HTTPSession {
    constructor(endpoint, transport, owner) {
      this.endpoint = endpoint;
      this.transport = transport;
      this.owner = owner;
      this.id = null;
      this.outbox = [];
      this.posting = false;
      this.ended = false;
      this.closeSent = false;
      this.last = null;
      this.source = null;
      this.open();
    }

    target(query) { return this.endpoint + (this.endpoint.includes("?") ? "&" : "?") + query; }

    async open() {
      try {
        const response = await fetch(this.target("transport=" + this.transport), { method: "POST", cache: "no-store" });
        if (!response.ok) throw new Error(`opening answered ${response.status}`);
        const answer = await response.json();
        if (this.ended) return;
        this.id = answer.session;
      } catch (error) {
        this.end(1006, "", false, error.message);
        return;
      }
      if (this.transport === "sse") this.stream(); else { this.owner.opened(this); this.poll(); }
      this.flush();
    }

    stream() {
      const source = new EventSource(this.target("session=" + this.id));
      this.source = source;
      let opened = false;
      source.onopen = () => { if (!opened) { opened = true; this.owner.opened(this); } };
      source.onmessage = (event) => this.handle({ id: event.lastEventId, type: "message", data: event.data });
      for (const type of ["binary", "text64", "close", "lost"]) {
        source.addEventListener(type, (event) => this.handle({ id: event.lastEventId, type, data: event.data }));
      }
      // EventSource comes back by itself (with Last-Event-ID) after a network error; once it
      // gives up (the session is gone: 404), the connection is over.
      source.onerror = () => { if (source.readyState === EventSource.CLOSED) this.end(1006, "", false, "stream refused"); };
    }

    async poll() {
      let failures = 0;
      while (!this.ended) {
        try {
          const query = "session=" + this.id + (this.last !== null ? "&last=" + this.last : "");
          const response = await fetch(this.target(query), { cache: "no-store" });
          if (response.status === 404) { this.end(1006, "", false, "session gone"); return; }
          if (!response.ok) throw new Error(`poll answered ${response.status}`);
          const text = await response.text();
          failures = 0;
          for (const event of parseEvents(text)) this.handle(event);
        } catch (error) {
          if (++failures > 3) { this.end(1006, "", false, error.message); return; }
          await new Promise((resolve) => setTimeout(resolve, 500 * failures));
        }
      }
    }

    handle(event) {
      if (this.ended) return;
      if (event.id) this.last = event.id;
      switch (event.type) {
        case "message": this.owner.deliver(event.data); break;
        case "text64": this.owner.deliver(decoder.decode(fromBase64(event.data))); break;
        case "binary": this.owner.deliver(fromBase64(event.data)); break;
        case "lost": {
          const [first, last] = event.data.split(" ").map(Number);
          this.owner.lost(first, last);
          break;
        }
        case "close": {
          const space = event.data.indexOf(" ");
          const code = Number(space < 0 ? event.data : event.data.slice(0, space));
          this.end(code === 1005 ? 1005 : code, space < 0 ? "" : event.data.slice(space + 1), true);
          break;
        }
      }
    }

    send(data) {
      this.outbox.push(encodeEvent(data));
      this.flush();
    }

    close(code, reason) {
      if (this.closeSent) return;
      this.closeSent = true;
      this.outbox.push("event: close\ndata: " + (code === undefined ? "" : code + " " + (reason || "")) + "\n\n");
      this.flush();
      // The server's answer is the close event; a server that does not answer is left after 5 s.
      setTimeout(() => this.end(code === undefined ? 1005 : code, reason || "", false, "close timeout"), 5000);
    }

    /// One POST at a time carries everything queued.
    async flush() {
      if (this.posting || !this.id || !this.outbox.length || this.ended) return;
      this.posting = true;
      const body = this.outbox.join("");
      this.outbox = [];
      try {
        const response = await fetch(this.target("session=" + this.id), {
          method: "POST", body, headers: { "Content-Type": "text/event-stream" }, cache: "no-store",
        });
        if (response.status === 404) this.end(1006, "", false, "session gone");
        else if (!response.ok) this.owner.error(new Error(`POST answered ${response.status}: ${await response.text()}`));
      } catch (error) {
        this.end(1006, "", false, error.message);
      } finally {
        this.posting = false;
      }
      this.flush();
    }

    end(code, reason, wasClean, why) {
      if (this.ended) return;
      this.ended = true;
      this.source?.close();
      this.owner.ended(this, { code, reason, wasClean, why });
    }
  }

  // ---- The socket --------------------------------------------------------------------------

  class DuplexSocket {
    static CONNECTING = CONNECTING;
    static OPEN = OPEN;
    static CLOSING = CLOSING;
    static CLOSED = CLOSED;

    constructor(url, options = {}) {
      const base = new URL(url, global.location.href);
      const secure = base.protocol === "https:" || base.protocol === "wss:";
      this.httpURL = (secure ? "https://" : "http://") + base.host + base.pathname + base.search;
      this.url = (secure ? "wss://" : "ws://") + base.host + base.pathname + base.search;
      this.transports = (options.transports || TRANSPORTS).filter((t) => TRANSPORTS.includes(t));
      this.openTimeout = options.openTimeout ?? 4000;
      this.reconnect = options.reconnect ?? true;
      this.maxDelay = options.maxDelay ?? 10000;
      this.binaryType = "arraybuffer";
      this.readyState = CONNECTING;
      this.transport = null;
      this.protocol = "";
      this.extensions = "";
      this.onopen = this.onmessage = this.onclose = this.onerror = this.onlost = null;
      this.next = 0;  // index of the transport to try
      this.attempt = 0;
      this.current = null;
      this.stopped = false;
      this.connect(0);
    }

    connect(tried) {
      if (this.stopped) return;
      this.readyState = CONNECTING;
      const transport = this.transports[this.next % this.transports.length];
      this.transport = transport;
      let opened = false;
      const attempt = {};
      this.current = attempt;
      const fail = (event) => {
        if (this.current !== attempt) return;
        clearTimeout(timer);
        attempt.abandon?.();
        if (!opened && tried + 1 < this.transports.length) {
          this.next += 1;  // this transport does not get through: the next one
          this.connect(tried + 1);
          return;
        }
        this.closed(event, opened);
      };
      const timer = setTimeout(() => fail({ code: 1006, reason: "", wasClean: false }), this.openTimeout);
      const open = () => {
        if (this.current !== attempt) return;
        clearTimeout(timer);
        opened = true;
        this.readyState = OPEN;
        this.attempt = 0;
        this.onopen?.({ type: "open", target: this });
      };
      if (transport === "websocket") {
        let ws;
        try { ws = new WebSocket(this.url); } catch (error) { fail({ code: 1006, reason: error.message, wasClean: false }); return; }
        ws.binaryType = this.binaryType === "blob" ? "blob" : "arraybuffer";
        attempt.abandon = () => { ws.onclose = ws.onmessage = ws.onopen = null; ws.close(); };
        attempt.send = (data) => ws.send(data);
        attempt.close = (code, reason) => ws.close(code, reason);
        ws.onopen = () => { this.protocol = ws.protocol; this.extensions = ws.extensions; open(); };
        ws.onmessage = (event) => this.deliver(event.data);
        ws.onerror = () => this.onerror?.({ type: "error", target: this });
        ws.onclose = (event) => {
          attempt.abandon = null;
          fail({ code: event.code, reason: event.reason, wasClean: event.wasClean });
        };
        return;
      }
      this.protocol = this.extensions = "";
      const session = new HTTPSession(this.httpURL, transport, {
        opened: () => open(),
        deliver: (data) => { if (this.current === attempt) this.deliver(data); },
        lost: (first, last) => this.onlost?.(first, last),
        error: (error) => this.onerror?.({ type: "error", target: this, error }),
        ended: (_, event) => { attempt.abandon = null; fail(event); },
      });
      attempt.abandon = () => session.end(1006, "", false, "abandoned");
      attempt.send = (data) => session.send(data);
      attempt.close = (code, reason) => session.close(code, reason);
    }

    deliver(data) {
      if (data instanceof Uint8Array) data = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
      if (data instanceof ArrayBuffer && this.binaryType === "blob") data = new Blob([data]);
      this.onmessage?.({ type: "message", data, target: this });
    }

    closed(event, wasOpen) {
      this.readyState = CLOSED;
      this.current = null;
      this.onclose?.({ type: "close", code: event.code, reason: event.reason || "", wasClean: !!event.wasClean, target: this });
      if (this.stopped || !this.reconnect || event.wasClean) return;
      const ceiling = Math.min(this.maxDelay, 500 * 2 ** this.attempt);
      this.attempt += 1;
      if (!wasOpen) this.next += 1;
      setTimeout(() => this.connect(0), ceiling / 2 + Math.random() * ceiling / 2);
    }

    /// Sends text (a string) or binary (an ArrayBuffer or a typed array; a Blob is read first).
    send(data) {
      if (this.readyState !== OPEN) throw new DOMException("the socket is not open", "InvalidStateError");
      if (typeof Blob !== "undefined" && data instanceof Blob) {
        const attempt = this.current;
        data.arrayBuffer().then((buffer) => { if (this.current === attempt) attempt.send(buffer); });
        return;
      }
      this.current.send(data);
    }

    close(code, reason) {
      this.stopped = true;
      if (this.readyState === CLOSED || this.readyState === CLOSING) return;
      this.readyState = CLOSING;
      this.current?.close?.(code ?? 1000, reason);
    }
  }

  global.DuplexSocket = DuplexSocket;
})(typeof window !== "undefined" ? window : globalThis);
