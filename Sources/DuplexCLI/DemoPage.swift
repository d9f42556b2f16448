/// The page `duplex serve` shows at `/`: it opens a WebSocket to `/echo` in the browser.
enum DemoPage {
    static let html = """
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <title>Duplex echo</title>
    <style>
      body { font: 15px/1.4 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; }
      #log { border: 1px solid #ccc; padding: .5rem; height: 16rem; overflow-y: auto; font-family: monospace; }
      #status.open { color: #080; } #status.closed { color: #a00; }
    </style>
    </head>
    <body>
    <h1>Duplex echo</h1>
    <p>Status: <span id="status">connecting</span></p>
    <form id="form"><input id="text" autocomplete="off" placeholder="a message" autofocus> <button>Send</button></form>
    <div id="log"></div>
    <script>
    const statusEl = document.getElementById("status");
    const log = document.getElementById("log");
    function line(text) { const p = document.createElement("div"); p.textContent = text; log.appendChild(p); log.scrollTop = log.scrollHeight; }
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/echo";
    const greeting = "hello from the browser: long enough to travel compressed both ways when permessage-deflate is on";
    const ws = new WebSocket(url);
    ws.onopen = () => { statusEl.textContent = "open"; statusEl.className = "open"; line("connected to " + url);
      line("extensions: " + (ws.extensions || "none")); ws.send(greeting); };
    ws.onmessage = (event) => line("< " + event.data);
    ws.onclose = (event) => { statusEl.textContent = "closed (" + event.code + ")"; statusEl.className = "closed"; };
    document.getElementById("form").onsubmit = (event) => {
      event.preventDefault();
      const input = document.getElementById("text");
      if (input.value && ws.readyState === WebSocket.OPEN) { ws.send(input.value); line("> " + input.value); input.value = ""; }
    };
    </script>
    </body>
    </html>
    """
}
