// Linegram web UI: small progressive enhancements. Every page works without them.
"use strict";

const linegram = {
  csrf() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  },
  // JSON from the web UI's own API; null when the web UI or gateway does not answer.
  async getJSON(url) {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (!response.ok) return null;
      return await response.json();
    } catch (error) {
      return null;
    }
  },
  async postJSON(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": linegram.csrf() },
      body: JSON.stringify(body || {}),
    });
    return { status: response.status, body: await response.json().catch(() => null) };
  },
  // Call render(data) now and every `ms` while the page is open (bounded by the page's life).
  poll(url, ms, render) {
    let stopped = false;
    const tick = async () => {
      if (stopped) return;
      render(await linegram.getJSON(url));
      setTimeout(tick, ms);
    };
    window.addEventListener("pagehide", () => { stopped = true; });
    tick();
  },
  duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const two = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${two(m)}:${two(r)}` : `${m}:${two(r)}`;
  },
  text(tag, content, cls) {
    const el = document.createElement(tag);
    el.textContent = content;
    if (cls) el.className = cls;
    return el;
  },
};
window.linegram = linegram;

// Forms that change something important ask first.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// The admin password's strength hint (the server checks the rule again).
function strength(password) {
  if (password.length < 10 || new Set(password).size < 4) return "weak";
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(password)).length;
  const score = Math.floor(password.length / 4) + classes;
  return score >= 7 ? "strong" : score >= 5 ? "good" : "fair";
}
document.documentElement.classList.add("js");
document.addEventListener("DOMContentLoaded", () => {
  const toggle = document.querySelector(".menu-toggle");
  const menu = document.getElementById("nav");
  if (toggle && menu) {
    toggle.addEventListener("click", () => {
      const open = menu.classList.toggle("open");
      toggle.setAttribute("aria-expanded", String(open));
    });
  }
  document.querySelectorAll("[data-strength-for]").forEach((hint) => {
    const input = document.getElementById(hint.dataset.strengthFor);
    if (!input) return;
    input.addEventListener("input", () => {
      const value = input.value;
      hint.dataset.level = value ? strength(value) : "";
      hint.textContent = value ? `Strength: ${hint.dataset.level}` : "";
    });
  });
});
