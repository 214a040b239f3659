// ==UserScript==
// @name         Escalate to GitLab (opskit freshdesk-bridge)
// @namespace    https://github.com/opskit/opskit
// @version      1.1.0
// @description  Adds an "Escalate to GitLab" button to Freshdesk ticket pages; it calls the freshdesk-bridge and shows the issue link.
// @match        https://*.freshdesk.com/a/tickets/*
// @grant        GM_getValue
// @grant        GM_setValue
// @grant        GM_registerMenuCommand
// @run-at       document-idle
// ==/UserScript==

// Install: see examples/freshdesk-bridge/README.md. The bridge URL and the
// bearer token are asked for once and kept in the userscript manager's
// storage (GM_setValue), never in this file.
(function () {
  "use strict";

  const BUTTON_ID = "opskit-escalate-to-gitlab";

  function settings(reset) {
    let url = GM_getValue("bridgeURL", "");
    let token = GM_getValue("bridgeToken", "");
    if (reset || !url) {
      url = (prompt("freshdesk-bridge URL (e.g. https://bridge.example.com):", url) || "").trim().replace(/\/+$/, "");
      GM_setValue("bridgeURL", url);
    }
    if (reset || !token) {
      token = (prompt("freshdesk-bridge token:", "") || "").trim();
      GM_setValue("bridgeToken", token);
    }
    return { url, token };
  }

  GM_registerMenuCommand("Escalate to GitLab: settings", () => settings(true));

  function ticketID() {
    const m = location.pathname.match(/\/a\/tickets\/(\d+)/);
    return m ? m[1] : null;
  }

  function show(box, text, href) {
    box.textContent = text;
    if (href) {
      const a = document.createElement("a");
      a.href = href; // from our own bridge; shown as a link, never as HTML
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.textContent = href;
      box.append(" ", a);
    }
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // outcome shows a finished escalation: the bridge's synchronous answer,
  // or the result of a queued one (GET /escalations/{id}).
  function outcome(box, status, body) {
    if (status === 401) {
      show(box, "The bridge refused the token; update it in the userscript menu.");
    } else if (status < 200 || status > 299 || body.status === "failed") {
      show(box, `Escalation failed (${body.status === "failed" ? "in the bridge" : status}): ${body.error || "no details"}. Press again to retry.`, body.issue_url);
    } else if (body.created) {
      show(box, `Created GitLab issue with ${body.notes_added} comments and ${body.attachments_copied} attachments:`, body.issue_url);
    } else {
      show(box, `GitLab issue updated: ${body.notes_added} new comments, ${body.attachments_copied} new attachments:`, body.issue_url);
    }
  }

  // waitResult polls a queued escalation until it is done or failed, for
  // up to POLL_LIMIT_MS; a lost connection is retried.
  const POLL_MS = 1000, POLL_LIMIT_MS = 15 * 60 * 1000;
  async function waitResult(url, token, id, box) {
    const until = Date.now() + POLL_LIMIT_MS;
    while (Date.now() < until) {
      await sleep(POLL_MS);
      let resp;
      try {
        resp = await fetch(`${url}/escalations/${encodeURIComponent(id)}`, { headers: { Authorization: `Bearer ${token}` } });
      } catch (e) {
        show(box, `Queued; the bridge is not answering (${e}), still waiting…`);
        continue;
      }
      const body = await resp.json().catch(() => ({}));
      if (resp.status === 404) {
        show(box, "The bridge no longer knows this escalation (expired). Press again to check the issue.");
        return;
      }
      if (resp.ok && body.status === "queued") continue;
      if (resp.status >= 500) continue; // the bridge's store is busy: ask again
      outcome(box, resp.status, body);
      return;
    }
    show(box, "Still queued after 15 minutes; the bridge will finish it. Press again later to see the issue.");
  }

  async function escalate(button, box) {
    const id = ticketID();
    if (!id) return;
    const { url, token } = settings(false);
    if (!url || !token) {
      show(box, "Set the bridge URL and token first (userscript menu).");
      return;
    }
    button.disabled = true;
    show(box, "Escalating…");
    try {
      const resp = await fetch(`${url}/escalate/${encodeURIComponent(id)}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}` },
      });
      const body = await resp.json().catch(() => ({}));
      if (resp.status === 202 && body.status === "queued" && body.id) {
        // A queueing bridge: the escalation is stored and will be done even
        // if this tab closes; show the result when it is.
        show(box, "Queued; escalating…");
        await waitResult(url, token, body.id, box);
      } else {
        if (!resp.ok && !body.error) body.error = resp.statusText;
        outcome(box, resp.status, body); // a synchronous bridge answers with the result
      }
    } catch (e) {
      show(box, `Could not reach the bridge: ${e}`);
    } finally {
      button.disabled = false;
    }
  }

  function install() {
    if (!ticketID() || document.getElementById(BUTTON_ID)) return;
    const anchor = document.querySelector(".ticket-actions, .page-actions, [data-test-id='ticket-header'], header") || document.body;
    const wrap = document.createElement("div");
    wrap.style.cssText = "margin:8px 0;display:flex;gap:8px;align-items:center;flex-wrap:wrap";
    const button = document.createElement("button");
    button.id = BUTTON_ID;
    button.type = "button";
    button.textContent = "Escalate to GitLab";
    button.style.cssText = "padding:4px 10px;border-radius:4px;border:1px solid #6b4fbb;background:#6b4fbb;color:#fff;cursor:pointer";
    const box = document.createElement("span");
    box.setAttribute("role", "status");
    button.addEventListener("click", () => escalate(button, box));
    wrap.append(button, box);
    anchor.prepend(wrap);
  }

  // Freshdesk is a single-page app: re-install the button after navigation.
  install();
  new MutationObserver(install).observe(document.body, { childList: true, subtree: true });
})();
