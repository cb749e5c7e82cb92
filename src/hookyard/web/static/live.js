// Live updates for the dashboard (docs/dashboard.md). One WebSocket per page on
// /api/v1/live, authenticated by the session cookie; each change refreshes, through htmx,
// every element whose data-live names its kind ("event") or the very entity ("event:42").
(function () {
  "use strict";
  let delay = 1000;

  function show(state, title) {
    const badge = document.getElementById("live-status");
    if (!badge) return;
    badge.textContent = state;
    badge.dataset.state = state;
    badge.className = "badge " + ({ live: "good", offline: "bad" }[state] || "neutral");
    badge.title = title || "live updates";
  }

  function refresh(kind, id) {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      const words = el.getAttribute("data-live").split(/\s+/);
      if (kind === null || words.includes(kind) || words.includes(kind + ":" + id)) {
        htmx.trigger(el, "live");
      }
    });
  }

  function connect() {
    const meta = document.querySelector('meta[name="hookyard-tenant"]');
    const tenant = meta ? meta.content : "";
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
      "/api/v1/live" + (tenant ? "?customer=" + encodeURIComponent(tenant) : "");
    const socket = new WebSocket(url);
    socket.onmessage = function (message) {
      let data;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      if (data.type === "welcome") {
        delay = 1000;
        show("live");
        // What changed between this page's rendering (or the last connection) and now was
        // sent to nobody: re-read what is shown once.
        refresh(null, null);
      } else if (data.type === "change") {
        refresh(data.kind, String(data.id));
        document.dispatchEvent(new CustomEvent("hookyard:change", { detail: data }));
      } else if (data.type === "lagged") {
        refresh(null, null); // changes were lost: re-read everything shown
      }
    };
    socket.onclose = function (closed) {
      if (closed.code === 4401 || closed.code === 4403) {
        show("offline", closed.reason || "log in again");
        return; // the session ended or no longer gives this tenant: no point retrying
      }
      show("offline", "reconnecting");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }

  // An htmx request that failed: show the server's reason where notices go.
  document.addEventListener("htmx:responseError", function (event) {
    const notices = document.getElementById("notices");
    const xhr = event.detail.xhr;
    if (!notices) return;
    const p = document.createElement("p");
    p.className = "error";
    p.setAttribute("role", "alert");
    p.textContent = xhr.status + ": " + (xhr.responseText.replace(/<[^>]*>/g, "").trim() || "request failed");
    notices.replaceChildren(p);
  });

  document.addEventListener("DOMContentLoaded", connect);
})();
