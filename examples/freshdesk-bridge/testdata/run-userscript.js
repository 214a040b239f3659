// Runs escalate.user.js in node with a minimal stand-in for the Freshdesk
// ticket page and a userscript manager, clicks the button CLICKS times and
// prints what the page shows after each click, one JSON line each:
// {text, href, shown: [every text the status box showed during the click]}.
// Environment: USERSCRIPT (path), PAGE_URL, BRIDGE_URL, BRIDGE_TOKEN, CLICKS.
"use strict";
const fs = require("fs");
const vm = require("vm");

class Element {
  constructor(tag) {
    this.tagName = tag.toUpperCase();
    this.children = [];
    this.listeners = {};
    this.attrs = {};
    this.style = {};
    this._text = "";
    this.disabled = false;
  }
  set textContent(v) {
    this._text = String(v);
    this.children = [];
    if (this.attrs.role === "status") shown.push(this._text);
  }
  get textContent() { return this._text + this.children.map((c) => (typeof c === "string" ? c : c.textContent)).join(""); }
  append(...nodes) { this.children.push(...nodes); }
  prepend(...nodes) { this.children.unshift(...nodes); }
  setAttribute(k, v) { this.attrs[k] = v; }
  addEventListener(ev, fn) { (this.listeners[ev] ||= []).push(fn); }
  *walk() { yield this; for (const c of this.children) if (c instanceof Element) yield* c.walk(); }
}

let shown = [];
const body = new Element("body");
const header = new Element("header");
body.append(header);
const store = { bridgeURL: process.env.BRIDGE_URL, bridgeToken: process.env.BRIDGE_TOKEN };
const page = new URL(process.env.PAGE_URL);

const sandbox = {
  location: { pathname: page.pathname, href: page.href },
  document: {
    body,
    createElement: (t) => new Element(t),
    getElementById: (id) => { for (const e of body.walk()) if (e.id === id) return e; return null; },
    querySelector: (sel) => (sel.includes("header") ? header : null),
  },
  MutationObserver: class { observe() {} },
  GM_getValue: (k, d) => (k in store ? store[k] : d),
  GM_setValue: (k, v) => { store[k] = v; },
  GM_registerMenuCommand: () => {},
  prompt: () => { throw new Error("the userscript prompted although settings were stored"); },
  fetch, console, encodeURIComponent, URL, setTimeout, Date,
};
vm.createContext(sandbox);
vm.runInContext(fs.readFileSync(process.env.USERSCRIPT, "utf8"), sandbox);

(async () => {
  const button = sandbox.document.getElementById("opskit-escalate-to-gitlab");
  if (!button) throw new Error("no button on the ticket page");
  const box = header.children[0].children[1];
  for (let i = 0; i < Number(process.env.CLICKS || 1); i++) {
    shown = [];
    await Promise.all(button.listeners.click.map((fn) => fn()));
    while (button.disabled) await new Promise((r) => setTimeout(r, 5));
    const link = box.children.find((c) => c instanceof Element && c.tagName === "A");
    console.log(JSON.stringify({ text: box.textContent, href: link ? link.href : "", shown }));
  }
})().catch((e) => { console.error(String(e)); process.exit(1); });
