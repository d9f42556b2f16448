// The demo app of `duplex serve`: a chat with rooms, a live ticker and an echo tester, each on
// its own WebSocket that reconnects by itself. Plain JavaScript, no libraries, no build step.
//
// Server interface: ws(s)://HOST/topics/NAME subscribes to topic NAME and publishes what it
// sends there (to every subscriber, the sender too); GET /topics lists topics with their
// subscriber counts; topic `ticker` carries {"type":"ticker","time":ms,"prices":[...]}; room R
// is topic `chat.R`. Everything here tolerates a server that lacks some of it.
//
// Each connection is a DuplexSocket (/duplex.js): a WebSocket, or Server-Sent Events or
// long-polling when a WebSocket does not get through; its status shows which. The page's
// ?transport=websocket|sse|longpoll forces one.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
  const forced = new URLSearchParams(location.search).get("transport");
  const transports = ["websocket", "sse", "longpoll"].includes(forced) ? [forced] : undefined;

  // ---- Connections -------------------------------------------------------------------------

  /// A DuplexSocket that comes back: after a close it waits 0.5 s, 1 s, 2 s, ... (capped at 10 s,
  /// each delay jittered down to half of it) and opens again, until stop(). Its state shows in
  /// `statusEl`, whose class is the state: connecting, open, waiting or closed.
  class Link {
    static BASE_MS = 500;
    static CAP_MS = 10000;
    static STABLE_MS = 5000;  // open this long before the backoff starts again from the base

    constructor(path, statusEl, handlers = {}) {
      this.url = wsBase + path;
      this.statusEl = statusEl;
      this.handlers = handlers;
      this.ws = null;
      this.attempt = 0;
      this.retryTimer = null;
      this.countdown = null;
      this.stopped = false;
      this.open();
    }

    get isOpen() { return this.ws !== null && this.ws.readyState === DuplexSocket.OPEN; }

    open() {
      this.clearTimers();
      this.show("connecting", this.attempt ? `connecting (attempt ${this.attempt + 1})` : "connecting");
      let ws;
      try {
        ws = new DuplexSocket(this.url, { transports, reconnect: false });
      } catch (error) {
        this.show("closed", "failed: " + error.message);
        return;
      }
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      let openedAt = 0;
      ws.onopen = () => {
        openedAt = Date.now();
        this.show("open", "open · " + ws.transport);
        this.handlers.open?.(ws);
      };
      ws.onmessage = (event) => this.handlers.message?.(event.data);
      ws.onclose = (event) => {
        if (this.ws !== ws) return;  // replaced or stopped
        this.ws = null;
        if (openedAt && Date.now() - openedAt >= Link.STABLE_MS) this.attempt = 0;
        this.handlers.close?.(event);
        if (!this.stopped) this.retry(openedAt ? event.code : 0);
      };
    }

    retry(code) {
      const ceiling = Math.min(Link.CAP_MS, Link.BASE_MS * 2 ** this.attempt);
      const delay = ceiling / 2 + Math.random() * ceiling / 2;
      const due = Date.now() + delay;
      this.attempt += 1;
      const why = code ? `closed ${code}` : "could not connect";
      const tick = () => {
        const left = Math.max(0, due - Date.now()) / 1000;
        this.show("waiting", `${why}, retry in ${left.toFixed(1)} s (attempt ${this.attempt + 1})`);
      };
      tick();
      this.countdown = setInterval(tick, 500);
      this.retryTimer = setTimeout(() => this.open(), delay);
    }

    /// Retries at once if it is waiting (the browser came back online, say).
    retryNow() { if (this.retryTimer !== null) this.open(); }

    send(data) {
      if (!this.isOpen) return false;
      this.ws.send(data);
      return true;
    }

    stop() {
      this.stopped = true;
      this.clearTimers();
      const ws = this.ws;
      this.ws = null;
      if (ws) ws.close(1000);
      this.show("closed", "closed");
    }

    clearTimers() {
      clearTimeout(this.retryTimer);
      clearInterval(this.countdown);
      this.retryTimer = this.countdown = null;
    }

    show(state, text) {
      this.statusEl.className = state;
      this.statusEl.textContent = text;
      this.handlers.state?.(state);
    }
  }

  const links = new Set();
  window.addEventListener("online", () => links.forEach((link) => link.retryNow()));

  // ---- Helpers -----------------------------------------------------------------------------

  /// Appends `item` to a log, keeping at most `max` entries, and follows the bottom if the
  /// reader was there.
  function append(log, item, max = 300) {
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.appendChild(item);
    while (log.children.length > max) log.firstElementChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const utf8 = new TextDecoder();

  /// The JSON object in a message, text or binary (POST /publish sends other bodies than JSON
  /// and text ones as binary), or null.
  function parseJSON(data) {
    if (data instanceof ArrayBuffer) data = utf8.decode(data);
    if (typeof data !== "string") return null;
    try {
      const value = JSON.parse(data);
      return value !== null && typeof value === "object" ? value : null;
    } catch {
      return null;
    }
  }

  const minutes = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const seconds = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const validTime = (ms) => Number.isFinite(ms) && ms > 0 ? new Date(ms) : new Date();

  // ---- Chat --------------------------------------------------------------------------------

  const ROOM = /^[A-Za-z0-9._:-]{1,123}$/;  // a topic name is at most 128 characters, "chat." included
  const chat = { link: null, room: "", nick: "" };
  const chatLog = $("chat-log");

  function chatEvent(text) {
    append(chatLog, element("li", "event", text));
  }

  function chatMessage(nick, text, time) {
    const item = element("li", nick === chat.nick ? "msg mine" : "msg");
    const when = validTime(time);
    const stamp = element("time", "when", minutes.format(when));
    stamp.dateTime = when.toISOString();
    item.append(element("span", "nick", nick), " ", stamp, element("p", "text", text));
    append(chatLog, item);
  }

  function onChat(data) {
    const message = parseJSON(data);
    if (!message) return;  // not ours: topics carry whatever their publishers send
    const nick = typeof message.nick === "string" && message.nick.trim() ? message.nick.trim().slice(0, 32) : "anonymous";
    if (message.type === "chat" && typeof message.text === "string") chatMessage(nick, message.text, message.time);
    else if (message.type === "join") chatEvent(`${nick} joined`);
  }

  function join(room, nick) {
    chat.link?.stop();
    links.delete(chat.link);
    chat.room = room;
    chat.nick = nick;
    $("room-name").textContent = "#" + room;
    $("room-count").textContent = "–";
    chatLog.replaceChildren();
    chatEvent(`You are ${nick} in #${room}.`);
    const query = new URLSearchParams(location.search);
    query.set("room", room);
    query.set("nick", nick);
    history.replaceState(null, "", "?" + query);
    chat.link = new Link("/topics/" + encodeURIComponent("chat." + room), $("chat-status"), {
      open: () => {
        chat.link.send(JSON.stringify({ type: "join", nick }));
        refreshTopics();
      },
      message: onChat,
      state: (state) => { $("chat-send").disabled = state !== "open"; },
    });
    links.add(chat.link);
  }

  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const room = $("room").value.trim();
    const nick = $("nick").value.trim();
    if (!ROOM.test(room) || !nick) {
      event.target.reportValidity();
      return;
    }
    if (room !== chat.room || nick !== chat.nick) join(room, nick);
  });

  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("chat-text");
    const text = input.value.trim();
    if (!text) return;
    if (chat.link?.send(JSON.stringify({ type: "chat", nick: chat.nick, text, time: Date.now() }))) {
      input.value = "";  // it shows when the server publishes it back
    }
  });

  // Room sizes: GET /topics every 2 s (and after each join).
  let topicsPending = false;
  async function refreshTopics() {
    if (topicsPending || !chat.room) return;
    topicsPending = true;
    const note = $("room-note");
    try {
      const response = await fetch("/topics", { cache: "no-store", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`GET /topics answered ${response.status}`);
      const body = await response.json();
      const topics = Array.isArray(body?.topics) ? body.topics : [];
      const here = topics.find((topic) => topic?.name === "chat." + chat.room);
      $("room-count").textContent = String(Number.isInteger(here?.subscribers) ? here.subscribers : 0);
      const rooms = topics.filter((t) => typeof t?.name === "string" && t.name.startsWith("chat.")).map((t) => {
        const option = element("option");
        option.value = t.name.slice(5);
        option.label = `${t.name.slice(5)} (${t.subscribers})`;
        return option;
      });
      $("rooms").replaceChildren(...rooms);
      note.hidden = true;
    } catch (error) {
      $("room-count").textContent = "–";
      note.textContent = `Room size unavailable: ${error.message}.`;
      note.hidden = false;
    } finally {
      topicsPending = false;
    }
  }
  setInterval(refreshTopics, 2000);

  // ---- Ticker ------------------------------------------------------------------------------

  const HISTORY = 120;  // prices kept per symbol: a minute at the default 0.5 s
  const ticker = { updates: 0, series: new Map(), rows: new Map(), selected: null, drawPending: false };
  const tickerBody = document.querySelector("#ticker-table tbody");

  function select(symbol) {
    ticker.selected = symbol;
    for (const [name, row] of ticker.rows) row.button.setAttribute("aria-pressed", String(name === symbol));
    scheduleDraw();
  }

  function rowFor(symbol) {
    let row = ticker.rows.get(symbol);
    if (row) return row;
    const tr = element("tr");
    tr.dataset.symbol = symbol;
    const button = element("button", "symbol", symbol);
    button.type = "button";
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", () => select(symbol));
    const th = element("th");
    th.scope = "row";
    th.append(button);
    row = { button, price: element("td", "num price"), change: element("td", "num change") };
    tr.append(th, row.price, row.change);
    tickerBody.append(tr);
    ticker.rows.set(symbol, row);
    if (ticker.selected === null) select(symbol);
    return row;
  }

  function onTick(data) {
    const message = parseJSON(data);
    if (message?.type !== "ticker" || !Array.isArray(message.prices)) return;
    ticker.updates += 1;
    $("ticker-updates").textContent = String(ticker.updates);
    $("ticker-time").textContent = " · " + seconds.format(validTime(message.time));
    $("ticker-note").hidden = true;
    for (const quote of message.prices) {
      if (typeof quote?.symbol !== "string" || !Number.isFinite(quote.price)) continue;
      const change = Number.isFinite(quote.change) ? quote.change : 0;
      const row = rowFor(quote.symbol);
      row.price.textContent = quote.price.toFixed(2);
      const direction = change > 0 ? "up" : change < 0 ? "down" : "flat";
      row.change.className = "num change " + direction;
      row.change.textContent = (change > 0 ? "▲ +" : change < 0 ? "▼ −" : "") + Math.abs(change).toFixed(2);
      let points = ticker.series.get(quote.symbol);
      if (!points) ticker.series.set(quote.symbol, points = []);
      points.push(quote.price);
      if (points.length > HISTORY) points.shift();
    }
    scheduleDraw();
  }

  function scheduleDraw() {
    if (ticker.drawPending) return;
    ticker.drawPending = true;
    requestAnimationFrame(() => {
      ticker.drawPending = false;
      draw();
    });
  }

  /// The selected symbol's recent prices as a line, with its range on the right.
  function draw() {
    const canvas = $("ticker-chart");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const style = getComputedStyle(canvas);
    const points = ticker.series.get(ticker.selected) ?? [];
    g.font = `12px ${style.fontFamily}`;
    g.fillStyle = style.color;
    if (points.length < 2) {
      g.fillText("waiting for prices…", 12, height / 2);
      return;
    }
    const low = Math.min(...points), high = Math.max(...points);
    const span = high - low || Math.max(Math.abs(high) * 0.001, 0.01);
    const pad = 10, right = 56;
    const slots = Math.max(points.length, 20);  // the first ten seconds enter from the right, then fill the width
    const x = (i) => pad + (i / (slots - 1)) * (width - pad - right);
    const y = (price) => pad + (1 - (price - low) / span) * (height - 2 * pad);

    g.strokeStyle = style.getPropertyValue("--chart-grid");
    g.lineWidth = 1;
    g.beginPath();
    for (const price of [low, high]) {
      g.moveTo(pad, Math.round(y(price)) + 0.5);
      g.lineTo(width - right + 4, Math.round(y(price)) + 0.5);
    }
    g.stroke();
    g.textBaseline = "middle";
    g.fillText(high.toFixed(2), width - right + 8, y(high));
    g.fillText(low.toFixed(2), width - right + 8, y(low));

    const offset = slots - points.length;
    g.beginPath();
    points.forEach((price, i) => (i ? g.lineTo : g.moveTo).call(g, x(offset + i), y(price)));
    const line = style.getPropertyValue("--chart-line");
    g.strokeStyle = line;
    g.lineWidth = 2;
    g.lineJoin = "round";
    g.stroke();
    g.lineTo(x(slots - 1), height - pad);
    g.lineTo(x(offset), height - pad);
    g.closePath();
    g.globalAlpha = 0.12;
    g.fillStyle = line;
    g.fill();
    g.globalAlpha = 1;
    const last = points[points.length - 1];
    g.beginPath();
    g.arc(x(slots - 1), y(last), 3.5, 0, 2 * Math.PI);
    g.fill();
    canvas.setAttribute("aria-label",
      `Price chart of ${ticker.selected}: last ${last.toFixed(2)}, between ${low.toFixed(2)} and ${high.toFixed(2)} over ${points.length} updates`);
  }

  if (typeof ResizeObserver === "function") new ResizeObserver(scheduleDraw).observe($("ticker-chart"));

  // ---- Echo tester -------------------------------------------------------------------------

  const echoLog = $("echo-log");
  const echoLine = (text) => append(echoLog, element("div", "", text), 100);
  const greeting = "hello from the browser: long enough to travel compressed both ways when permessage-deflate is on";
  const echo = new Link("/echo", $("status"), {
    open: (ws) => {
      echoLine("connected to " + ws.url + " over " + ws.transport);
      echoLine("extensions: " + (ws.extensions || "none"));
      ws.send(greeting);
    },
    message: (data) => echoLine("< " + (typeof data === "string" ? data : `[${data.byteLength} bytes]`)),
  });
  links.add(echo);

  $("echo-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("echo-text");
    if (input.value && echo.send(input.value)) {
      echoLine("> " + input.value);
      input.value = "";
    }
  });

  // ---- Start -------------------------------------------------------------------------------

  links.add(new Link("/topics/ticker", $("ticker-status"), { message: onTick }));

  const query = new URLSearchParams(location.search);
  const startRoom = ROOM.test(query.get("room") ?? "") ? query.get("room") : "lobby";
  const startNick = (query.get("nick") ?? "").trim().slice(0, 32) || "guest-" + Math.floor(1000 + Math.random() * 9000);
  $("room").value = startRoom;
  $("nick").value = startNick;
  join(startRoom, startNick);
})();
