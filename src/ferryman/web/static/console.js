// The live console: replays the whole log of a deploy over the WebSocket, then follows it;
// reconnects by itself from the last line it has (no gaps, no repeats). Per-host tabs,
// stage progress, the transfer's bytes per host, ANSI colours, timestamps, auto-scroll with
// pause, the final banner. It asks for protocol 2 (lines in pages, "lines" messages) and
// reads a message per line ("line") as well.
"use strict";

(() => {
  const root = document.getElementById("console");
  if (!root) return;
  const texts = document.getElementById("console-texts").dataset;
  const log = document.getElementById("log");
  const tabs = document.getElementById("host-tabs");
  const follow = document.getElementById("follow");
  const conn = document.getElementById("conn");
  const stagesList = document.getElementById("stages");
  const badge = document.getElementById("status-badge");
  let deploy = JSON.parse(document.getElementById("deploy-data").textContent);
  let cursor = 0;
  let current = "";  // the host tab shown ("" = all)
  let ended = false;
  let retry = 0;
  const hostTabs = new Map();

  function ansi(text) {
    // ESC[...m sequences → spans with classes; text is never parsed as HTML.
    const out = document.createDocumentFragment();
    const parts = text.split(/\x1b\[([0-9;]*)m/);
    let classes = [];
    parts.forEach((part, index) => {
      if (index % 2 === 1) {
        for (const code of (part || "0").split(";")) {
          const n = Number(code || 0);
          if (n === 0) classes = [];
          else if (n === 1 || (n >= 30 && n <= 37) || (n >= 90 && n <= 97)) {
            classes = classes.filter((c) => (n === 1 ? c !== "a-1" : c === "a-1"));
            classes.push(`a-${n}`);
          }
        }
      } else if (part) {
        const span = document.createElement("span");
        if (classes.length) span.className = classes.join(" ");
        span.textContent = part;
        out.append(span);
      }
    });
    return out;
  }

  function tabFor(host) {
    if (!host || hostTabs.has(host)) return;
    const button = window.ferryman.el("button", { type: "button", class: "tab", "data-host": host }, host);
    button.addEventListener("click", () => show(host));
    hostTabs.set(host, button);
    // tabs in a stable order (by address, numerically), whatever host printed first
    const after = [...hostTabs.keys()].filter((h) => h !== host)
      .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))
      .find((h) => h.localeCompare(host, undefined, { numeric: true }) > 0);
    if (after) tabs.insertBefore(button, hostTabs.get(after)); else tabs.append(button);
  }

  function show(host) {
    current = host;
    tabs.querySelectorAll(".tab").forEach((t) => t.classList.toggle("on", t.dataset.host === host));
    log.querySelectorAll(".line").forEach((line) => {
      line.classList.toggle("hidden", Boolean(host) && line.dataset.host !== host);
    });
    if (follow.checked) log.scrollTop = log.scrollHeight;
  }
  tabs.querySelector('[data-host=""]').addEventListener("click", () => show(""));

  function addLine(line) {
    if (line.id <= cursor) return;  // already shown (a reconnect replays from the cursor)
    cursor = line.id;
    tabFor(line.host);
    const row = document.createElement("span");
    row.className = "line" + (current && line.host !== current ? " hidden" : "");
    row.dataset.id = String(line.id);
    row.dataset.host = line.host || "";
    const ts = document.createElement("span");
    ts.className = "ts";
    ts.textContent = (line.ts || "").slice(11, 19) + " ";
    row.append(ts);
    if (line.host) {
      const host = document.createElement("span");
      host.className = "host"; host.textContent = `[${line.host}] `; row.append(host);
    }
    // Ferryman's own lines already name their stage ("── prepare ──", "prepare: success")
    // a line that redraws itself with \r (npm, composer progress) shows what a terminal
    // would end with: the text after the last carriage return that has any
    const text = (line.text || "").split("\r").filter((part) => part.length).pop() || "";
    const named = !line.stream && (text.startsWith(`${line.stage}: `) || text.startsWith("── "));
    if (line.stage && !named) {
      const stage = document.createElement("span");
      stage.className = "stage"; stage.textContent = `${line.stage}: `; row.append(stage);
    }
    const body = document.createElement("span");
    body.className = line.stream === "stderr" ? "err" : (line.stream ? "" : "ours");
    if (!line.stream && / (failed|cancelled)( |$)|^(error|failed)\b/i.test(text)) body.className = "ours bad";
    body.append(ansi(text));
    if (line.stream === "stderr") row.classList.add("stderr");
    row.append(body, "\n");
    log.append(row);
  }

  // A stage that streams the package (transfer): bytes sent of each host's package, a bar each.
  function size(n) {
    if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
    if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
    if (n >= 1e3) return `${(n / 1e3).toFixed(0)} KB`;
    return `${n} B`;
  }

  function bytesList(bytes) {
    const list = window.ferryman.el("ul", { class: "bytes" });
    const hosts = Object.keys(bytes).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    for (const host of hosts) {
      const sent = Number(bytes[host].sent) || 0;
      const total = Number(bytes[host].total) || 0;
      const text = texts.bytesSent.replace("%(sent)s", size(sent)).replace("%(total)s", size(total));
      const bar = window.ferryman.el("progress", {
        max: String(Math.max(total, 1)), value: String(total ? sent : 1),
        "aria-label": texts.bytesTo.replace("%(host)s", host),
      });
      list.append(window.ferryman.el("li", { "data-host": host, "data-sent": String(sent), "data-total": String(total) },
        window.ferryman.el("code", {}, host), " ", window.ferryman.el("span", { class: "count" }, text), bar));
    }
    return list;
  }

  function statusText(status) { return texts[`status${status[0].toUpperCase()}${status.slice(1)}`] || status; }

  function drawDeploy() {
    badge.replaceChildren(window.ferryman.el("span", { class: `badge s-${deploy.status}` }, statusText(deploy.status)));
    stagesList.replaceChildren();
    for (const stage of deploy.stages || []) {
      const total = stage.total || 0;
      const done = stage.done || 0;
      const failed = stage.failed || 0;
      // a stage that counted no host (a rollback's verify) shows no "0/3"
      const counted = total && (done + failed > 0 || stage.status === "running");
      const item = window.ferryman.el("li", { class: stage.status || "running", "data-stage": stage.name });
      item.append(window.ferryman.el("strong", {}, stage.name), " ");
      if (counted) {
        item.append(window.ferryman.el("span", { class: "count" }, `${done}/${total}`), " ");
        if (failed) item.append(window.ferryman.el("span", { class: "error" }, texts.failedCount.replace("%(n)s", String(failed))), " ");
      }
      if (stage.duration != null) item.append(texts.duration.replace("%(s)s", `${stage.duration.toFixed(1)}s`));
      if (counted) {
        const bar = window.ferryman.el("progress", { max: String(total), value: String(done + failed) });
        item.append(bar);
      }
      if (stage.bytes && Object.keys(stage.bytes).length) {
        item.classList.add("has-bytes");
        item.append(bytesList(stage.bytes));
      }
      stagesList.append(item);
      for (const [host, result] of Object.entries(stage.hosts || {})) {
        tabFor(host);
        const tab = hostTabs.get(host);
        if (!result.ok) tab.classList.add("bad");
      }
    }
    for (const host of deploy.hosts || []) {
      tabFor(host.host);
      const tab = hostTabs.get(host.host);
      tab.classList.toggle("bad", host.status === "failed");
      tab.classList.toggle("good", host.status === "success");
    }
    if (deploy.status !== shownStatus) refresh();
  }

  // The banner, the buttons and the rollout card come from the server: fetched again
  // whenever the deploy's status changes (a Continue, the end), so none is ever stale.
  let shownStatus = document.getElementById("live").dataset.status;
  let refreshing = null;
  function refresh(tries = 0) {
    if (shownStatus === deploy.status) return Promise.resolve();
    if (refreshing) return refreshing;
    refreshing = fetch(location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then((response) => (response.ok ? response.text() : Promise.reject(response.status)))
      .then((html) => {
        const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (fresh) {
          document.getElementById("live").replaceWith(document.adoptNode(fresh));
          shownStatus = fresh.dataset.status;
          followWatch();
        }
      })
      .catch(() => {})
      .finally(() => { refreshing = null; });
    // the page may lag the stream by a moment: ask again until it shows the same status
    return refreshing.then(() => (shownStatus === deploy.status || tries >= 8
      ? undefined
      : new Promise((done) => setTimeout(done, 400)).then(() => refresh(tries + 1))));
  }

  // A post-deploy watch goes on after the deploy ended: while it watches, the page is asked
  // for again now and then, and its end (passed, failed on a host, ended) replaces it.
  const WATCH_POLL = 10000;
  let watchTimer = null;
  function followWatch() {
    const shown = document.querySelector("#live [data-watch]");
    if (watchTimer || !shown || shown.dataset.watch !== "watching") return;
    watchTimer = setTimeout(() => {
      fetch(location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then((response) => (response.ok ? response.text() : Promise.reject(response.status)))
        .then((html) => {
          const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
          const now = fresh && fresh.querySelector("[data-watch]");
          const before = document.querySelector("#live [data-watch]");
          if (now && before && !refreshing && fresh.dataset.status === shownStatus
              && now.dataset.watch !== before.dataset.watch) {
            document.getElementById("live").replaceWith(document.adoptNode(fresh));
          }
        })
        .catch(() => {})
        .finally(() => { watchTimer = null; followWatch(); });
    }, WATCH_POLL);
  }
  followWatch();

  function finish(status) {
    ended = true;
    conn.textContent = status === "paused" ? texts.statusPaused : texts.ended;
    deploy.status = status;
    refresh().then(() => { root.dataset.ended = status; });
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}${root.dataset.stream}?after=${cursor}&protocol=2`);
    conn.textContent = retry ? texts.reconnecting : texts.connecting;
    socket.addEventListener("open", () => { retry = 0; conn.textContent = texts.live; });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "lines") {
        for (const line of message.lines) addLine(line);
        if (follow.checked) log.scrollTop = log.scrollHeight;
      } else if (message.type === "line") {
        addLine(message);
        if (follow.checked) log.scrollTop = log.scrollHeight;
      } else if (message.type === "deploy") {
        deploy = message.deploy; drawDeploy();
      } else if (message.type === "end") {
        finish(message.status);
      }
      root.dataset.cursor = String(cursor);
    });
    socket.addEventListener("close", (event) => {
      if (ended) return;
      if (event.code >= 4400 && event.code < 4500) { conn.textContent = event.reason; return; }
      retry += 1;
      conn.textContent = texts.reconnecting;
      setTimeout(connect, Math.min(1000 * retry, 10000));
    });
  }

  log.addEventListener("scroll", () => {
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
    if (!atBottom && follow.checked) { follow.checked = false; conn.textContent = texts.paused; }
    else if (atBottom && !follow.checked) { follow.checked = true; conn.textContent = ended ? texts.ended : texts.live; }
  });
  follow.addEventListener("change", () => { if (follow.checked) log.scrollTop = log.scrollHeight; });

  drawDeploy();
  connect();
})();
