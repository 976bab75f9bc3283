// Members page: invitations count down to their expiry (the server's time is the reference:
// the page carries the seconds left when it was made, so a wrong phone clock does not matter).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const started = Date.now();
  const timers = Array.from(document.querySelectorAll(".countdown[data-seconds-left]"));
  if (!timers.length) return;
  const tick = () => {
    const elapsed = (Date.now() - started) / 1000;
    let running = false;
    for (const el of timers) {
      const left = Number(el.dataset.secondsLeft) - elapsed;
      if (left > 0) {
        el.textContent = `Valid for ${linegram.duration(left)}`;
        running = true;
      } else {
        el.textContent = el.dataset.expiredText || "Expired";
        el.classList.add("expired");
        const card = el.closest(".invitation, tr");
        if (card) card.classList.add("expired");
      }
    }
    if (running) setTimeout(tick, 1000);
  };
  tick();
});
