// System page: the log box opens at its newest lines (at the bottom).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const log = document.querySelector("pre.log");
  if (log) log.scrollTop = log.scrollHeight;
});
