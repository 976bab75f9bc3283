// Setup wizard: show the fields of the chosen line kind, fill in provider presets, notice a
// linked member, and follow the test call live. The pages work without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const { text } = window.linegram;

  // First line: provider or ATA fields, by the chosen kind.
  const lineForm = document.getElementById("line-form");
  if (lineForm) {
    const kinds = lineForm.querySelectorAll('input[name="kind"]');
    const showKind = () => {
      const chosen = lineForm.querySelector('input[name="kind"]:checked');
      lineForm.querySelectorAll("fieldset[data-kind]").forEach((set) => {
        set.hidden = chosen ? set.dataset.kind !== chosen.value : false;
      });
    };
    kinds.forEach((input) => input.addEventListener("change", showKind));
    showKind();

    // A preset fills the server, transport and country code, unless the owner typed their own.
    const preset = lineForm.querySelector("select[data-presets]");
    const hint = document.getElementById("preset-hint");
    const registrar = lineForm.querySelector("#registrar");
    const transport = lineForm.querySelector("#transport");
    const country = lineForm.querySelector("#country_code");
    const filled = { registrar: registrar ? registrar.value : "", country: "" };
    const applyPreset = () => {
      const option = preset.selectedOptions[0];
      if (!option) return;
      if (hint && option.dataset.hint) hint.textContent = option.dataset.hint;
      if (registrar && (registrar.value === "" || registrar.value === filled.registrar)) {
        registrar.value = option.dataset.registrar || "";
        filled.registrar = registrar.value;
      }
      if (transport && option.dataset.transport) transport.value = option.dataset.transport;
      if (country && (country.value === "" || country.value === filled.country)) {
        country.value = option.dataset.country || "";
        filled.country = country.value;
      }
    };
    if (preset) preset.addEventListener("change", applyPreset);
  }

  // Test step, before a member exists: reload once the owner pressed Receive.
  const invite = document.getElementById("invite");
  if (invite) {
    const waiting = invite.querySelector('[data-part="waiting"]');
    window.linegram.poll(invite.dataset.membersUrl, 2000, (answer) => {
      if (answer && answer.members > 0) {
        if (waiting) waiting.textContent = "Linked. One moment…";
        window.location.reload();
      } else if (waiting && Date.now() / 1000 > Number(invite.dataset.expiresAt)) {
        waiting.textContent = "This invitation has expired: make a new one.";
      }
    });
  }

  // Test call: badge, message and numbers every second.
  const box = document.getElementById("test-call");
  if (box) {
    const part = (name) => box.querySelector(`[data-part="${name}"]`);
    window.linegram.poll(box.dataset.statusUrl, 1000, (status) => {
      if (!status) return;
      const badge = part("badge");
      badge.className = `badge ${status.tone}`;
      badge.textContent = status.label;
      part("member").textContent = status.member || "";
      part("message").textContent = status.message || "";
      const numbers = part("numbers");
      numbers.replaceChildren();
      if (status.heard_seconds > 0) {
        let line = `Heard ${status.heard_seconds.toFixed(1)} s of your voice`;
        if (status.peak_dbfs !== null && status.peak_dbfs !== undefined) {
          line += `, loudest ${Math.round(status.peak_dbfs)} dBFS`;
        }
        numbers.append(text("span", `${line}.`));
      }
      part("stop").hidden = !["ringing", "up"].includes(status.state);
      box.dataset.verdict = status.verdict;
      const finish = document.querySelector("[data-finish]");
      if (finish) finish.classList.toggle("primary", status.verdict === "ok");
    });
  }
});
