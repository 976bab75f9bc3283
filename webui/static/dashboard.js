// Live dashboard: re-render the status parts every 2 s from /api/status (no reload).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("dashboard");
  if (!root) return;
  const part = (name) => root.querySelector(`[data-part="${name}"]`);
  const { text } = window.linegram;
  const badge = (tone, label) => text("span", label, `badge ${tone}`);

  function state(cell, item) {
    cell.replaceChildren();
    if (!item) { cell.textContent = "—"; return; }
    cell.append(badge(item.tone, item.label), " ", item.name || "");
    if (item.error) cell.append(document.createElement("br"), text("small", item.error, "error"));
  }

  function render(view) {
    const down = !view || view.gateway === "down";
    part("down").hidden = !down;
    if (!view) return;
    const lines = part("lines");
    lines.replaceChildren(...view.lines.map((line) => {
      const li = document.createElement("li");
      li.append(text("strong", line.name), ` (${line.kind}) `, badge(line.tone, line.label));
      if (line.error) li.append(document.createElement("br"), text("small", line.error, "error"));
      return li;
    }));
    if (!view.lines.length) lines.append(text("li", down ? "—" : "No line yet.", "hint"));
    part("missed").hidden = !view.missed;
    part("missed-count").textContent = String(view.missed || 0);
    state(part("telegram"), view.telegram);
    state(part("bot"), view.bot);
    const calls = part("calls");
    calls.replaceChildren(...view.calls.map((call) => {
      const tr = document.createElement("tr");
      tr.className = "call";
      const who = `${call.direction === "in" ? "↘" : "↗"} ${call.number} ${call.name}`;
      const cells = [["Who", who], ["Line", call.line], ["Member", call.member || "—"],
        ["State", call.state], ["Duration", window.linegram.duration(call.seconds)]];
      for (const [label, value] of cells) {
        const td = text("td", value);
        td.dataset.label = label;
        tr.append(td);
      }
      return tr;
    }));
    if (!view.calls.length) {
      const tr = document.createElement("tr");
      tr.className = "idle";
      const td = text("td", "No call right now.", "hint");
      td.colSpan = 5;
      tr.append(td);
      calls.append(tr);
    }
  }
  window.linegram.poll(root.dataset.statusUrl, 2000, render);
});
