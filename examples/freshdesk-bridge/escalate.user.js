// ==UserScript==
// @name         Escalate to GitLab (opskit freshdesk-bridge)
// @namespace    https://github.com/opskit/opskit
// @version      1.0.0
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
      if (resp.status === 401) {
        show(box, "The bridge refused the token; update it in the userscript menu.");
      } else if (!resp.ok) {
        show(box, `Escalation failed (${resp.status}): ${body.error || resp.statusText}. Press again to retry.`, body.issue_url);
      } else if (body.created) {
        show(box, `Created GitLab issue with ${body.notes_added} comments and ${body.attachments_copied} attachments:`, body.issue_url);
      } else {
        show(box, `GitLab issue updated: ${body.notes_added} new comments, ${body.attachments_copied} new attachments:`, body.issue_url);
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
