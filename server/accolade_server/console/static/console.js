// The console's own script: the tiers editor and the live award feed (EventSource).
// Everything else is htmx attributes in the templates. No inline scripts (see the CSP).
"use strict";

function tierRows(form) {
  return form.querySelector("[data-tier-rows]");
}

// Keep ids (and the error slots the server's validation targets) in row order.
function renumberTiers(rows) {
  [...rows.querySelectorAll("[data-tier-row]")].forEach((row, i) => {
    row.querySelectorAll("input").forEach((input) => {
      const part = input.name.replace("tier_", "");
      input.id = `tier-${i}-${part}`;
      input.setAttribute("aria-describedby", `err-tiers-${i}-${part}`);
      const label = row.querySelector(`label[for^="tier-"][for$="-${part}"]`);
      if (label) label.htmlFor = input.id;
    });
    row.querySelectorAll("[data-tier-number]").forEach((span) => {
      span.textContent = ` tier ${i + 1}`;
    });
    row.querySelectorAll(".field-error[data-slot]").forEach((slot) => {
      slot.id = `err-tiers-${i}-${slot.dataset.slot}`;
    });
  });
}

function changed(form) {
  form.dispatchEvent(new Event("input", { bubbles: true }));
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  const form = button.closest("form");
  if (!form) return;
  const rows = tierRows(form);
  if (!rows) return;
  const row = button.closest("[data-tier-row]");
  let focus = null;
  if (button.hasAttribute("data-tier-add")) {
    const template = document.getElementById("tier-row-template");
    rows.append(template.content.cloneNode(true));
    focus = rows.lastElementChild.querySelector("input");
  } else if (row && button.hasAttribute("data-tier-remove")) {
    focus = (row.nextElementSibling || row.previousElementSibling)?.querySelector("input");
    row.remove();
  } else if (row && button.hasAttribute("data-tier-up") && row.previousElementSibling) {
    row.previousElementSibling.before(row);
    focus = button;
  } else if (row && button.hasAttribute("data-tier-down") && row.nextElementSibling) {
    row.nextElementSibling.after(row);
    focus = button;
  } else {
    return;
  }
  renumberTiers(rows);
  (focus || form.querySelector("[data-tier-add]"))?.focus();
  changed(form);
});

// The live feed: the browser resumes after a reconnect by sending Last-Event-ID (the award
// log cursor of the last entry it got); the server replays what was missed.
function startFeed(list) {
  const status = document.querySelector("[data-live-status]");
  const source = new EventSource(list.dataset.liveFeed);
  source.addEventListener("open", () => {
    if (status) status.textContent = "live: new awards appear here as they happen";
    list.dataset.connected = "true";
  });
  source.addEventListener("error", () => {
    if (status) status.textContent = "reconnecting…";
    list.dataset.connected = "false";
  });
  source.addEventListener("award", (event) => {
    list.insertAdjacentHTML("afterbegin", event.data);
    while (list.children.length > 200) list.lastElementChild.remove();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live-feed]").forEach(startFeed);
});
