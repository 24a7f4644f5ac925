// The console's only script: no inline handlers (the Content-Security-Policy
// forbids them), everything is wired here. Pages work without it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons: <button data-copy="ID"> copies the value of element ID.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.copy);
      const status = button.parentElement.querySelector(".copied");
      if (!field) {
        return;
      }
      field.select();
      try {
        await navigator.clipboard.writeText(field.value);
        if (status) {
          status.textContent = "Copied.";
        }
      } catch (error) {
        if (status) {
          status.textContent = "Press Ctrl+C (or Cmd+C) to copy the selected key.";
        }
      }
    });
  }
  // Dangerous buttons ask first: <button data-confirm="question">.
  for (const button of document.querySelectorAll("button[data-confirm]")) {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }
});
