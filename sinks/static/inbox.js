// The in-app inbox page (/inbox?token=…): pulls /inapp/inbox, follows /inapp/stream (SSE)
// from the newest item it has, marks items read with POST /inapp/ack.
// Notification text only ever reaches the DOM through textContent, never as HTML.
"use strict";

(() => {
  const token = new URLSearchParams(location.search).get("token") || "";
  const auth = { Authorization: `Bearer ${token}` };
  const $ = (id) => document.getElementById(id);
  const list = $("items");
  const rows = new Map(); // inbox item id -> { item, li }
  let source = null;

  function setStatus(state, text) {
    $("status").dataset.state = state;
    $("status").textContent = text;
  }

  function showError(text) {
    $("error").textContent = text;
    $("error").hidden = !text;
  }

  // Only http(s) links: a javascript: URL in a notification must never become clickable.
  function safeHref(raw) {
    if (!raw) return null;
    try {
      const url = new URL(raw, location.href);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch {
      return null;
    }
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function build(item) {
    const li = el("li", "item");
    li.dataset.id = item.id;
    li.dataset.notificationId = item.notification_id;
    li.dataset.category = item.category;
    const href = safeHref(item.url);
    const title = el(href ? "a" : "span", "title", item.title);
    if (href) {
      title.href = href;
      title.rel = "noopener noreferrer";
      title.target = "_blank";
    }
    const time = el("time", null, new Date(item.created_at).toLocaleString());
    time.dateTime = item.created_at;
    const button = el("button", "mark-read", "Mark read");
    button.type = "button";
    button.addEventListener("click", () => markRead([item.notification_id]));
    li.append(title, el("p", "body", item.body), time, button);
    return li;
  }

  function paint(row) {
    row.li.dataset.read = String(row.item.read);
    row.li.dataset.seen = String(row.item.seen);
    const button = row.li.querySelector(".mark-read");
    button.disabled = row.item.read;
    button.textContent = row.item.read ? "Read" : "Mark read";
  }

  function refreshCounts() {
    let unread = 0;
    for (const row of rows.values()) if (!row.item.read) unread += 1;
    $("unread").dataset.count = String(unread);
    $("unread").textContent = unread ? `${unread} unread` : rows.size ? "All read" : "";
    $("mark-all").disabled = unread === 0;
    $("empty").hidden = rows.size > 0;
    document.title = unread ? `(${unread}) Inbox` : "Inbox";
  }

  // Flags only go from unread to read here: a stale copy (an SSE replay) never un-reads.
  function upsert(item) {
    let row = rows.get(item.id);
    if (row) {
      row.item = { ...row.item, seen: row.item.seen || item.seen, read: row.item.read || item.read };
    } else {
      row = { item, li: build(item) };
      rows.set(item.id, row);
      // Newest first, by the inbox's per-user sequence number.
      const older = [...list.children].find((li) => rows.get(li.dataset.id).item.seq < item.seq);
      list.insertBefore(row.li, older || null);
    }
    paint(row);
    refreshCounts();
  }

  async function markRead(notificationIds) {
    const wanted = new Set(notificationIds);
    const affected = [...rows.values()].filter(
      (row) => wanted.has(row.item.notification_id) && !row.item.read,
    );
    if (!affected.length) return;
    for (const row of affected) row.li.querySelector(".mark-read").disabled = true;
    try {
      const response = await fetch("/inapp/ack", {
        method: "POST",
        headers: { ...auth, "Content-Type": "application/json" },
        body: JSON.stringify({ notification_ids: [...wanted], action: "read" }),
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      for (const row of affected) row.item = { ...row.item, seen: true, read: true };
      showError("");
    } catch (err) {
      showError(`Could not mark as read (${err.message}); try again.`);
    }
    for (const row of affected) paint(row);
    refreshCounts();
  }

  async function load() {
    const response = await fetch("/inapp/inbox", { headers: auth, cache: "no-store" });
    if (response.status === 401) {
      setStatus("offline", "Signed out");
      showError("The token is missing, invalid or expired: open this page with a fresh one.");
      return false;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const inbox = await response.json();
    $("user").textContent = inbox.user_id;
    for (const item of inbox.items) upsert(item);
    refreshCounts();
    return true;
  }

  // The page is served by the worker that owns this user. If that changes (rebalance), the
  // stream redirects to another origin, which EventSource refuses: reloading the page lets
  // /inbox redirect the whole page to the new owner.
  function recover(reason) {
    if (source) source.close();
    setStatus("offline", `${reason}; reloading…`);
    setTimeout(() => location.reload(), 5000);
  }

  function follow() {
    // Resume after the newest item we have. An id the inbox does not know ("start") replays
    // the whole inbox, so nothing that arrived since the pull is missed; upsert merges copies.
    let newest = null;
    for (const row of rows.values()) if (!newest || row.item.seq > newest.seq) newest = row.item;
    const query = new URLSearchParams({ token, last_event_id: newest ? newest.id : "start" });
    source = new EventSource(`/inapp/stream?${query}`);
    source.addEventListener("open", () => setStatus("live", "Live"));
    source.addEventListener("notification", (event) => upsert(JSON.parse(event.data)));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) recover("Disconnected");
      else setStatus("connecting", "Reconnecting…");
    });
  }

  $("mark-all").addEventListener("click", () =>
    markRead([...rows.values()].filter((r) => !r.item.read).map((r) => r.item.notification_id)),
  );
  load()
    .then((ok) => ok && follow())
    .catch((err) => recover(`Could not load the inbox (${err.message})`));
})();
